// tickhub dashboard: a candlestick chart with indicator overlays, a watchlist, alerts and the
// portfolio, live over the four WebSocket endpoints through tickhub.js. No build step.
//
// Query parameters (all optional):
//   ?server=http://host:8081   another tickhub instance (default: the one serving this page)
//   &symbols=RELIANCE,TCS      the watchlist (default: the last one used, kept in localStorage)
//   &chart=RELIANCE&interval=5m
//   &indicators=ema:9;supertrend:10,3   my indicators (entries joined by ';', as a set's key)
//
// "My indicators" (the picker under the chart) is an indicator set from GET /indicators, kept in
// localStorage with the watchlist: a second /ws/analysis subscription of the chart's symbol and
// interval beside the default one, its values in a table and its price-scale members on the chart.
import { TickhubClient, indicatorSetOf } from './tickhub.js';
import {
  PLAIN_OPERANDS,
  checkEntry,
  entryLabel,
  keepKnown,
  kindLabel,
  loadCatalog,
  operandLabel,
  operandsOf,
  parseEntry,
} from './indicators.js';
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  createChart,
} from './vendor/lightweight-charts-5.2.1/lightweight-charts.standalone.production.mjs';

const params = new URLSearchParams(location.search);
const server = (params.get('server') || location.origin).replace(/\/+$/, '');
const wsBase = server.replace(/^http/i, 'ws');
const IST_OFFSET = 5.5 * 3600; // the chart axis shows exchange time (Asia/Kolkata, no DST)
const FALLBACK_SYMBOLS = ['NIFTY 50', 'NIFTY BANK', 'RELIANCE', 'TCS', 'HDFCBANK', 'INFY', 'ICICIBANK', 'SBIN'];
const PREFERRED_WATCHLIST = ['NIFTY 50', 'RELIANCE', 'TCS', 'HDFCBANK', 'INFY', 'ICICIBANK'];
const STORE_KEY = 'tickhub.dashboard';
const MAX_TRIGGERED = 60;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const c of children) node.append(c);
  return node;
};

// --- formatting ----------------------------------------------------------------------------------

const priceFmt = new Intl.NumberFormat('en-IN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compactFmt = new Intl.NumberFormat('en-IN', { notation: 'compact', maximumFractionDigits: 2 });
const timeFmt = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Asia/Kolkata', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
});
const dateTimeFmt = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Asia/Kolkata', day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit',
  second: '2-digit', hour12: false,
});
const groupedFmt = new Map(); // decimals -> an en-IN format keeping them
/** The numbers of a server's text (an alert's message: "RELIANCE at 1494.65 ...") grouped as the
 * rest of the page shows them (1,494.65), each keeping its decimals; short numbers stay as sent. */
const groupNumbers = (text) =>
  text.replace(/(?<![\d.,])\d{4,}(?:\.(\d+))?(?![\d,])/g, (match, decimals = '') => {
    const digits = decimals.length;
    if (!groupedFmt.has(digits)) {
      groupedFmt.set(digits, new Intl.NumberFormat('en-IN', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    }
    return groupedFmt.get(digits).format(Number(match));
  });
const num = (v, digits = 2) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));
const price = (v) => (v === null || v === undefined ? '–' : priceFmt.format(v));
const signed = (v, suffix = '') => {
  if (v === null || v === undefined) return '–';
  const x = Math.abs(v) < 0.005 ? 0 : v; // no "-0.00"
  return `${x > 0 ? '+' : ''}${priceFmt.format(x)}${suffix}`;
};
const tone = (node, v) => {
  node.classList.toggle('up', v > 0);
  node.classList.toggle('down', v < 0);
};
const chartTime = (iso) => Math.floor(Date.parse(iso) / 1000) + IST_OFFSET;

// --- state ---------------------------------------------------------------------------------------

const saved = (() => {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
  } catch {
    return {};
  }
})();

const state = {
  instruments: [], // [{symbol, name, exchange, tradable}]
  watchlist: [],
  chartSymbol: null,
  chartInterval: params.get('interval') || saved.interval || '1m',
  quotes: new Map(), // symbol -> latest tick/market data payload
  positions: new Map(), // symbol -> position_data payload
  totals: null,
  alerts: new Map(), // id -> user alert
  triggered: new Map(), // `${id}|${triggered_at}` -> alert at its firing
  updates: 0,
  marketTime: null,
  catalog: null, // GET /indicators, or null where the server does not serve it
  // Canonical entries, in the order chosen (checked against the catalog once it is loaded).
  indicatorSet: params.has('indicators')
    ? params.get('indicators').split(';').map((e) => e.trim().toLowerCase()).filter(Boolean)
    : Array.isArray(saved.indicators) ? saved.indicators : [],
  setValues: null, // the set's latest technical_indicators, for the chart's symbol and interval
  alertKinds: false, // the server takes indicator and pattern alerts (its alert_data lists them)
  trades: false, // the client and the server take trades
};

function save() {
  try {
    localStorage.setItem(
      STORE_KEY,
      JSON.stringify({
        watchlist: state.watchlist, chart: state.chartSymbol, interval: state.chartInterval, indicators: state.indicatorSet,
      }),
    );
  } catch {
    // storage unavailable (private mode): the defaults apply next time
  }
}

// --- connections ---------------------------------------------------------------------------------

const clientOptions = {
  heartbeatInterval: 10000, heartbeatTimeout: 10000, connectTimeout: 5000, minDelay: 300, maxDelay: 8000,
};
const clients = {
  stream: new TickhubClient(`${wsBase}/ws/stream`, { ...clientOptions, batch: true }), // many ticks: fewer frames
  analysis: new TickhubClient(`${wsBase}/ws/analysis`, clientOptions),
  alerts: new TickhubClient(`${wsBase}/ws/alerts`, clientOptions),
  portfolio: new TickhubClient(`${wsBase}/ws/portfolio`, clientOptions),
};

/** The topics each client should hold; `sync` subscribes and unsubscribes the difference. */
const held = { stream: new Map(), analysis: new Map(), alerts: new Map() };

const topicKey = (t) => `${t.symbol}|${t.interval ?? ''}|${t.indicators?.join(',') ?? ''}`;
const seriesKey = (t) => `${t.symbol}|${t.interval ?? ''}`;
const topicOptions = (t) => ({
  ...(t.interval ? { interval: t.interval } : {}),
  ...(t.indicators ? { indicators: t.indicators } : {}),
});

function sync(name, wanted) {
  const client = clients[name];
  const current = held[name];
  const next = new Map(wanted.map((t) => [topicKey(t), t]));
  // An unsubscribe takes every indicator set of its symbol and interval with it: where one
  // topic of them goes, the ones still wanted are asked for again.
  const dropped = new Set();
  for (const [key, t] of current) {
    if (next.has(key) || dropped.has(seriesKey(t))) continue;
    dropped.add(seriesKey(t));
    client.unsubscribe(t.symbol, t.interval ? { interval: t.interval } : {});
  }
  for (const [key, t] of next) {
    if (!current.has(key) || dropped.has(seriesKey(t))) client.subscribe(t.symbol, topicOptions(t));
  }
  held[name] = next;
}

/** The chosen set as the server keys it (sorted), or null when there is none to ask for. */
function wantedSet() {
  return state.catalog && state.indicatorSet.length ? [...state.indicatorSet].sort() : null;
}

