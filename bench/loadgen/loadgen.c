/*
 * loadgen: the WebSocket load client of bench/run.py.
 *
 * One process, one thread, epoll (level-triggered). It opens N client connections to one
 * server, does the WebSocket handshake, sends one subscribe message per connection
 * ({"type":"subscribe","symbols":[...]}: K of S symbols, chosen by a seeded PRNG from the
 * client's global index, so every server gets exactly the same subscriptions), then reads
 * frames and counts them. For every live `data` message it checks the per-topic `seq` (a
 * missing number is a gap), and for every `tick_data` message it reads the publish stamp the
 * server put in `last_quantity` (CLOCK_MONOTONIC microseconds, the same clock on the same
 * machine) and records publish-to-client latency in a log-linear histogram (HDR-like, <0.8 %
 * error). It answers WebSocket pings, and can send a `heartbeat` message to every connection
 * and count the acks.
 *
 * Control: commands on stdin, one per line; answers on stdout, one JSON object per line.
 *   (after start)   READY {...}    every connection is open and subscribed (or failed/timed out)
 *   mark            MARK {}        start the measurement window: counters reset
 *   report          REPORT {...}   counters and latency of the window so far
 *   heartbeat       HB {...}       sent a heartbeat on every reading connection; acks counted
 *   quit / EOF                     close everything and exit 0
 *
 * Stalled connections (--stall M, the last M of this process) subscribe to --stall-subs symbols
 * with a small receive buffer, and stop reading once every connection is ready. With --batch 1
 * the subscribe asks for tickhub's opt-in batching and every message of a batch frame counts.
 *
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF_SIZE (4u << 20)
#define MAX_EVENTS 1024
#define STDIN_TAG ((uint64_t)-1)

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t stalled;
    uint8_t ready;
    uint8_t reading;
    int nsubs;
    int acks;
    uint32_t *sub_idx;
    uint64_t *last_seq;
    char *pend;
    uint32_t pend_len, pend_cap;
    char *out;
    uint32_t out_len, out_cap;
} conn_t;

/* ---- options ---------------------------------------------------------------------------- */

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_path = "/ws/stream";
static int opt_conns = 100;
static int opt_subs = 10;
static int opt_symbols = 50;
static const char *opt_prefix = "SYM";
static int opt_stall = 0;
static int opt_stall_subs = -1;
static int opt_first = 0; /* global index of this process's first client */
static uint64_t opt_seed = 42;
static int opt_parallel = 64;
static double opt_ready_timeout = 120.0;
static int opt_rcvbuf_stalled = 4096;
static char *opt_src = NULL;
static int opt_batch = 0; /* subscribe with "batch":true and read batch frames */
static int opt_busy = 0; /* spin in epoll_wait(0): a halted vCPU wakes slowly */

/* ---- state ------------------------------------------------------------------------------ */

static conn_t *conns;
static int epfd;
static char *rbuf;
static struct in_addr dst_addr;
static struct in_addr src_addrs[64];
static int nsrc = 0;
static int next_to_start = 0;
static int in_flight = 0;
static int n_open = 0, n_failed = 0, n_ready_active = 0, n_active = 0;
static int ready_printed = 0;
static double t_start;
static char first_error[256] = "";

/* window counters (reset by mark) */
static uint64_t c_msgs, c_ticks, c_bytes, c_frames, c_other, c_gaps, c_ooo, c_wrong, c_errors;
static uint64_t c_snapshots, c_acks, c_closed, c_pings, c_hb_acked, c_batches;
static char error_sample[256] = "";
static double t_mark;
static double cpu_mark;
/* heartbeat round */
static int hb_active = 0;
static uint64_t hb_sent = 0, hb_acked_round = 0;
static double hb_started = 0;

/* latency histogram, microseconds: exact below 256, then 128 sub-buckets per power of two */
#define H_BUCKETS (256 + 48 * 128)
static uint64_t hist[H_BUCKETS];
static uint64_t lat_count, lat_sum, lat_max, lat_min;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void note_error(const char *fmt, ...) {
    if (first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_error, sizeof first_error, fmt, ap);
    va_end(ap);
}

