// tickhub dashboard: a candlestick chart with indicator overlays, a watchlist, alerts and the
// portfolio, live over the four WebSocket endpoints through tickhub.js. No build step.
//
// Query parameters (all optional):
//   ?server=http://host:8081   another tickhub instance (default: the one serving this page)
//   &symbols=RELIANCE,TCS      the watchlist (default: the last one used, kept in localStorage)
//   &chart=RELIANCE&interval=5m
import { TickhubClient } from './tickhub.js';
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
};

function save() {
  try {
    localStorage.setItem(
      STORE_KEY,
      JSON.stringify({ watchlist: state.watchlist, chart: state.chartSymbol, interval: state.chartInterval }),
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

function sync(name, wanted) {
  const client = clients[name];
  const current = held[name];
  const next = new Map(wanted.map((t) => [`${t.symbol}|${t.interval ?? ''}`, t]));
  for (const [key, t] of current) {
    if (!next.has(key)) client.unsubscribe(t.symbol, t.interval ? { interval: t.interval } : {});
  }
  for (const [key, t] of next) {
    if (!current.has(key)) client.subscribe(t.symbol, t.interval ? { interval: t.interval } : {});
  }
  held[name] = next;
}

function syncAll() {
  const chart = state.chartSymbol;
  const streamTopics = state.watchlist.map((symbol) => ({ symbol, interval: '1m' }));
  if (chart) streamTopics.push({ symbol: chart, interval: state.chartInterval });
  sync('stream', streamTopics);
  sync('analysis', chart ? [{ symbol: chart, interval: state.chartInterval }] : []);
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
  if (msg.data_type === 'technical_analysis') onAnalysis(msg, meta);
});

// --- alerts --------------------------------------------------------------------------------------

function describeAlert(a) {
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
    const stateText = a.fired
      ? `triggered ${a.triggered_at ? timeFmt.format(new Date(a.triggered_at)) : ''} at ${price(a.price)}`
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
      el('span', { textContent: a.message ? groupNumbers(a.message) : a.type }),
    );
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
    const alert = await clients.alerts.createAlert({
      symbol: $('alert-symbol').value,
      condition: $('alert-condition').value,
      value: Number($('alert-value').value),
      once: $('alert-once').checked,
      note: $('alert-note').value.trim() || undefined,
    });
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
  if (d.position.quantity === 0) state.positions.delete(msg.symbol);
  else state.positions.set(msg.symbol, d);
  state.totals = d.portfolio;
  addInstrument(msg.symbol);
  positionsDirty = true;
  schedule();
});

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
    const cells = [
      el('td', { className: 'sym', textContent: p.symbol }),
      el('td', { className: 'num', textContent: String(p.quantity) }),
      el('td', { className: 'num opt', textContent: price(p.average_price) }),
      el('td', { className: 'num', textContent: price(p.last_price) }),
      el('td', { className: 'num opt', textContent: price(p.current_value) }),
      el('td', { className: 'num', textContent: signed(pnl.unrealized) }),
      el('td', { className: 'num opt-sm', textContent: signed(pnl.unrealized_percent, ' %') }),
      el('td', { className: 'num', textContent: signed(pnl.day) }),
    ];
    tone(cells[5], pnl.unrealized);
    tone(cells[6], pnl.unrealized);
    tone(cells[7], pnl.day);
    const row = el('tr', {}, ...cells);
    row.dataset.symbol = p.symbol;
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
  state.instruments = await loadInstruments();
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
  pollHealth();
  setInterval(pollHealth, 5000);
}

// For a console or a test: the clients and the state.
window.tickhubDashboard = { clients, state, chart };

start();