function syncAll() {
  const chart = state.chartSymbol;
  const streamTopics = state.watchlist.map((symbol) => ({ symbol, interval: '1m' }));
  if (chart) streamTopics.push({ symbol: chart, interval: state.chartInterval });
  sync('stream', streamTopics);
  const analysisTopics = chart ? [{ symbol: chart, interval: state.chartInterval }] : [];
  const set = wantedSet();
  if (chart && set) analysisTopics.push({ symbol: chart, interval: state.chartInterval, indicators: set });
  sync('analysis', analysisTopics);
  const alertSymbols = new Set(state.watchlist);
  if (chart) alertSymbols.add(chart);
  for (const a of state.alerts.values()) alertSymbols.add(a.symbol);
  sync('alerts', [...alertSymbols].map((symbol) => ({ symbol })));
}

// --- connection indicator and feed status --------------------------------------------------------

function renderConnection() {
  const list = Object.values(clients);
  const open = list.filter((c) => c.connected).length;
  let stateName;
  let text;
  if (open === list.length) {
    stateName = 'connected';
    text = 'connected';
  } else if (list.some((c) => c.state === 'reconnecting')) {
    stateName = 'reconnecting';
    const attempt = Math.max(...list.map((c) => c.attempt));
    text = `reconnecting… (attempt ${attempt})`;
  } else {
    stateName = 'connecting';
    text = open > 0 ? `connecting… (${open}/${list.length})` : 'connecting…';
  }
  const conn = $('conn');
  conn.dataset.state = stateName;
  $('conn-text').textContent = text;
  $('reconnects').textContent = String(Math.max(...list.map((c) => c.reconnects)));
}

function showFeed(value) {
  const node = $('feed-state');
  node.textContent = value ?? '–';
  node.dataset.state = value ?? 'unknown';
}

async function pollHealth() {
  try {
    const response = await fetch(`${server}/health`, { cache: 'no-store' });
    const body = await response.json();
    showFeed(body.feed?.state ?? body.status);
    if (body.feed?.market_time && !state.marketTime) showMarketTime(body.feed.market_time);
  } catch {
    showFeed('unreachable');
  }
}

let healthTimer = 0;
function pollHealthSoon() {
  clearTimeout(healthTimer);
  healthTimer = setTimeout(pollHealth, 250);
}

function showMarketTime(iso) {
  state.marketTime = iso;
  $('market-time').textContent = dateTimeFmt.format(new Date(iso));
}

for (const client of Object.values(clients)) {
  client.on('state', renderConnection);
  client.on('status', (msg) => showFeed(msg.feed));
  client.on('open', (info) => {
    renderConnection();
    if (info.reconnect) pollHealthSoon();
  });
  client.on('close', pollHealthSoon); // is the service down, or only this connection?
  client.on('error', (msg) => {
    if (msg.request === 'subscribe' && msg.code === 'unknown_symbol') dropSymbol(msg.symbol);
    else console.warn('tickhub:', msg.code, msg.message);
  });
  client.on('gap', (gap) => console.info(`tickhub: ${gap.topic}: ${gap.missed} update(s) skipped (slow link)`));
}

// --- instruments and pickers ---------------------------------------------------------------------

async function loadInstruments() {
  try {
    const response = await fetch(`${server}/instruments`, { cache: 'no-store' });
    if (response.ok) {
      const list = await response.json();
      if (Array.isArray(list) && list.length > 0) return list;
    }
  } catch {
    // not served by this version: fall back below
  }
  return FALLBACK_SYMBOLS.map((symbol) => ({ symbol, name: symbol, exchange: 'NSE', tradable: !symbol.startsWith('NIFTY') }));
}

function knownSymbol(symbol) {
  return state.instruments.some((i) => i.symbol === symbol);
}

function addInstrument(symbol) {
  if (!symbol || symbol === '*' || knownSymbol(symbol)) return;
  state.instruments.push({ symbol, name: symbol, exchange: 'NSE', tradable: true });
  renderPickers();
}

function fillSelect(select, symbols, selected, first = null) {
  const keep = selected ?? select.value;
  select.replaceChildren();
  if (first) select.append(el('option', { value: '', textContent: first }));
  for (const s of symbols) select.append(el('option', { value: s, textContent: s }));
  if (keep && symbols.includes(keep)) select.value = keep;
}

function renderPickers() {
  const all = state.instruments.map((i) => i.symbol);
  fillSelect($('chart-symbol'), all, state.chartSymbol);
  fillSelect($('alert-symbol'), all, $('alert-symbol').value || state.chartSymbol);
  fillSelect($('trade-symbol'), all, $('trade-symbol').value || state.chartSymbol);
  fillSelect($('add-symbol'), all.filter((s) => !state.watchlist.includes(s)), '', '+ add symbol');
}

function dropSymbol(symbol) {
  state.watchlist = state.watchlist.filter((s) => s !== symbol);
  state.instruments = state.instruments.filter((i) => i.symbol !== symbol);
  if (state.chartSymbol === symbol) setChartSymbol(state.watchlist[0] ?? null);
  renderWatchlist();
  renderPickers();
  syncAll();
  save();
}

// --- chart ---------------------------------------------------------------------------------------

const chartBox = $('chart');
const chart = createChart(chartBox, {
  autoSize: true,
  layout: {
    background: { type: ColorType.Solid, color: '#161b22' },
    textColor: '#c9d1d9',
    fontFamily: getComputedStyle(document.documentElement).fontFamily,
  },
  grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
  crosshair: { mode: CrosshairMode.Normal },
  rightPriceScale: { borderColor: '#30363d', scaleMargins: { top: 0.08, bottom: 0.25 } },
  timeScale: { borderColor: '#30363d', timeVisible: true, secondsVisible: false, rightOffset: 4, barSpacing: 9 },
});
// The library's attribution logo sits at the pane's bottom-left, where the volume bars are: on a
// phone it covers them. Below 600 px (the layout's phone breakpoint) the logo is off and the
// attribution its licence asks for is the page's "charts by TradingView" link under the chart.
const phone = window.matchMedia('(max-width: 600px)');
const placeAttribution = () => {
  chart.applyOptions({ layout: { attributionLogo: !phone.matches } });
  $('chart-attribution').hidden = !phone.matches;
};
phone.addEventListener('change', placeAttribution);
const candleSeries = chart.addSeries(CandlestickSeries, {
  upColor: '#26a69a', downColor: '#ef5350', borderVisible: false,
  wickUpColor: '#26a69a', wickDownColor: '#ef5350',
});
const volumeSeries = chart.addSeries(HistogramSeries, {
  priceFormat: { type: 'volume' }, priceScaleId: '', lastValueVisible: false, priceLineVisible: false,
});
volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
const line = (color, style = 0) =>
  chart.addSeries(LineSeries, {
    color, lineWidth: style ? 1 : 2, lineStyle: style, priceLineVisible: false,
    lastValueVisible: false, crosshairMarkerVisible: false,
  });
const overlays = {
  sma: { series: [line('#f2c94c')], points: [new Map()], last: [-Infinity], provisional: [new Set()] },
  ema: { series: [line('#bb86fc')], points: [new Map()], last: [-Infinity], provisional: [new Set()] },
  bb: {
    series: [line('#4fc3f7', 2), line('#4fc3f7', 2)],
    points: [new Map(), new Map()],
    last: [-Infinity, -Infinity],
    provisional: [new Set(), new Set()],
  },
};
const OVERLAY_PERIOD = 20;
const setLines = new Map(); // my indicators' lines: `${entry}|${member}` -> {entry, member, series, points, last}
placeAttribution();

const bars = new Map(); // chart time -> {time, open, high, low, close, volume}
const MAX_BARS = 5000; // a fast simulated market makes a candle a second: keep the newest
let lastTime = -Infinity;
let chartEpoch = null;
let chartUpdates = 0;

function volumeBar(b) {
  return { time: b.time, value: b.volume, color: b.close >= b.open ? 'rgba(38,166,154,0.45)' : 'rgba(239,83,80,0.45)' };
}