static int h_index(uint64_t v) {
    if (v < 256) return (int)v;
    int e = 63 - __builtin_clzll(v); /* >= 8 */
    int sub = (int)((v >> (e - 7)) & 127);
    int idx = 256 + (e - 8) * 128 + sub;
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static uint64_t h_value(int idx) {
    if (idx < 256) return (uint64_t)idx;
    int e = (idx - 256) / 128 + 8;
    uint64_t sub = (uint64_t)((idx - 256) % 128);
    uint64_t lo = (128 + sub) << (e - 7);
    uint64_t width = (uint64_t)1 << (e - 7);
    return lo + width / 2; /* midpoint */
}

static void h_record(uint64_t v) {
    hist[h_index(v)]++;
    lat_count++;
    lat_sum += v;
    if (v > lat_max) lat_max = v;
    if (v < lat_min) lat_min = v;
}

static uint64_t h_percentile(double q) {
    if (!lat_count) return 0;
    uint64_t rank = (uint64_t)(q * (double)lat_count + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) return h_value(i);
    }
    return lat_max;
}

/* ---- symbols ---------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* K distinct symbol indices for client g: the same for every server and every run. */
static void pick_symbols(int g, int k, uint32_t *out) {
    if (k >= opt_symbols) {
        for (int i = 0; i < opt_symbols; i++) out[i] = (uint32_t)i;
        return;
    }
    uint64_t s = opt_seed * 1000003ull + (uint64_t)g;
    int n = 0;
    while (n < k) {
        uint32_t c = (uint32_t)(splitmix(&s) % (uint64_t)opt_symbols);
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= out[j] == c;
        if (!dup) out[n++] = c;
    }
}

/* ---- output buffer ---------------------------------------------------------------------- */

static void conn_close(conn_t *c, int counted);

static void set_events(conn_t *c) {
    struct epoll_event ev = {0};
    ev.data.u64 = (uint64_t)(c - conns);
    if (c->state == ST_CONNECTING || c->out_len) ev.events |= EPOLLOUT;
    if (c->reading && c->state != ST_CONNECTING) ev.events |= EPOLLIN;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_out(conn_t *c) {
    while (c->out_len) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_close(c, 1);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (uint32_t)n);
        c->out_len -= (uint32_t)n;
    }
}

static void queue_out(conn_t *c, const char *data, size_t len) {
    int was_empty = c->out_len == 0;
    if (c->out_len + len > c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + len) cap *= 2;
        c->out = realloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    if (c->state == ST_OPEN || c->state == ST_HANDSHAKE) {
        flush_out(c);
        if (c->state != ST_CLOSED && (was_empty != (c->out_len == 0))) set_events(c);
    }
}

/* A client frame: FIN, masked with the all-zero key (so the payload is sent as is). */
static void send_frame(conn_t *c, int opcode, const char *payload, size_t len) {
    char hdr[14];
    size_t h = 0;
    hdr[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (char)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = (char)(0x80 | 126);
        hdr[h++] = (char)(len >> 8);
        hdr[h++] = (char)(len & 0xff);
    } else {
        hdr[h++] = (char)(0x80 | 127);
        for (int i = 7; i >= 0; i--) hdr[h++] = (char)((uint64_t)len >> (8 * i));
    }
    memset(hdr + h, 0, 4);
    h += 4;
    char *tmp = malloc(h + len);
    memcpy(tmp, hdr, h);
    memcpy(tmp + h, payload, len);
    queue_out(c, tmp, h + len);
    free(tmp);
}

/* ---- connections ------------------------------------------------------------------------ */

static void mark_done_connecting(conn_t *c, int ok) {
    (void)c;
    in_flight--;
    if (ok) n_open++;
    else n_failed++;
}

static void conn_close(conn_t *c, int counted) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) mark_done_connecting(c, 0);
    else if (counted) c_closed++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_CLOSED;
    c->reading = 0;
    c->out_len = 0;
    c->pend_len = 0;
}

static void start_conn(int i) {
    conn_t *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_error("socket: %s", strerror(errno));
        c->state = ST_CLOSED;
        n_failed++;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->stalled && opt_rcvbuf_stalled > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &opt_rcvbuf_stalled, sizeof opt_rcvbuf_stalled);
    if (nsrc) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr = src_addrs[i % nsrc];
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
            note_error("bind %s: %s", inet_ntoa(src.sin_addr), strerror(errno));
            close(c->fd);
            c->state = ST_CLOSED;
            n_failed++;
            return;
        }
    }
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt_port);
    dst.sin_addr = dst_addr;
    int rc = connect(c->fd, (struct sockaddr *)&dst, sizeof dst);
    if (rc < 0 && errno != EINPROGRESS) {
        note_error("connect: %s", strerror(errno));
        close(c->fd);
        c->state = ST_CLOSED;
        n_failed++;
        return;
    }
    c->state = ST_CONNECTING;
    c->reading = 1;
    in_flight++;
    struct epoll_event ev = {0};
    ev.events = EPOLLOUT;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void start_more(void) {
    while (next_to_start < opt_conns && in_flight < opt_parallel) start_conn(next_to_start++);
}

