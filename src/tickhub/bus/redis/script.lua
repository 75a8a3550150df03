-- tickhub Redis bus: publish a run of messages, in order, in one atomic call.
-- Called by tickhub/bus/redis/script.py (which builds the arguments from named values); key
-- names as in keys.py, envelope layout as in codec.py.
--
-- For each retained message: take the next version (INCR), update the retained hash (HSET, or
-- HDEL for a drop) and publish the envelope with that version, so that the hash, the versions
-- and the message order never disagree. Other messages are just published. A numbered message
-- also updates the topic's resume history as TopicHistory.record does (bus/history.py).
--
-- KEYS
--   KEYS[1]  {prefix}:v, the version counter
--   then, for each message in turn, only the keys its operations use, in this order:
--     {prefix}:r:{topic}  retained hash          when op is 's' or 'd'
--     {prefix}:s:{topic}  resume history hash    when hop is 'x' or starts with 'n'
--     {prefix}:h:{topic}  resume history stream  when hop starts with 'n'
--
-- ARGV
--   ARGV[1]     MAXLEN of every history stream (history_size, at least 1), decimal
--   then ten per message, starting at i = 2, 12, 22, ...:
--   ARGV[i]     op: 'p' publish only, 's' set the retained value, 'd' drop it
--   ARGV[i+1]   channel, {prefix}:t:{topic}
--   ARGV[i+2]   envelope head: every byte of the envelope before the retained version
--   ARGV[i+3]   retain field: u16 length + retain name, the envelope bytes after the version
--               ('' when op is 'p')
--   ARGV[i+4]   payload
--   ARGV[i+5]   retain name ('' when op is 'p')
--   ARGV[i+6]   hop, what the message does to the resume history:
--                 ''   nothing (not numbered)
--                 'x'  forget the retained state of the retain name (an unnumbered drop)
--                 'n' followed by two characters, a numbered message:
--                      2nd 'r' keep it as the retained state of the retain name, '-' not
--                      3rd 'h' add it to the stream, '-' not
--   ARGV[i+7]   epoch, the producer run that numbered it ('' when not numbered)
--   ARGV[i+8]   seq, decimal ('' when not numbered)
--   ARGV[i+9]   seq - 1, decimal: the floor of a new epoch ('' when not numbered)
--
-- Returns how many retained updates Redis refused (out of memory, wrong key type); such a
-- message is not published.
local k, refused, maxlen = 1, 0, tonumber(ARGV[1])
for i = 2, #ARGV, 10 do
  local env = false
  if ARGV[i] == 'p' then
    env = ARGV[i + 2] .. ARGV[i + 4]
  else
    k = k + 1
    local v = struct.pack('>I8', redis.call('INCR', KEYS[1]))
    local r
    if ARGV[i] == 'd' then
      r = redis.pcall('HDEL', KEYS[k], ARGV[i + 5])
    else
      r = redis.pcall('HSET', KEYS[k], ARGV[i + 5], v .. ARGV[i + 4])
    end
    if type(r) == 'table' and r.err then
      refused = refused + 1
    else
      env = ARGV[i + 2] .. v .. ARGV[i + 3] .. ARGV[i + 4]
    end
  end
  if env then
    redis.call('PUBLISH', ARGV[i + 1], env)
  end
  local hop = ARGV[i + 6]
  if hop == 'x' then
    k = k + 1
    if env then
      redis.pcall('HDEL', KEYS[k], 'r:' .. ARGV[i + 5])
    end
  elseif hop ~= '' then
    local sk, hk, seq = KEYS[k + 1], KEYS[k + 2], ARGV[i + 8]
    k = k + 2
    if env then
      local n = tonumber(seq)
      if redis.pcall('HGET', sk, 'e') ~= ARGV[i + 7] then
        -- The producer restarted: its numbering means nothing to old clients.
        redis.pcall('DEL', sk, hk)
        redis.pcall('HSET', sk, 'e', ARGV[i + 7], 'f', ARGV[i + 9], 'l', seq)
      elseif n > tonumber(redis.pcall('HGET', sk, 'l') or '0') then
        redis.pcall('HSET', sk, 'l', seq)
      end
      if string.sub(hop, 2, 2) == 'r' then
        redis.pcall('HSET', sk, 'r:' .. ARGV[i + 5], seq .. ' ' .. ARGV[i + 4])
      end
      if string.sub(hop, 3, 3) == 'h' then
        local len = redis.pcall('XLEN', hk)
        if type(len) == 'number' and len >= maxlen then
          -- What the trim evicts raises the floor: older clients get a fresh snapshot.
          local old = redis.pcall('XRANGE', hk, '-', '+', 'COUNT', len - maxlen + 1)
          if type(old) == 'table' and #old > 0 then
            local f = old[#old][2][2]
            if tonumber(f) > tonumber(redis.pcall('HGET', sk, 'f') or '0') then
              redis.pcall('HSET', sk, 'f', f)
            end
          end
        end
        redis.pcall('XADD', hk, 'MAXLEN', maxlen, '*', 's', seq, 'm', env)
      end
    end
  end
end
return refused