function toBar(c) {
  return { time: chartTime(c.start), open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume };
}

function markChart() {
  chartBox.dataset.bars = String(bars.size);
  chartBox.dataset.updates = String(++chartUpdates);
  chartBox.dataset.lastTime = bars.size ? String(lastTime) : '';
  chartBox.dataset.overlayPoints = String(overlays.sma.points[0].size);
  chartBox.dataset.overlayLastTime = Number.isFinite(overlays.sma.last[0]) ? String(overlays.sma.last[0]) : '';
  chartBox.dataset.setLines = String(setLines.size);
  chartBox.dataset.setPoints = String([...setLines.values()].reduce((n, l) => n + l.points.size, 0));
}

function redrawBars() {
  let sorted = [...bars.values()].sort((a, b) => a.time - b.time);
  if (sorted.length > MAX_BARS) {
    for (const b of sorted.slice(0, sorted.length - MAX_BARS)) bars.delete(b.time);
    sorted = sorted.slice(-MAX_BARS);
  }
  lastTime = sorted.length ? sorted[sorted.length - 1].time : -Infinity;
  chartBox.dataset.firstTime = sorted.length ? String(sorted[0].time) : '';
  candleSeries.setData(sorted.map(({ volume, ...ohlc }) => ohlc));
  volumeSeries.setData(sorted.map(volumeBar));
}

function clearChart() {
  bars.clear();
  lastTime = -Infinity;
  for (const o of Object.values(overlays)) {
    o.points.forEach((p) => p.clear());
    o.provisional.forEach((p) => p.clear());
    o.series.forEach((s) => s.setData([]));
    o.last.fill(-Infinity);
  }
  candleSeries.setData([]);
  volumeSeries.setData([]);
  clearSetLines();
  chartEpoch = null;
  markChart();
}

/** Messages of another producer run (the service restarted) void what the chart holds. */
function checkEpoch(msg) {
  if (chartEpoch !== null && msg.epoch !== chartEpoch) {
    clearChart();
    loadHistory(state.chartSymbol, state.chartInterval); // what the new run kept: the store's
  }
  chartEpoch = msg.epoch;
}

function putBar(bar) {
  bars.set(bar.time, bar);
  if (bar.time >= lastTime) {
    lastTime = bar.time;
    const { volume, ...ohlc } = bar;
    candleSeries.update(ohlc);
    volumeSeries.update(volumeBar(bar));
    if (bars.size > MAX_BARS * 1.2) redrawBars();
  } else {
    redrawBars(); // a late update of an older candle: rare, so redraw
  }
  markChart();
}

function setHistory(history) {
  const candles = history.map(toBar);
  if (!candles.length) return;
  // The history replaces what the chart holds in its time range, and only there: the analysis
  // snapshot's 100 candles must not cut off the longer past that /candles gave.
  const first = candles[0].time;
  const end = candles[candles.length - 1].time;
  for (const [t] of bars) if (t >= first && t <= end) bars.delete(t);
  for (const b of candles) bars.set(b.time, b);
  redrawBars();
  backfillOverlays([...bars.values()].sort((a, b) => a.time - b.time));
  backfillSetLines();
  chart.timeScale().scrollToRealTime();
  markChart();
}