static void on_connected(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        note_error("connect: %s", strerror(err));
        conn_close(c, 0);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     opt_path, opt_host, opt_port);
    c->state = ST_HANDSHAKE;
    queue_out(c, req, (size_t)n);
    if (c->state != ST_CLOSED) set_events(c);
}

static void send_subscribe(conn_t *c) {
    /* {"type":"subscribe","symbols":["SYM0001",...]} */
    size_t cap = 64 + (size_t)c->nsubs * 32;
    char *msg = malloc(cap);
    size_t n = (size_t)snprintf(msg, cap, "{\"type\":\"subscribe\",\"symbols\":[");
    for (int j = 0; j < c->nsubs; j++)
        n += (size_t)snprintf(msg + n, cap - n, "%s\"%s%04u\"", j ? "," : "", opt_prefix,
                              c->sub_idx[j]);
    n += (size_t)snprintf(msg + n, cap - n, opt_batch ? "],\"batch\":true}" : "]}");
    send_frame(c, 1, msg, n);
    free(msg);
}

/* ---- messages --------------------------------------------------------------------------- */

static const char *find(const char *p, const char *end, const char *needle, size_t nlen) {
    if (p >= end) return NULL;
    const char *r = memmem(p, (size_t)(end - p), needle, nlen);
    return r ? r + nlen : NULL;
}

static uint64_t parse_uint(const char *p, const char *end) {
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

#define LIT(s) s, sizeof(s) - 1

static void on_data(conn_t *c, const char *p, size_t n, uint64_t now) {
    const char *end = p + n;
    c_msgs++;
    c_bytes += n;
    const char *q = find(p + 14, end, LIT("\"symbol\":\""));
    if (!q) return;
    size_t plen = strlen(opt_prefix);
    uint32_t idx = (uint32_t)parse_uint(q + plen, end);
    int j = 0;
    while (j < c->nsubs && c->sub_idx[j] != idx) j++;
    if (j == c->nsubs) c_wrong++;
    const char *dt = find(q, end, LIT("\"data_type\":\""));
    int is_tick = dt && end - dt >= 9 && memcmp(dt, "tick_data", 9) == 0;
    const char *s = find(dt ? dt : q, end, LIT("\"seq\":"));
    if (s && j < c->nsubs) {
        uint64_t seq = parse_uint(s, end);
        uint64_t last = c->last_seq[j];
        if (last && seq > last + 1) c_gaps += seq - last - 1;
        else if (last && seq <= last) c_ooo++;
        if (seq > last) c->last_seq[j] = seq;
    }
    if (is_tick) {
        c_ticks++;
        const char *lq = find(s ? s : dt, end, LIT("\"last_quantity\":"));
        if (lq) {
            uint64_t stamp = parse_uint(lq, end);
            h_record(now > stamp ? now - stamp : 0);
        }
    }
}

static void on_text(conn_t *c, const char *p, size_t n, uint64_t now) {
    if (n >= 14 && memcmp(p, "{\"type\":\"data\"", 14) == 0) {
        on_data(c, p, n, now);
        return;
    }
    if (n >= 15 && memcmp(p, "{\"type\":\"batch\"", 15) == 0) {
        /* {"type":"batch","count":n,"messages":[{"type":"data",...},{"type":"data",...}]} */
        const char *end = p + n;
        const char *q = memmem(p + 15, n - 15, "{\"type\":\"data\"", 14);
        c_batches++;
        while (q) {
            const char *next = memmem(q + 14, (size_t)(end - q - 14), "{\"type\":\"data\"", 14);
            on_data(c, q, (size_t)((next ? next : end) - q), now);
            q = next;
        }
        return;
    }
    if (n >= 17 && memcmp(p, "{\"snapshot\":true,", 17) == 0) {
        c_snapshots++;
        return;
    }
    const char *end = p + n;
    const char *t = find(p, p + (n < 64 ? n : 64), LIT("\"type\":\""));
    if (!t) {
        c_other++;
        return;
    }
    size_t left = (size_t)(end - t);
    if (left >= 13 && memcmp(t, "subscription\"", 13) == 0) {
        c_acks++;
        if (++c->acks >= c->nsubs && !c->ready) {
            c->ready = 1;
            if (!c->stalled) n_ready_active++;
        }
    } else if (left >= 10 && memcmp(t, "heartbeat\"", 10) == 0) {
        c_hb_acked++;
        if (hb_active) hb_acked_round++;
    } else if (left >= 6 && memcmp(t, "error\"", 6) == 0) {
        c_errors++;
        if (!error_sample[0]) {
            size_t m = n < sizeof error_sample - 1 ? n : sizeof error_sample - 1;
            memcpy(error_sample, p, m);
            error_sample[m] = 0;
            for (size_t i = 0; i < m; i++)
                if (error_sample[i] == '"' || error_sample[i] == '\\') error_sample[i] = '\'';
        }
    } else if (left >= 11 && memcmp(t, "connection\"", 11) == 0) {
        /* welcome */
    } else {
        c_other++;
    }
}

/* Parse complete server frames from buf; returns bytes consumed. */
static size_t parse_frames(conn_t *c, const char *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 2) {
        const unsigned char *h = (const unsigned char *)buf + off;
        int opcode = h[0] & 0x0f;
        int masked = h[1] & 0x80;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (len - off < 4) break;
            plen = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | h[2 + i];
            hl = 10;
        }
        if (masked) hl += 4; /* servers never mask; tolerate it anyway (payload unread) */
        if (len - off < hl + plen) break;
        const char *payload = buf + off + hl;
        c_frames++;
        switch (opcode) {
        case 1:
            on_text(c, payload, (size_t)plen, now);
            break;
        case 9:
            c_pings++;
            send_frame(c, 10, payload, (size_t)plen);
            break;
        case 8:
            conn_close(c, 1);
            return len;
        default:
            c_other++;
        }
        if (c->state == ST_CLOSED) return len;
        off += hl + (size_t)plen;
    }
    return off;
}

