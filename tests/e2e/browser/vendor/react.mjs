// `import ... from 'react'` in a page without a bundler: an import map points 'react' here, and
// this re-exports the UMD build (react.production.min.js), loaded first as a classic script.
const React = globalThis.React;
if (!React) throw new Error("react.mjs: load react.production.min.js before any module that imports 'react'");
export default React;
export const {
  Children, Component, Fragment, PureComponent, StrictMode, Suspense,
  cloneElement, createContext, createElement, createRef, forwardRef, isValidElement, lazy, memo,
  startTransition, useCallback, useContext, useDebugValue, useDeferredValue, useEffect, useId,
  useImperativeHandle, useInsertionEffect, useLayoutEffect, useMemo, useReducer, useRef,
  useState, useSyncExternalStore, useTransition, version,
} = React;