// The analysis stream sends indicator values as candles close; the lines' past (before this page
// opened) is computed here from the same candles: SMA and Bollinger(20, 2) exactly as TA-Lib
// does (population deviation), EMA(20) seeded with the SMA, which converges to the server's.
function backfillOverlays(sorted) {
  const n = OVERLAY_PERIOD;
  const closes = sorted.map((b) => b.close);
  let ema = null;
  for (let i = n - 1; i < sorted.length; i++) {
    const window = closes.slice(i - n + 1, i + 1);
    const mean = window.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(window.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
    ema = ema === null ? mean : (closes[i] - ema) * (2 / (n + 1)) + ema;
    const t = sorted[i].time;
    if (!overlays.sma.points[0].has(t)) overlays.sma.points[0].set(t, mean);
    if (!overlays.ema.points[0].has(t)) overlays.ema.points[0].set(t, ema);
    if (!overlays.bb.points[0].has(t)) overlays.bb.points[0].set(t, mean + 2 * sd);
    if (!overlays.bb.points[1].has(t)) overlays.bb.points[1].set(t, mean - 2 * sd);
  }
  for (const o of Object.values(overlays)) o.series.forEach((_, k) => drawOverlay(o, k));
}

function drawOverlay(o, k) {
  const points = o.points[k];
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  for (const [t] of sorted.slice(0, Math.max(0, sorted.length - MAX_BARS))) points.delete(t);
  const kept = sorted.slice(-MAX_BARS);
  o.last[k] = kept.length ? kept[kept.length - 1][0] : -Infinity;
  o.series[k].setData(kept.map(([time, value]) => ({ time, value })));
}

function putOverlay(name, k, time, value, provisional = false) {
  if (value === null || value === undefined) return;
  const o = overlays[name];
  if (provisional) {
    if (o.points[k].has(time) && !o.provisional[k].has(time)) return; // the server's value stays
    o.provisional[k].add(time);
  } else {
    o.provisional[k].delete(time);
  }
  o.points[k].set(time, value);
  if (time >= o.last[k]) {
    o.last[k] = time;
    o.series[k].update({ time, value });
    if (o.points[k].size > MAX_BARS * 1.2) drawOverlay(o, k);
  } else {
    drawOverlay(o, k);
  }
}

// The server's analysis comes with each closed candle, and for the forming one only when
// UPDATE_INTERVAL passes within a candle: at SIM_SPEED=60 a 1m candle lasts a second, so the lines
// would always end at the last closed candle. The forming candle's point is computed here from the
// chart's candles (the same formulas as the backfill; EMA from the server's previous value) and
// replaced by the server's value when one comes for that candle.
function extendOverlays(bar) {
  const n = OVERLAY_PERIOD;
  const window = [...bars.values()].filter((b) => b.time <= bar.time).sort((a, b) => a.time - b.time).slice(-n - 1);
  if (window.length < n) return;
  const closes = window.slice(-n).map((b) => b.close);
  const mean = closes.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(closes.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  putOverlay('sma', 0, bar.time, mean, true);
  putOverlay('bb', 0, bar.time, mean + 2 * sd, true);
  putOverlay('bb', 1, bar.time, mean - 2 * sd, true);
  const previous = window.length > n ? overlays.ema.points[0].get(window[window.length - 2].time) : undefined;
  if (previous !== undefined) putOverlay('ema', 0, bar.time, (bar.close - previous) * (2 / (n + 1)) + previous, true);
}

function applyOverlayVisibility() {
  for (const name of Object.keys(overlays)) {
    const visible = $(`ov-${name}`).checked;
    overlays[name].series.forEach((s) => s.applyOptions({ visible }));
  }
}

// The chart's past from GET /candles (closed candles, oldest first), so that a fresh page shows a
// full chart at once, before the first live candle. The analysis snapshot's history and the live
// candles merge into it by time.
const HISTORY_LIMIT = 500;
let historyRequest = 0;

async function loadHistory(symbol, interval) {
  if (!symbol) return;
  const request = ++historyRequest;
  try {
    const candles = await clients.analysis.history(symbol, { interval, limit: HISTORY_LIMIT });
    if (request !== historyRequest || symbol !== state.chartSymbol || interval !== state.chartInterval) return;
    setHistory(candles);
  } catch (err) {
    console.warn('tickhub: no history for', symbol, interval, err.code ?? err);
  }
}

function onChartCandle(msg, meta) {
  if (msg.symbol !== state.chartSymbol || msg.interval !== state.chartInterval) return;
  if (meta.stale) return;
  checkEpoch(msg);
  const bar = toBar(msg.data);
  putBar(bar);
  if (bar.time >= overlays.sma.last[0]) {
    extendOverlays(bar);
    markChart();
  }
}

function onAnalysis(msg, meta) {
  if (msg.symbol !== state.chartSymbol || msg.interval !== state.chartInterval) return;
  const a = msg.data;
  if (meta.snapshot && Array.isArray(a.history)) {
    checkEpoch(msg);
    setHistory(a.history);
  }
  if (meta.stale) return;
  checkEpoch(msg);
  const t = chartTime(a.candle.start);
  const ind = a.technical_indicators;
  putOverlay('sma', 0, t, ind.sma_20);
  putOverlay('ema', 0, t, ind.ema_20);
  putOverlay('bb', 0, t, ind.bollinger.upper);
  putOverlay('bb', 1, t, ind.bollinger.lower);
  markChart();
  renderIndicators(a);
}

function renderIndicators(a) {
  const ind = a.technical_indicators;
  const trend = $('ind-trend');
  trend.dataset.trend = a.trend;
  const warming = ind.warmup.have < ind.warmup.needed ? ` · warm-up ${ind.warmup.have}/${ind.warmup.needed}` : '';
  trend.textContent = a.trend + warming;
  $('ind-rsi').textContent = num(ind.rsi_14, 1);
  const hist = $('ind-macd');
  hist.textContent = num(ind.macd.histogram, 3);
  tone(hist, ind.macd.histogram ?? 0);
  $('ind-atr').textContent = num(ind.atr_14, 2);
  $('ind-vwap').textContent = price(ind.vwap);
  const risk = a.risk_metrics;
  $('ind-vol').textContent = risk.realised_volatility === null ? '–' : `${num(risk.realised_volatility * 100, 1)} %`;
  $('ind-var').textContent = risk.var_95 === null ? '–' : `${num(risk.var_95 * 100, 2)} %`;
  $('ind-beta').textContent = num(risk.beta, 2);
  $('ind-patterns').textContent = a.patterns.length
    ? a.patterns.map((p) => `${p.name.replaceAll('_', ' ')} (${p.direction})`).join(', ')
    : 'none on the last candle';
}

function setChartSymbol(symbol, interval = state.chartInterval) {
  if (symbol === state.chartSymbol && interval === state.chartInterval) return;
  state.chartSymbol = symbol;
  state.chartInterval = interval;
  $('chart-symbol').value = symbol ?? '';
  $('chart-interval').value = interval;
  clearChart();
  loadHistory(symbol, interval);
  for (const id of ['ind-trend', 'ind-rsi', 'ind-macd', 'ind-atr', 'ind-vwap', 'ind-vol', 'ind-var', 'ind-beta', 'ind-patterns']) {
    $(id).textContent = '–';
  }
  state.setValues = null; // my indicators' values were the previous chart's
  renderSetValues();
  renderChartQuote();
  renderWatchlist();
  if (!$('alert-value').value) $('alert-symbol').value = symbol ?? '';
  syncAll();
  save();
}

function renderChartQuote() {
  const q = state.quotes.get(state.chartSymbol);
  $('chart-price').textContent = q ? price(q.price) : '–';
  const chg = $('chart-change');
  chg.textContent = q ? `${signed(q.change)} (${signed(q.change_percent, ' %')})` : '–';
  tone(chg, q ? q.change : 0);
}

// --- my indicators: the picker, its values and its lines ----------------------------------------

// The set's price-scale members as lines over the candles, from the values its topic sends (one
// point per candle: closed ones, and the forming one as UPDATE_INTERVAL allows). Their past
// before the page subscribed is computed here from the chart's candles for the moving averages
// and bands (SMA, EMA seeded with the SMA, Bollinger with the population deviation, Donchian), as
// the default overlays' is; Supertrend, SAR, VWAP and the pivots start with the subscription.
const SET_COLOURS = ['#ff9800', '#00e676', '#f06292', '#26c6da', '#d4e157', '#ab47bc', '#ffee58', '#a1887f'];

function setLineMembers(entry, kind) {
  if (kind.name === 'supertrend') return ['value']; // `direction` colours the line
  return kind.members.length ? kind.members : [''];
}

function rebuildSetLines() {
  for (const l of setLines.values()) chart.removeSeries(l.series);
  setLines.clear();
  let colour = 0;
  for (const entry of state.indicatorSet) {
    const kind = state.catalog?.kinds.get(parseEntry(entry).name);
    if (!kind?.price_scale) continue;
    const base = SET_COLOURS[colour++ % SET_COLOURS.length];
    for (const member of setLineMembers(entry, kind)) {
      const dotted = kind.name === 'sar';
      const series = chart.addSeries(LineSeries, {
        // Pivot levels lie far from the price: they must not squash the candles' scale.
        ...(kind.name === 'pivots' ? { autoscaleInfoProvider: () => null } : {}),
        color: base, lineWidth: member === 'middle' || member === 'pivot' ? 1 : 2,
        lineStyle: member && member !== 'value' && member !== 'pivot' ? 2 : 0,
        lineVisible: !dotted, pointMarkersVisible: dotted, pointMarkersRadius: 2,
        priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
      });
      setLines.set(`${entry}|${member}`, { entry, member, series, points: new Map(), last: -Infinity });
    }
  }
  backfillSetLines();
  markChart();
}

function backfillSetLines() {
  if (setLines.size === 0 || bars.size === 0) return;
  const sorted = [...bars.values()].sort((a, b) => a.time - b.time);
  const closes = sorted.map((b) => b.close);
  const past = new Map(); // line -> points
  for (const l of setLines.values()) {
    const { name, values } = parseEntry(l.entry);
    if (!['sma', 'ema', 'bollinger', 'donchian'].includes(name)) continue;
    const n = values[0];
    const points = [];
    let ema = null;
    for (let i = n - 1; i < sorted.length; i++) {
      const window = closes.slice(i - n + 1, i + 1);
      const mean = window.reduce((a, b) => a + b, 0) / n;
      let value = mean;
      if (name === 'ema') value = ema = ema === null ? mean : (closes[i] - ema) * (2 / (n + 1)) + ema;
      if (name === 'bollinger' && l.member !== 'middle') {
        const sd = Math.sqrt(window.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
        value = l.member === 'upper' ? mean + values[1] * sd : mean - values[1] * sd;
      }
      if (name === 'donchian') {
        const span = sorted.slice(i - n + 1, i + 1);
        const high = Math.max(...span.map((b) => b.high));
        const low = Math.min(...span.map((b) => b.low));
        value = l.member === 'upper' ? high : l.member === 'lower' ? low : (high + low) / 2;
      }
      points.push({ time: sorted[i].time, value });
    }
    past.set(l, points);
  }
  for (const [l, points] of past) {
    for (const p of points) if (!l.points.has(p.time)) l.points.set(p.time, p); // the server's stay
    const kept = [...l.points.values()].sort((a, b) => a.time - b.time).slice(-MAX_BARS);
    l.points = new Map(kept.map((p) => [p.time, p]));
    l.last = kept.length ? kept[kept.length - 1].time : -Infinity;
    l.series.setData(kept);
  }
}

function clearSetLines() {
  for (const l of setLines.values()) {
    l.points.clear();
    l.last = -Infinity;
    l.series.setData([]);
  }
}

function putSetPoint(line, point) {
  line.points.set(point.time, point);
  if (point.time >= line.last) {
    line.last = point.time;
    line.series.update(point);
    if (line.points.size <= MAX_BARS * 1.2) return;
  }
  const kept = [...line.points.values()].sort((a, b) => a.time - b.time).slice(-MAX_BARS);
  line.points = new Map(kept.map((p) => [p.time, p]));
  line.last = kept.length ? kept[kept.length - 1].time : -Infinity;
  line.series.setData(kept);
}

function onSetAnalysis(msg, meta) {
  if (msg.symbol !== state.chartSymbol || msg.interval !== state.chartInterval || meta.stale) return;
  if (indicatorSetOf(msg).join(',') !== wantedSet()?.join(',')) return; // a set left behind
  checkEpoch(msg);
  const a = msg.data;
  const values = a.technical_indicators;
  const time = chartTime(a.candle.start);
  for (const l of setLines.values()) {
    const v = values[l.entry];
    const value = l.member ? v?.[l.member] : v;
    if (typeof value !== 'number') continue;
    const point = { time, value };
    if (l.member === 'value' && v.direction) point.color = v.direction === 'up' ? '#26a69a' : '#ef5350';
    putSetPoint(l, point);
  }
  state.setValues = values;
  renderSetValues();
  markChart();
}

function formatMember(value, kind) {
  if (value === null || value === undefined) return '–';
  if (typeof value !== 'number') return String(value);
  if (kind?.price_scale) return price(value);
  return Math.abs(value) >= 1e5 ? compactFmt.format(value) : num(value, 2);
}

function renderSetValues() {
  const table = $('set-values');
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!state.catalog) return; // no picker on this server
  const values = state.setValues;
  for (const entry of state.indicatorSet) {
    const kind = state.catalog?.kinds.get(parseEntry(entry).name);
    const members = kind?.members.length ? kind.members : [''];
    const cell = el('td', { className: 'members' });
    for (const member of members) {
      const v = values?.[entry];
      const value = member ? v?.[member] : v;
      const shown = el('b', { className: 'val', textContent: formatMember(value, kind) });
      if (member === 'direction' || member === 'histogram') tone(shown, value === 'up' ? 1 : value === 'down' ? -1 : value ?? 0);
      const item = el('span', { className: 'member' }, member ? el('small', { textContent: member }) : '', shown);
      item.dataset.key = member ? `${entry}.${member}` : entry;
      cell.append(item);
    }
    const row = el('tr', {}, el('td', { className: 'ind', textContent: entryLabel(entry), title: entry }), cell);
    row.dataset.entry = entry;
    body.append(row);
  }
  table.hidden = state.indicatorSet.length === 0;
  const warm = values?.warmup;
  const warmup = $('set-warmup');
  warmup.hidden = !warm || warm.have >= warm.needed;
  warmup.textContent = warm ? `warm-up: ${warm.have} of ${warm.needed} candles` : '';
}

function showPickerError(text) {
  const node = $('picker-error');
  node.textContent = text ?? '';
  node.hidden = !text;
}

function renderPickerParams() {
  const kind = state.catalog.kinds.get($('picker-kind').value);
  const box = $('picker-params');
  box.replaceChildren();
  kind.params.forEach((p, i) => {
    const input = el('input', {
      id: `picker-param-${i}`, type: 'number', value: String(p.default), placeholder: String(p.default),
      min: String(p.min), max: String(p.max), step: p.integer ? '1' : 'any', inputMode: p.integer ? 'numeric' : 'decimal',
    });
    input.dataset.param = p.name;
    input.setAttribute('aria-label', `${kindLabel(kind.name)} ${p.name} (${p.min} to ${p.max})`);
    box.append(el('label', { className: 'param', title: `${p.min} to ${p.max}` }, `${p.name} `, input));
  });
}

function renderChosen() {
  const list = $('picker-chosen');
  list.replaceChildren();
  for (const entry of state.indicatorSet) {
    const remove = el('button', { className: 'link', type: 'button', textContent: '×', title: `remove ${entry}` });
    remove.setAttribute('aria-label', `remove ${entryLabel(entry)}`);
    remove.addEventListener('click', () => setIndicatorSet(state.indicatorSet.filter((e) => e !== entry)));
    const chip = el('li', { title: entry }, entryLabel(entry), remove);
    chip.dataset.entry = entry;
    list.append(chip);
  }
  const limit = state.catalog?.limits.max_indicators_per_subscription ?? 0;
  $('picker-count').textContent = `${state.indicatorSet.length} of ${limit}`;
  $('picker-add').disabled = state.indicatorSet.length >= limit;
}

function setIndicatorSet(entries) {
  state.indicatorSet = entries;
  state.setValues = null;
  showPickerError(null);
  renderChosen();
  renderSetValues();
  rebuildSetLines();
  renderOperands();
  syncAll();
  save();
}

function initPicker() {
  const catalog = state.catalog;
  if (!catalog) return; // an older server: no picker, the page as it was
  state.indicatorSet = keepKnown(state.indicatorSet, catalog);
  const select = $('picker-kind');
  for (const kind of catalog.kinds.values()) select.append(el('option', { value: kind.name, textContent: kindLabel(kind.name) }));
  select.addEventListener('change', renderPickerParams);
  renderPickerParams();
  $('picker-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const kind = catalog.kinds.get(select.value);
    const texts = kind.params.map((_, i) => $(`picker-param-${i}`).value);
    const checked = checkEntry(kind, texts);
    const limit = catalog.limits.max_indicators_per_subscription;
    if (checked.error) showPickerError(checked.error);
    else if (state.indicatorSet.includes(checked.entry)) showPickerError(`${entryLabel(checked.entry)} is in the set already`);
    else if (state.indicatorSet.length >= limit) showPickerError(`at most ${limit} indicators (MAX_INDICATORS_PER_SUBSCRIPTION)`);
    else setIndicatorSet([...state.indicatorSet, checked.entry]);
  });
  $('picker').hidden = false;
  renderChosen();
  renderSetValues();
  rebuildSetLines();
}

/** A refused set: the server's words in the picker (the choice stays, to be changed). */
const SET_ERROR_CODES = new Set(['unknown_indicator', 'invalid_indicator_parameter', 'too_many_indicators']);
clients.analysis.on('error', (msg) => {
  if (msg.request !== 'subscribe') return;
  const setError = SET_ERROR_CODES.has(msg.code) ||
    (msg.code === 'limit_exceeded' && msg.details?.setting === 'MAX_INDICATOR_SETS') ||
    (msg.code === 'invalid_field' && msg.details?.field === 'indicators');
  const setting = msg.details?.setting ? ` (${msg.details.setting})` : '';
  if (setError) showPickerError(`server: ${msg.message}${setting}`);
});

// --- watchlist -----------------------------------------------------------------------------------

const rows = new Map(); // symbol -> {row, cells, last}
const dirty = new Set();
let frame = 0;
let marketTimeDirty = false;

function renderWatchlist() {
  const body = $('ticker').tBodies[0];
  body.replaceChildren();
  rows.clear();
  for (const symbol of state.watchlist) {
    const cells = {
      sym: el('td', { className: 'sym', textContent: symbol, title: 'show on the chart' }),
      price: el('td', { className: 'num price', textContent: '–' }),
      change: el('td', { className: 'num', textContent: '–' }),
      pct: el('td', { className: 'num', textContent: '–' }),
      volume: el('td', { className: 'num opt', textContent: '–' }),
    };
    const remove = el('button', { className: 'link', type: 'button', textContent: '×', title: `remove ${symbol}` });
    remove.setAttribute('aria-label', `remove ${symbol}`);
    remove.addEventListener('click', () => {
      state.watchlist = state.watchlist.filter((s) => s !== symbol);
      renderWatchlist();
      renderPickers();
      syncAll();
      save();
    });
    cells.sym.addEventListener('click', () => setChartSymbol(symbol));
    const row = el('tr', {}, cells.sym, cells.price, cells.change, cells.pct, cells.volume, el('td', {}, remove));
    row.dataset.symbol = symbol;
    row.classList.toggle('current', symbol === state.chartSymbol);
    body.append(row);
    rows.set(symbol, { row, cells, last: null, flashed: -Infinity });
    dirty.add(symbol);
  }
  schedule();
}

function schedule() {
  if (frame === 0) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  for (const symbol of dirty) {
    const entry = rows.get(symbol);
    const q = state.quotes.get(symbol);
    if (!entry || !q) continue;
    const { cells, row } = entry;
    const now = performance.now();
    if (entry.last !== null && q.price !== entry.last && now - entry.flashed > 900) {
      // At most one flash per row and second, so a busy symbol does not stay lit.
      entry.flashed = now;
      cells.price.classList.remove('flash-up', 'flash-down');
      void cells.price.offsetWidth; // restart the animation
      cells.price.classList.add(q.price > entry.last ? 'flash-up' : 'flash-down');
    }
    entry.last = q.price;
    cells.price.textContent = price(q.price);
    cells.change.textContent = signed(q.change);
    cells.pct.textContent = signed(q.change_percent, ' %');
    cells.volume.textContent = q.volume ? compactFmt.format(q.volume) : '–';
    for (const c of [cells.price, cells.change, cells.pct]) tone(c, q.change);
    row.dataset.price = String(q.price);
  }
  dirty.clear();
  $('ticker').dataset.ticks = String(state.updates);
  $('updates').textContent = compactFmt.format(state.updates);
  if (marketTimeDirty) {
    marketTimeDirty = false;
    showMarketTime(state.marketTime);
  }
  renderChartQuote();
  if (positionsDirty) renderPositions();
}

function onQuote(msg, meta) {
  if (meta.stale) return;
  state.quotes.set(msg.symbol, msg.data);
  state.updates += 1;
  state.marketTime = msg.timestamp;
  marketTimeDirty = true;
  dirty.add(msg.symbol);
  schedule();
}

clients.stream.on('data', (msg, meta) => {
  if (msg.data_type === 'tick_data' || msg.data_type === 'market_data') onQuote(msg, meta);
  else if (msg.data_type === 'candle_data') onChartCandle(msg, meta);
});
clients.analysis.on('data', (msg, meta) => {
  if (msg.data_type !== 'technical_analysis') return;
  if (indicatorSetOf(msg)) onSetAnalysis(msg, meta);
  else onAnalysis(msg, meta);
});

// --- alerts --------------------------------------------------------------------------------------

const CONDITION_WORDS = { crosses_above: 'crosses above', crosses_below: 'crosses below', above: 'above', below: 'below' };

/** "RELIANCE RSI(14) crosses above 70 · 5m", "RELIANCE bullish engulfing · 15m". */
function describeAnalysisAlert(a) {
  const interval = a.interval ? ` · ${a.interval}` : '';
  if (a.category === 'pattern' || a.condition === 'pattern') {
    const direction = a.direction ? `${a.direction} ` : '';
    const what = !a.pattern || a.pattern === 'any' ? `any ${direction}pattern` : `${direction}${a.pattern.replaceAll('_', ' ')}`;
    return `${a.symbol} ${what}${interval}`;
  }
  const right = a.other ? operandLabel(a.other) : groupNumbers(String(a.value));
  const forming = a.forming ? ' (forming)' : '';
  return `${a.symbol} ${operandLabel(a.indicator)} ${CONDITION_WORDS[a.condition] ?? a.condition} ${right}${interval}${forming}`;
}

function describeAlert(a) {
  if (a.category === 'indicator' || a.category === 'pattern' || a.indicator || a.pattern) return describeAnalysisAlert(a);
  if (a.condition === 'percent_change') return `${a.symbol} moves ±${num(a.value)}%`;
  const what = { above: '≥', below: '≤', cross_up: 'crosses up', cross_down: 'crosses down' }[a.condition] ?? a.condition;
  return `${a.symbol} ${what} ${price(a.value)}`;
}

function renderAlerts() {
  const list = $('my-alerts');
  list.replaceChildren();
  const alerts = [...state.alerts.values()];
  if (alerts.length === 0) list.append(el('li', { className: 'empty', textContent: 'none yet' }));
  for (const a of alerts) {
    const del = el('button', { className: 'link del', type: 'button', textContent: 'delete' });
    del.addEventListener('click', async () => {
      del.disabled = true;
      try {
        await clients.alerts.deleteAlert(a.id);
        state.alerts.delete(a.id);
        renderAlerts();
      } catch (err) {
        showAlertError(err.message);
        del.disabled = false;
      }
    });
    const at = a.values ? `(${formatOperandValue(a.values.left)} / ${formatOperandValue(a.values.right)})` : `at ${price(a.price)}`;
    const stateText = a.fired
      ? `triggered ${a.triggered_at ? timeFmt.format(new Date(a.triggered_at)) : ''} ${a.category === 'pattern' ? '' : at}`.trim()
      : a.once ? 'armed, once' : 'armed';
    const item = el(
      'li', {},
      el('b', { textContent: describeAlert(a) }),
      el('span', { className: 'state', textContent: stateText }),
      a.note ? el('span', { className: 'note', textContent: a.note }) : '',
      del,
    );
    item.dataset.id = a.id;
    item.dataset.triggered = String(a.fired);
    item.dataset.category = a.category ?? 'price';
    list.append(item);
  }
}

function renderTriggered(freshKey = null) {
  const list = $('triggered');
  const items = [...state.triggered.entries()]
    .sort((x, y) => (y[1].triggered_at ?? '').localeCompare(x[1].triggered_at ?? ''))
    .slice(0, MAX_TRIGGERED);
  state.triggered = new Map(items);
  list.replaceChildren();
  for (const [key, a] of items) {
    const item = el(
      'li', { className: a.source === 'user' ? 'user' : 'builtin' },
      el('time', { dateTime: a.triggered_at ?? '', textContent: a.triggered_at ? timeFmt.format(new Date(a.triggered_at)) : '' }),
      el('b', { textContent: a.symbol }),
      el('span', { textContent: a.message ? groupNumbers(a.message) : a.category ? describeAlert(a) : a.type }),
    );
    if (a.category) item.dataset.category = a.category;
    item.dataset.id = a.id;
    if (key === freshKey) item.classList.add('fresh');
    list.append(item);
  }
}

function remember(alert) {
  const key = `${alert.id}|${alert.triggered_at}`;
  const isNew = !state.triggered.has(key);
  state.triggered.set(key, alert);
  return isNew ? key : null;
}

clients.alerts.on('data', (msg, meta) => {
  if (msg.data_type !== 'alert_data' || meta.stale) return;
  const d = msg.data;
  // The user alerts of this symbol, as the server has them now.
  for (const [id, a] of state.alerts) if (a.symbol === msg.symbol) state.alerts.delete(id);
  for (const a of d.price_alerts ?? []) if (a.source === 'user') state.alerts.set(a.id, a);
  // Indicator and pattern alerts: the owner's own (a server without them sends neither list).
  for (const a of [...(d.indicator_alerts ?? []), ...(d.pattern_alerts ?? [])]) {
    if (a.source === undefined || a.source === 'user') state.alerts.set(a.id, a);
  }
  if (Array.isArray(d.indicator_alerts) || Array.isArray(d.pattern_alerts)) enableAlertKinds();
  let fresh = null;
  for (const a of d.recent_events ?? []) remember(a);
  if (msg.event === 'triggered' && d.alert) {
    fresh = remember(d.alert);
    if (d.alert.source === 'user') state.alerts.set(d.alert.id, d.alert);
  }
  renderAlerts();
  renderTriggered(fresh);
});

clients.alerts.on('open', async () => {
  try {
    const alerts = await clients.alerts.listAlerts();
    state.alerts = new Map(alerts.map((a) => [a.id, a]));
    renderAlerts();
    syncAll();
  } catch (err) {
    console.warn('tickhub: list_alerts failed:', err.message);
  }
});

function showAlertError(text) {
  const node = $('alert-error');
  node.textContent = text ?? '';
  node.hidden = !text;
}

$('alert-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('alert-create');
  button.disabled = true;
  showAlertError(null);
  try {
    const alert = await clients.alerts.createAlert(alertRequest());
    state.alerts.set(alert.id, alert);
    renderAlerts();
    syncAll(); // watch the alert's symbol so that its firing arrives here
    $('alert-note').value = '';
  } catch (err) {
    showAlertError(err.message);
  } finally {
    button.disabled = false;
  }
});