static void on_readable(conn_t *c) {
    size_t have = c->pend_len;
    if (have) memcpy(rbuf, c->pend, have);
    ssize_t n = recv(c->fd, rbuf + have, RBUF_SIZE - have, 0);
    if (n == 0) {
        conn_close(c, 1);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn_close(c, 1);
        return;
    }
    size_t len = have + (size_t)n;
    size_t off = 0;
    uint64_t now = now_us();
    if (c->state == ST_HANDSHAKE) {
        const char *eoh = memmem(rbuf, len, "\r\n\r\n", 4);
        if (!eoh) {
            off = 0;
            goto keep;
        }
        if (len < 12 || memcmp(rbuf, "HTTP/1.1 101", 12) != 0) {
            const char *cr = memchr(rbuf, '\r', len);
            int m = cr ? (int)(cr - rbuf) : (int)(len < 40 ? len : 40);
            note_error("handshake refused: %.*s", m < 120 ? m : 120, rbuf);
            conn_close(c, 0);
            return;
        }
        off = (size_t)(eoh + 4 - rbuf);
        c->state = ST_OPEN;
        mark_done_connecting(c, 1);
        send_subscribe(c);
        if (c->state == ST_CLOSED) return;
    }
    off += parse_frames(c, rbuf + off, len - off, now);
    if (c->state == ST_CLOSED) return;
keep:
    c->pend_len = (uint32_t)(len - off);
    if (c->pend_len) {
        if (c->pend_len > c->pend_cap) {
            c->pend_cap = c->pend_len < 4096 ? 4096 : c->pend_len * 2;
            c->pend = realloc(c->pend, c->pend_cap);
        }
        memcpy(c->pend, rbuf + off, c->pend_len);
    }
}

/* ---- control ---------------------------------------------------------------------------- */

static void print_ready(void) {
    int open_now = 0;
    for (int i = 0; i < opt_conns; i++) open_now += conns[i].state == ST_OPEN;
    printf("READY {\"conns\":%d,\"open\":%d,\"ready\":%d,\"active\":%d,\"stalled\":%d,"
           "\"failed\":%d,\"closed\":%lu,\"errors\":%lu,\"seconds\":%.3f,\"error\":\"%s\","
           "\"error_sample\":\"%s\"}\n",
           opt_conns, open_now, n_ready_active, n_active, opt_conns - n_active, n_failed, c_closed,
           c_errors, now_s() - t_start, first_error, error_sample);
    fflush(stdout);
    ready_printed = 1;
    /* Stalled clients stop reading now. */
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        if (c->stalled && c->state == ST_OPEN) {
            c->reading = 0;
            set_events(c);
        }
    }
}

