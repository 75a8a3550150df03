/**
 * react.js: `useTickhub(url, symbols)`, a React hook over the tickhub client, in the spirit of the
 * seed's `useWebSocket(url)` (same `isConnected`, `data`, `subscribe`), with reconnect,
 * resubscribe, heartbeats and gap counting from tickhub.js.
 *
 * React is not imported here, so the module works with or without a bundler:
 *
 * - page with React loaded as a script (UMD build, `window.React`):
 *     import { useTickhub } from '/static/react.js';
 * - with a bundler or an import map that provides 'react':
 *     import * as React from 'react';
 *     import { createUseTickhub } from '/static/react.js';
 *     const useTickhub = createUseTickhub(React);
 * - or per call: `useTickhub(url, symbols, { React })`.
 *
 *   function Quote() {
 *     const { isConnected, latest } = useTickhub('/ws/stream', ['RELIANCE']);
 *     const tick = latest.RELIANCE?.tick_data;
 *     return `${isConnected ? 'live' : 'offline'} ${tick ? tick.data.price : '...'}`;
 *   }
 *
 * Returns:
 *   isConnected  boolean
 *   data         the latest `data` payload (`message.data`), like the seed's hook
 *   lastMessage  the latest `data` message (envelope included)
 *   latest       {[symbol]: {[data_type]: message}}: the latest message of each kind per symbol
 *   status       the latest feed `status` message, or null
 *   error        the latest server `error` message, or null
 *   reconnects   successful reconnections
 *   gaps         messages reported missing (sum of `gap.missed`)
 *   subscribe(symbol | symbols, {interval, indicators}), unsubscribe(...)   beyond `symbols`
 *   client       the TickhubClient (requests: client.createAlert(...), ...)
 *
 * `symbols` is compared by value, so an inline array literal does not resubscribe on each render.
 * `options.interval` applies to `symbols`; other options go to the TickhubClient.
 */

import { TickhubClient } from './tickhub.js';

function useTickhubWith(React, url, symbols, options = {}) {
  const { useCallback, useEffect, useRef, useState } = React;
  const clientRef = useRef(null);
  const subscribedRef = useRef({ symbols: [], interval: undefined });
  const optionsRef = useRef(options);
  optionsRef.current = options;

  const [isConnected, setIsConnected] = useState(false);
  const [data, setData] = useState(null);
  const [lastMessage, setLastMessage] = useState(null);
  const [latest, setLatest] = useState({});
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [reconnects, setReconnects] = useState(0);
  const [gaps, setGaps] = useState(0);

  const list = symbols === undefined || symbols === null ? [] : Array.isArray(symbols) ? symbols : [symbols];
  const symbolsKey = JSON.stringify(list);
  const interval = options.interval;

  useEffect(() => {
    const { interval: _ignored, React: _react, ...clientOptions } = optionsRef.current;
    const client = new TickhubClient(url, clientOptions);
    clientRef.current = client;
    subscribedRef.current = { symbols: [], interval: undefined };
    const offs = [
      client.on('open', (info) => {
        setIsConnected(true);
        setReconnects(info.reconnects);
      }),
      client.on('close', () => setIsConnected(false)),
      client.on('data', (message) => {
        setData(message.data);
        setLastMessage(message);
        setLatest((prev) => ({
          ...prev,
          [message.symbol]: { ...prev[message.symbol], [message.data_type]: message },
        }));
      }),
      client.on('status', setStatus),
      client.on('error', setError),
      client.on('gap', (gap) => setGaps((n) => n + gap.missed)),
    ];
    client.connect();
    return () => {
      for (const off of offs) off();
      client.close();
      if (clientRef.current === client) clientRef.current = null;
      setIsConnected(false);
    };
  }, [url]);

  useEffect(() => {
    const client = clientRef.current;
    if (client === null) return;
    const next = JSON.parse(symbolsKey);
    const prev = subscribedRef.current;
    if (prev.interval !== interval) {
      if (prev.symbols.length) client.unsubscribe(prev.symbols, { interval: prev.interval });
      if (next.length) client.subscribe(next, { interval });
    } else {
      const gone = prev.symbols.filter((s) => !next.includes(s));
      const added = next.filter((s) => !prev.symbols.includes(s));
      if (gone.length) client.unsubscribe(gone, { interval });
      if (added.length) client.subscribe(added, { interval });
    }
    subscribedRef.current = { symbols: next, interval };
  }, [url, symbolsKey, interval]);

  const subscribe = useCallback((s, opts) => clientRef.current?.subscribe(s, opts), []);
  const unsubscribe = useCallback((s, opts) => clientRef.current?.unsubscribe(s, opts), []);

  return {
    isConnected,
    data,
    lastMessage,
    latest,
    status,
    error,
    reconnects,
    gaps,
    subscribe,
    unsubscribe,
    client: clientRef.current,
  };
}

/** A `useTickhub` bound to the given React (`import * as React from 'react'`). */
export function createUseTickhub(React) {
  if (!React || typeof React.useState !== 'function') {
    throw new TypeError('createUseTickhub(React): pass the React module');
  }
  return function useTickhub(url, symbols, options = {}) {
    return useTickhubWith(React, url, symbols, options);
  };
}

/** The hook, with React from `options.React` or the page's `window.React` (UMD build). */
export function useTickhub(url, symbols, options = {}) {
  const React = options.React ?? globalThis.React;
  if (!React || typeof React.useState !== 'function') {
    throw new TypeError(
      'useTickhub: React not found: load React before this module (window.React), ' +
        'pass {React} in the options, or use createUseTickhub(React)',
    );
  }
  return useTickhubWith(React, url, symbols, options);
}

export default useTickhub;