/** What the form asks for, by its kind (the fields of createAlert; docs/protocol.md §4.6). */
function alertRequest() {
  const common = {
    symbol: $('alert-symbol').value,
    once: $('alert-once').checked,
    note: $('alert-note').value.trim() || undefined,
  };
  const kind = $('alert-kind').value;
  if (kind === 'indicator') {
    const other = $('alert-rhs').value === 'other';
    return {
      ...common,
      interval: $('alert-interval').value,
      indicator: $('alert-indicator').value.trim().toLowerCase(),
      condition: $('alert-ind-condition').value,
      ...(other ? { other: $('alert-other').value.trim().toLowerCase() } : { value: Number($('alert-rhs-value').value) }),
      ...($('alert-forming').checked ? { forming: true } : {}),
    };
  }
  if (kind === 'pattern') {
    const direction = $('alert-direction').value;
    return {
      ...common,
      interval: $('alert-interval').value,
      condition: 'pattern',
      pattern: $('alert-pattern').value,
      ...(direction ? { direction } : {}),
    };
  }
  return { ...common, condition: $('alert-condition').value, value: Number($('alert-value').value) };
}

function formatOperandValue(v) {
  if (v === null || v === undefined) return '–';
  return typeof v === 'number' ? (Math.abs(v) >= 1000 ? price(v) : num(v, 2)) : String(v);
}