static void do_mark(void) {
    c_msgs = c_ticks = c_bytes = c_frames = c_other = c_gaps = c_ooo = c_wrong = c_errors = 0;
    c_snapshots = c_acks = c_closed = c_pings = c_hb_acked = c_batches = 0;
    error_sample[0] = 0;
    memset(hist, 0, sizeof hist);
    lat_count = lat_sum = lat_max = 0;
    lat_min = UINT64_MAX;
    t_mark = now_s();
    cpu_mark = cpu_s();
    printf("MARK {}\n");
    fflush(stdout);
}

static void do_report(void) {
    double window = now_s() - t_mark;
    double cpu = cpu_s() - cpu_mark;
    int open_now = 0;
    for (int i = 0; i < opt_conns; i++) open_now += conns[i].state == ST_OPEN;
    printf("REPORT {\"window_s\":%.6f,\"cpu_s\":%.6f,\"conns\":%d,\"open\":%d,\"active\":%d,"
           "\"msgs\":%lu,\"ticks\":%lu,\"bytes\":%lu,\"frames\":%lu,\"other\":%lu,\"gaps\":%lu,"
           "\"out_of_order\":%lu,\"wrong_topic\":%lu,\"errors\":%lu,\"error_sample\":\"%s\","
           "\"snapshots\":%lu,\"acks\":%lu,\"closed\":%lu,\"pings\":%lu,\"hb_acked\":%lu,"
           "\"batches\":%lu,",
           window, cpu, opt_conns, open_now, n_active, c_msgs, c_ticks, c_bytes, c_frames, c_other,
           c_gaps, c_ooo, c_wrong, c_errors, error_sample, c_snapshots, c_acks, c_closed, c_pings,
           c_hb_acked, c_batches);
    printf("\"lat_us\":{\"count\":%lu,\"min\":%lu,\"mean\":%.1f,\"p50\":%lu,\"p90\":%lu,"
           "\"p99\":%lu,\"p999\":%lu,\"max\":%lu},\"hist\":[",
           lat_count, lat_count ? lat_min : 0, lat_count ? (double)lat_sum / lat_count : 0.0,
           h_percentile(0.50), h_percentile(0.90), h_percentile(0.99), h_percentile(0.999),
           lat_max);
    int first = 1;
    for (int i = 0; i < H_BUCKETS; i++) {
        if (!hist[i]) continue;
        printf("%s[%lu,%lu]", first ? "" : ",", h_value(i), hist[i]);
        first = 0;
    }
    printf("]}\n");
    fflush(stdout);
}

static void do_heartbeat(void) {
    static const char msg[] = "{\"type\":\"heartbeat\"}";
    hb_active = 1;
    hb_sent = 0;
    hb_acked_round = 0;
    hb_started = now_s();
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        if (c->state != ST_OPEN || !c->reading) continue;
        send_frame(c, 1, msg, sizeof msg - 1);
        hb_sent++;
    }
}

static void finish_heartbeat(void) {
    printf("HB {\"sent\":%lu,\"acked\":%lu,\"seconds\":%.3f}\n", hb_sent, hb_acked_round,
           now_s() - hb_started);
    fflush(stdout);
    hb_active = 0;
}

