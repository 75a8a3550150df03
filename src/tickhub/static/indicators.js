// The dashboard's indicator vocabulary: the catalog of GET /indicators (docs/protocol.md §15.9),
// canonical entries as the server writes them (§6.2.1), readable labels for entries and alert
// operands, and the checks the picker's form makes before the server sees a set. Pure: no DOM.

/** `GET /indicators` on `server`, or null where this server does not serve it (an older one). */
export async function loadCatalog(server) {
  try {
    const response = await fetch(`${server}/indicators`, { cache: 'no-store' });
    if (!response.ok) return null;
    const body = await response.json();
    if (!Array.isArray(body?.indicators) || !body.limits) return null;
    return {
      kinds: new Map(body.indicators.map((k) => [k.name, k])),
      limits: body.limits,
      patterns: Array.isArray(body.patterns) ? body.patterns : [],
    };
  } catch {
    return null;
  }
}

/** A parameter's shortest text, as the server's canonical form writes it: 3, 0.02. */
export const numberText = (v) => String(Number(v));

/** The canonical entry of `name` at `values` (all of them): `supertrend:10,3`, `vwap`. */
export function canonicalEntry(name, values) {
  return values.length ? `${name}:${values.map(numberText).join(',')}` : name;
}

/** `{name, values}` of a canonical entry (`ema:9` -> `{name: 'ema', values: [9]}`). */
export function parseEntry(entry) {
  const [name, rest] = entry.split(':');
  return { name, values: rest ? rest.split(',').map(Number) : [] };
}

const UPPER = new Set(['sma', 'ema', 'rsi', 'macd', 'atr', 'vwap', 'adx', 'obv', 'sar']);
const NAMES = { stoch: 'Stochastic' };

/** `RSI`, `Bollinger`, `Stochastic`. */
export function kindLabel(name) {
  if (UPPER.has(name)) return name.toUpperCase();
  return NAMES[name] ?? name.charAt(0).toUpperCase() + name.slice(1);
}

/** `EMA(9)`, `Bollinger(20, 2)`, `VWAP`. */
export function entryLabel(entry) {
  const { name, values } = parseEntry(entry);
  return values.length ? `${kindLabel(name)}(${values.map(numberText).join(', ')})` : kindLabel(name);
}

const PRICE_OPERANDS = {
  close: 'close', open: 'open', high: 'high', low: 'low', volume: 'volume',
  prev_high: 'previous high', prev_low: 'previous low', prev_close: 'previous close',
};
const MEMBER_LABELS = { plus_di: '+DI', minus_di: '−DI', k: '%K', d: '%D' };

/** An alert operand, readable: `rsi:14` -> `RSI(14)`, `macd.signal:12,26,9` -> `MACD(12, 26, 9)
 * signal`, `pivots.r1` -> `Pivots R1`, `prev_high` -> `previous high`. */
export function operandLabel(operand) {
  if (!operand) return '';
  if (PRICE_OPERANDS[operand]) return PRICE_OPERANDS[operand];
  const [head, params] = operand.split(':');
  const [name, member] = head.split('.');
  const base = entryLabel(params === undefined ? name : `${name}:${params}`);
  if (!member) return base;
  const shown = MEMBER_LABELS[member] ?? (/^[rs]\d$/.test(member) ? member.toUpperCase() : member);
  return `${base} ${shown}`;
}

/** The operands a price alert's sides may name besides indicators. */
export const PLAIN_OPERANDS = Object.keys(PRICE_OPERANDS);

/** The alert operands of an entry: itself for a number, one per member otherwise
 * (`bollinger:20,2` -> `bollinger.upper:20,2`, ...). */
export function operandsOf(entry, kind) {
  if (!kind || kind.members.length === 0) return [entry];
  const { name } = parseEntry(entry);
  const params = entry.includes(':') ? entry.slice(entry.indexOf(':')) : '';
  return kind.members.filter((m) => m !== 'direction').map((m) => `${name}.${m}${params}`);
}

/**
 * The entry of `kind` at the parameter texts `texts`, or `{error}` saying which parameter is
 * wrong and what it must be (the ranges and constraints of the catalog, as the server checks).
 */
export function checkEntry(kind, texts) {
  const values = [];
  for (const [i, p] of kind.params.entries()) {
    const text = String(texts[i] ?? '').trim();
    const v = text === '' ? p.default : Number(text);
    const what = p.integer ? 'a whole number' : 'a number';
    if (!Number.isFinite(v) || (p.integer && !Number.isInteger(v)) || v < p.min || v > p.max) {
      return { error: `${kindLabel(kind.name)} ${p.name}: ${what} from ${numberText(p.min)} to ${numberText(p.max)}` };
    }
    values.push(v);
  }
  for (const c of kind.constraints ?? []) {
    const a = values[kind.params.findIndex((p) => p.name === c.param)];
    const b = values[kind.params.findIndex((p) => p.name === c.other)];
    if (!(c.op === '<' ? a < b : a <= b)) {
      return { error: `${kindLabel(kind.name)}: ${c.param} must be ${c.op === '<' ? 'below' : 'at most'} ${c.other}` };
    }
  }
  return { entry: canonicalEntry(kind.name, values) };
}

/** A saved (or linked) set, kept to the entries this catalog knows and takes, canonical, at most
 * the server's limit. */
export function keepKnown(entries, catalog) {
  const kept = [];
  for (const entry of Array.isArray(entries) ? entries : []) {
    if (typeof entry !== 'string') continue;
    const { name, values } = parseEntry(entry);
    const kind = catalog.kinds.get(name);
    if (!kind || values.length > kind.params.length) continue; // omitted trailing ones: defaults
    const checked = checkEntry(kind, values);
    if (checked.entry && !kept.includes(checked.entry)) kept.push(checked.entry);
  }
  return kept.slice(0, catalog.limits.max_indicators_per_subscription);
}