/** Shows the fields of the chosen kind; the others are disabled, so that the browser's checks
 * (required, min) look at the shown ones only. */
function showAlertKind() {
  const kind = $('alert-kind').value;
  for (const [name, id] of [['price', 'alert-price-fields'], ['indicator', 'alert-indicator-fields'], ['pattern', 'alert-pattern-fields']]) {
    $(id).hidden = kind !== name;
    $(id).disabled = kind !== name;
  }
  const interval = $('alert-interval');
  const analysis = kind !== 'price';
  if (analysis && interval.disabled) interval.value = state.chartInterval;
  interval.hidden = !analysis;
  interval.disabled = !analysis;
  showAlertRhs();
}

function showAlertRhs() {
  const other = $('alert-rhs').value === 'other';
  const off = $('alert-indicator-fields').disabled;
  $('alert-rhs-value').hidden = other;
  $('alert-rhs-value').disabled = other || off;
  $('alert-other').hidden = !other;
  $('alert-other').disabled = !other || off;
}

/** The server takes indicator and pattern alerts: their kinds become choosable. */
function enableAlertKinds() {
  if (state.alertKinds) return;
  state.alertKinds = true;
  for (const option of $('alert-kind').options) option.disabled = false;
}

/** The operands the form suggests: my indicators (each member), the catalog's defaults, prices. */
function renderOperands() {
  const list = $('alert-operands');
  list.replaceChildren();
  const seen = new Set();
  const add = (value, label) => {
    if (seen.has(value)) return;
    seen.add(value);
    list.append(el('option', { value, textContent: label }));
  };
  const kinds = state.catalog?.kinds ?? new Map();
  for (const entry of state.indicatorSet) {
    for (const operand of operandsOf(entry, kinds.get(parseEntry(entry).name))) add(operand, operandLabel(operand));
  }
  for (const kind of kinds.values()) {
    for (const operand of operandsOf(kind.entry, kind)) add(operand, operandLabel(operand));
  }
  for (const operand of PLAIN_OPERANDS) add(operand, operandLabel(operand));
}