static int on_stdin(void) {
    static char line[256];
    static size_t used = 0;
    ssize_t n = read(0, line + used, sizeof line - 1 - used);
    if (n <= 0) return 0;
    used += (size_t)n;
    char *nl;
    while ((nl = memchr(line, '\n', used)) != NULL) {
        *nl = 0;
        if (!strcmp(line, "mark")) do_mark();
        else if (!strcmp(line, "report")) do_report();
        else if (!strcmp(line, "heartbeat")) do_heartbeat();
        else if (!strcmp(line, "quit")) return 0;
        size_t rest = used - (size_t)(nl + 1 - line);
        memmove(line, nl + 1, rest);
        used = rest;
    }
    if (used == sizeof line - 1) used = 0;
    return 1;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--path /ws/stream] [--conns N] [--subs K]\n"
            "               [--symbols S] [--prefix SYM] [--stall M] [--stall-subs K2] [--first G]\n"
            "               [--seed X] [--parallel 64] [--ready-timeout 120] [--src a,b,...]\n"
            "               [--batch 0|1] [--busy-poll 0|1] [--rcvbuf-stalled 4096]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = atoi(v);
        else if (!strcmp(a, "--path")) opt_path = v;
        else if (!strcmp(a, "--conns")) opt_conns = atoi(v);
        else if (!strcmp(a, "--subs")) opt_subs = atoi(v);
        else if (!strcmp(a, "--symbols")) opt_symbols = atoi(v);
        else if (!strcmp(a, "--prefix")) opt_prefix = v;
        else if (!strcmp(a, "--stall")) opt_stall = atoi(v);
        else if (!strcmp(a, "--stall-subs")) opt_stall_subs = atoi(v);
        else if (!strcmp(a, "--first")) opt_first = atoi(v);
        else if (!strcmp(a, "--seed")) opt_seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--parallel")) opt_parallel = atoi(v);
        else if (!strcmp(a, "--ready-timeout")) opt_ready_timeout = atof(v);
        else if (!strcmp(a, "--rcvbuf-stalled")) opt_rcvbuf_stalled = atoi(v);
        else if (!strcmp(a, "--src")) opt_src = strdup(v);
        else if (!strcmp(a, "--busy-poll")) opt_busy = atoi(v);
        else if (!strcmp(a, "--batch")) opt_batch = atoi(v);
        else usage();
    }
    if (opt_port <= 0 || opt_conns <= 0 || opt_symbols <= 0 || opt_subs <= 0) usage();
    if (opt_subs > opt_symbols) opt_subs = opt_symbols;
    if (opt_stall_subs < 0 || opt_stall_subs > opt_symbols) opt_stall_subs = opt_symbols;
    if (opt_stall > opt_conns) opt_stall = opt_conns;
    if (inet_pton(AF_INET, opt_host, &dst_addr) != 1) {
        fprintf(stderr, "loadgen: bad --host %s\n", opt_host);
        return 2;
    }
    if (opt_src) {
        for (char *tok = strtok(opt_src, ","); tok && nsrc < 64; tok = strtok(NULL, ",")) {
            if (inet_pton(AF_INET, tok, &src_addrs[nsrc]) != 1) {
                fprintf(stderr, "loadgen: bad --src address %s\n", tok);
                return 2;
            }
            nsrc++;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rbuf = malloc(RBUF_SIZE);
    conns = calloc((size_t)opt_conns, sizeof *conns);
    n_active = opt_conns - opt_stall;
    for (int i = 0; i < opt_conns; i++) {
        conn_t *c = &conns[i];
        c->fd = -1;
        c->state = ST_CLOSED;
        c->stalled = i >= n_active;
        c->nsubs = c->stalled ? opt_stall_subs : opt_subs;
        c->sub_idx = calloc((size_t)c->nsubs, sizeof *c->sub_idx);
        c->last_seq = calloc((size_t)c->nsubs, sizeof *c->last_seq);
        pick_symbols(opt_first + i, c->nsubs, c->sub_idx);
    }
    lat_min = UINT64_MAX;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev);
    t_start = now_s();
    t_mark = t_start;
    cpu_mark = cpu_s();
    start_more();

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, opt_busy ? 0 : 50);
        if (n < 0 && errno != EINTR) break;
        for (int e = 0; e < n; e++) {
            if (events[e].data.u64 == STDIN_TAG) {
                if (!on_stdin()) goto done;
                continue;
            }
            conn_t *c = &conns[events[e].data.u64];
            uint32_t ev = events[e].events;
            if (c->state == ST_CLOSED) continue;
            if (c->state == ST_CONNECTING) {
                if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
                continue;
            }
            if (ev & EPOLLIN) on_readable(c);
            else if (ev & (EPOLLERR | EPOLLHUP)) conn_close(c, 1);
            if (c->state != ST_CLOSED && (ev & EPOLLOUT)) {
                flush_out(c);
                if (c->state != ST_CLOSED && !c->out_len) set_events(c);
            }
        }
        start_more();
        if (!ready_printed) {
            int all_done = next_to_start == opt_conns && in_flight == 0;
            int stalled_ready = 1;
            for (int i = n_active; i < opt_conns && all_done; i++)
                if (conns[i].state == ST_OPEN && !conns[i].ready) stalled_ready = 0;
            int active_open = 0;
            for (int i = 0; i < n_active && all_done; i++) active_open += conns[i].state == ST_OPEN;
            if ((all_done && n_ready_active >= active_open && stalled_ready) ||
                now_s() - t_start > opt_ready_timeout) {
                if (!all_done) note_error("not ready after %.0fs", opt_ready_timeout);
                print_ready();
            }
        }
        if (hb_active && (hb_acked_round >= hb_sent || now_s() - hb_started > 30.0))
            finish_heartbeat();
    }
done:
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].state != ST_CLOSED) close(conns[i].fd);
    return 0;
}
