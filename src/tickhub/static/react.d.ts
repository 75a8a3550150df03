// Type declarations for react.js: the useTickhub React hook over tickhub.js.
import type {
  DataMessage,
  DataType,
  ErrorMessage,
  Interval,
  Options,
  StatusMessage,
  SubscribeOptions,
  TickhubClient,
} from './tickhub.js';

export interface UseTickhubOptions extends Options {
  /** Candle interval of `symbols` (/ws/stream, /ws/analysis). */
  interval?: Interval;
  /** React to use instead of `window.React`. */
  React?: unknown;
}

export interface UseTickhubResult {
  isConnected: boolean;
  /** The latest `data` payload, as the seed's useWebSocket returns it. */
  data: DataMessage['data'] | null;
  lastMessage: DataMessage | null;
  /** The latest message of each data_type, per symbol. */
  latest: Record<string, Partial<Record<DataType, DataMessage>>>;
  status: StatusMessage | null;
  error: ErrorMessage | null;
  reconnects: number;
  /** Messages reported missing (sum of gap.missed). */
  gaps: number;
  subscribe(symbols: string | string[], options?: SubscribeOptions): void;
  unsubscribe(symbols: string | string[], options?: { interval?: Interval }): void;
  client: TickhubClient | null;
}

export type UseTickhub = (
  url: string,
  symbols?: string | string[] | null,
  options?: UseTickhubOptions,
) => UseTickhubResult;

export function createUseTickhub(React: unknown): UseTickhub;
export const useTickhub: UseTickhub;
export default useTickhub;