function renderPatternChoices() {
  const select = $('alert-pattern');
  for (const p of state.catalog?.patterns ?? []) {
    const text = p.name.replaceAll('_', ' ') + (p.direction ? ` (${p.direction})` : '');
    select.append(el('option', { value: p.name, textContent: text }));
  }
}

$('alert-kind').addEventListener('change', showAlertKind);
$('alert-rhs').addEventListener('change', showAlertRhs);

/** The value field asks for what the condition takes: a price, or a percentage for percent_change. */
function updateAlertValueHint() {
  const input = $('alert-value');
  if ($('alert-condition').value === 'percent_change') {
    input.placeholder = '% move';
    input.setAttribute('aria-label', 'Percent move from the previous close');
    return;
  }
  const q = state.quotes.get($('alert-symbol').value);
  input.placeholder = q ? String(q.price) : 'price';
  input.setAttribute('aria-label', 'Price');
}

$('alert-symbol').addEventListener('change', updateAlertValueHint);
$('alert-condition').addEventListener('change', updateAlertValueHint);

$('only-mine').addEventListener('change', (e) => $('triggered').classList.toggle('only-mine', e.target.checked));

// --- portfolio -----------------------------------------------------------------------------------

let positionsDirty = false;

clients.portfolio.on('data', (msg, meta) => {
  if (msg.data_type !== 'position_data' || msg.subscription !== '*' || meta.stale) return;
  // After a restart or a refused resume the `*` snapshot is the whole portfolio: start again.
  if (meta.reset) state.positions.clear();
  const d = msg.data;
  if (isClosed(d)) state.positions.delete(msg.symbol);
  else state.positions.set(msg.symbol, d);
  state.totals = d.portfolio;
  addInstrument(msg.symbol);
  positionsDirty = true;
  schedule();
});

/** Flat and not traded today: off the table. A position that today's trades made flat stays, with
 * its realised P&L (a server that books trades keeps sending it for the day). */
function isClosed(d) {
  const p = d.position;
  return p.quantity === 0 && !((p.day_buy_quantity ?? 0) + (p.day_sell_quantity ?? 0) > 0);
}

function renderPositions() {
  positionsDirty = false;
  const body = $('positions').tBodies[0];
  body.replaceChildren();
  const list = [...state.positions.values()].sort((a, b) => a.position.symbol.localeCompare(b.position.symbol));
  if (list.length === 0) {
    const cell = el('td', { textContent: 'no positions' });
    cell.colSpan = 8;
    body.append(el('tr', { className: 'empty' }, cell));
  }
  for (const { position: p, pnl } of list) {
    const pnlCell = el('td', { className: 'num', textContent: signed(pnl.unrealized) });
    if (pnl.realized !== undefined && pnl.realized !== null && pnl.realized !== 0) {
      // Realised by trades (a server that books them); unrealised stays the column's figure.
      pnlCell.append(el('span', { className: 'realized', textContent: `realised ${signed(pnl.realized)}` }));
      pnlCell.title = `realised ${signed(pnl.realized)}${pnl.day_realized !== undefined ? `, today ${signed(pnl.day_realized)}` : ''}`;
    }
    const cells = [
      el('td', { className: 'sym', textContent: p.symbol }),
      el('td', { className: 'num', textContent: String(p.quantity) }),
      el('td', { className: 'num opt', textContent: price(p.average_price) }),
      el('td', { className: 'num', textContent: price(p.last_price) }),
      el('td', { className: 'num opt', textContent: price(p.current_value) }),
      pnlCell,
      el('td', { className: 'num opt-sm', textContent: signed(pnl.unrealized_percent, ' %') }),
      el('td', { className: 'num', textContent: signed(pnl.day) }),
    ];
    tone(cells[5], pnl.unrealized);
    tone(cells[6], pnl.unrealized);
    tone(cells[7], pnl.day);
    const row = el('tr', {}, ...cells);
    row.dataset.symbol = p.symbol;
    if (pnl.realized !== undefined) row.dataset.realized = String(pnl.realized);
    if (state.trades) row.addEventListener('click', () => selectTradeSymbol(p.symbol));
    body.append(row);
  }
  const t = state.totals;
  $('tot-value').textContent = t ? price(t.total_value) : '–';
  $('tot-invested').textContent = t ? price(t.total_invested) : '–';
  const pnl = $('tot-pnl');
  pnl.textContent = t ? `${signed(t.total_pnl)} (${signed(t.total_pnl_percent, ' %')})` : '–';
  tone(pnl, t ? t.total_pnl : 0);
  const day = $('tot-day');
  day.textContent = t ? signed(t.day_pnl) : '–';
  tone(day, t ? t.day_pnl : 0);
  const realized = t?.realized_pnl;
  $('tot-realized-box').hidden = realized === undefined || realized === null;
  $('tot-realized').textContent = realized === undefined || realized === null ? '–' : signed(realized);
  tone($('tot-realized'), realized ?? 0);
}

// --- trades --------------------------------------------------------------------------------------

// Trades (add_trade, list_trades, delete_trade on /ws/portfolio) where the client and the server
// take them: the form is shown when the client has addTrade, and hidden again when the server
// answers that it does not know the request.
const UNSUPPORTED = new Set(['unknown_type', 'invalid_message', 'invalid_type', 'unknown_message']);
let tradesRequest = 0;

function showTradeError(text) {
  const node = $('trade-error');
  node.textContent = text ?? '';
  node.hidden = !text;
}

function tradeUnsupported(err) {
  if (!UNSUPPORTED.has(err?.code)) return false;
  state.trades = false;
  $('trades-box').hidden = true;
  return true;
}

function selectTradeSymbol(symbol) {
  if (!symbol || $('trade-symbol').value === symbol) return;
  $('trade-symbol').value = symbol;
  loadTrades();
}

async function loadTrades() {
  if (!state.trades) return;
  const symbol = $('trade-symbol').value;
  const request = ++tradesRequest;
  try {
    const trades = symbol ? await clients.portfolio.listTrades(symbol) : [];
    if (request === tradesRequest) renderTrades(trades);
  } catch (err) {
    if (!tradeUnsupported(err)) console.warn('tickhub: list_trades failed:', err.code ?? err.message);
  }
}

function renderTrades(trades) {
  const list = $('trades');
  list.replaceChildren();
  if (!trades.length) list.append(el('li', { className: 'empty', textContent: 'no trades' }));
  for (const t of trades) {
    const del = el('button', { className: 'link del', type: 'button', textContent: 'delete' });
    del.addEventListener('click', async () => {
      del.disabled = true;
      try {
        await clients.portfolio.deleteTrade(t.id);
        loadTrades();
      } catch (err) {
        showTradeError(err.message);
        del.disabled = false;
      }
    });
    const item = el(
      'li', {},
      el('b', { className: t.side === 'buy' ? 'up' : 'down', textContent: t.side }),
      el('span', { className: 'num', textContent: `${t.quantity} @ ${price(t.price)}` }),
      el('time', { dateTime: t.time ?? '', textContent: t.time ? dateTimeFmt.format(new Date(t.time)) : '' }),
      del,
    );
    item.dataset.id = t.id;
    item.dataset.side = t.side;
    list.append(item);
  }
}

/** `datetime-local` text is exchange time (IST); empty: now (the server's clock). */
function tradeTime() {
  const text = $('trade-time').value;
  if (!text) return undefined;
  return `${text.length === 16 ? `${text}:00` : text}+05:30`;
}

$('trade-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showTradeError(null);
  const quantity = Number($('trade-quantity').value);
  const tradePrice = Number($('trade-price').value);
  if (!Number.isInteger(quantity) || quantity < 1) return showTradeError('quantity: a whole number of at least 1');
  if (!Number.isFinite(tradePrice) || tradePrice <= 0) return showTradeError('price: a number above 0');
  const button = $('trade-add');
  button.disabled = true;
  try {
    const reply = await clients.portfolio.addTrade({
      symbol: $('trade-symbol').value, side: $('trade-side').value, quantity, price: tradePrice, time: tradeTime(),
    });
    const d = reply?.position;
    if (d?.position) {
      // The `*` subscription brings the same change; the reply shows it at once.
      if (isClosed(d)) state.positions.delete(d.position.symbol);
      else state.positions.set(d.position.symbol, d);
      if (d.portfolio) state.totals = d.portfolio;
      positionsDirty = true;
      schedule();
    }
    $('trade-quantity').value = '';
    loadTrades();
  } catch (err) {
    if (!tradeUnsupported(err)) showTradeError(err.message);
  } finally {
    button.disabled = false;
  }
});
$('trade-symbol').addEventListener('change', loadTrades);

function initTrades() {
  state.trades = typeof clients.portfolio.addTrade === 'function' && typeof clients.portfolio.listTrades === 'function';
  $('trades-box').hidden = !state.trades;
  if (!state.trades) return;
  $('trade-symbol').value = state.chartSymbol ?? '';
  clients.portfolio.on('open', loadTrades);
  if (clients.portfolio.connected) loadTrades();
}

// --- controls ------------------------------------------------------------------------------------

$('chart-symbol').addEventListener('change', (e) => setChartSymbol(e.target.value || null));
$('chart-interval').addEventListener('change', (e) => setChartSymbol(state.chartSymbol, e.target.value));
$('add-symbol').addEventListener('change', (e) => {
  const symbol = e.target.value;
  if (symbol && !state.watchlist.includes(symbol)) {
    state.watchlist.push(symbol);
    renderWatchlist();
    renderPickers();
    syncAll();
    save();
  }
  e.target.value = '';
});
for (const name of Object.keys(overlays)) $(`ov-${name}`).addEventListener('change', applyOverlayVisibility);

// --- start ---------------------------------------------------------------------------------------

async function start() {
  renderConnection();
  for (const client of Object.values(clients)) client.connect();
  clients.portfolio.subscribe('*');
  [state.instruments, state.catalog] = await Promise.all([loadInstruments(), loadCatalog(server)]);
  initPicker();
  renderOperands();
  renderPatternChoices();
  showAlertKind();
  const symbols = state.instruments.map((i) => i.symbol);
  const fromParams = params.get('symbols')?.split(',').map((s) => s.trim()).filter(Boolean);
  const preferred = PREFERRED_WATCHLIST.filter((s) => symbols.includes(s));
  state.watchlist = fromParams ?? saved.watchlist?.filter((s) => symbols.includes(s)) ?? [];
  if (state.watchlist.length === 0) state.watchlist = preferred.length ? preferred : symbols.slice(0, 6);
  for (const s of state.watchlist) addInstrument(s);
  const chartSymbol =
    params.get('chart') ?? (symbols.includes(saved.chart) ? saved.chart : null) ??
    state.watchlist.find((s) => state.instruments.find((i) => i.symbol === s)?.tradable) ?? state.watchlist[0];
  addInstrument(chartSymbol);
  renderPickers();
  renderWatchlist();
  setChartSymbol(chartSymbol, state.chartInterval);
  syncAll();
  initTrades();
  pollHealth();
  setInterval(pollHealth, 5000);
}

// For a console or a test: the clients and the state.
window.tickhubDashboard = { clients, state, chart, bars, setLines };

start();
