// Runs the seed's four JavaScript examples verbatim against a running service.
// Only the host:port is redirected (the examples hard-code ws://localhost:8081); each example's
// callbacks must receive data, else the script exits non-zero.
const PORT = process.env.TICKHUB_PORT;
const Native = globalThis.WebSocket;
globalThis.WebSocket = class extends Native {
  constructor(url, protocols) {
    super(url.replace('localhost:8081', `127.0.0.1:${PORT}`), protocols);
  }
};

const seen = { chart: 0, indicators: 0, patterns: 0, alerts: 0, portfolio: 0, pnl: 0 };
function done() {
  if (Object.values(seen).every((n) => n >= 2)) {
    console.log('OK ' + JSON.stringify(seen));
    process.exit(0);
  }
}
function updateChart(data) {
  if (typeof data.price === 'number' || typeof data.close === 'number' || data.depth) seen.chart++;
  done();
}
function updateIndicators(ind) { if (ind && typeof ind === 'object') seen.indicators++; done(); }
function updatePatterns(p) { if (Array.isArray(p)) seen.patterns++; done(); }
function showNotification(text) { console.log('notification: ' + text); }
function updatePortfolioValue(v) { if (typeof v === 'number') seen.portfolio++; done(); }
function updatePnL(p) { if (p && typeof p.unrealized === 'number') seen.pnl++; done(); }

// ---- seed: Main Data Stream (verbatim) ----
const ws = new WebSocket('ws://localhost:8081/ws/stream');

ws.onopen = function() {
    console.log('Connected to main data stream');
    
    // Subscribe to a symbol
    ws.send(JSON.stringify({
        type: 'subscribe',
        symbol: 'RELIANCE'
    }));
};

ws.onmessage = function(event) {
    const data = JSON.parse(event.data);
    if (data.type === 'data') {
        // Handle real-time market data
        updateChart(data.data);
    }
};

// ---- seed: Analysis Stream (verbatim) ----
const analysisWs = new WebSocket('ws://localhost:8081/ws/analysis');

analysisWs.onopen = function() {
    console.log('Connected to analysis stream');
    
    analysisWs.send(JSON.stringify({
        type: 'subscribe',
        symbol: 'RELIANCE'
    }));
};

analysisWs.onmessage = function(event) {
    const data = JSON.parse(event.data);
    if (data.type === 'data') {
        // Handle technical analysis data
        updateIndicators(data.data.technical_indicators);
        updatePatterns(data.data.patterns);
    }
};

// ---- seed: Alerts Stream (verbatim) ----
const alertsWs = new WebSocket('ws://localhost:8081/ws/alerts');

alertsWs.onopen = function() {
    console.log('Connected to alerts stream');
    
    alertsWs.send(JSON.stringify({
        type: 'subscribe',
        symbol: 'RELIANCE'
    }));
};

alertsWs.onmessage = function(event) {
    const data = JSON.parse(event.data);
    if (data.type === 'data') {
        // Handle alerts
        data.data.price_alerts.forEach(alert => {
            if (alert.triggered) {
                showNotification(`Price alert: ${alert.type}`);
            }
        });
    }
};

// ---- seed: Portfolio Stream (verbatim) ----
const portfolioWs = new WebSocket('ws://localhost:8081/ws/portfolio');

portfolioWs.onopen = function() {
    console.log('Connected to portfolio stream');
    
    portfolioWs.send(JSON.stringify({
        type: 'subscribe',
        symbol: 'RELIANCE'
    }));
};

portfolioWs.onmessage = function(event) {
    const data = JSON.parse(event.data);
    if (data.type === 'data') {
        // Handle portfolio updates
        updatePortfolioValue(data.data.position.current_value);
        updatePnL(data.data.pnl);
    }
};

// ---- harness: the alerts handler ran without throwing on real data messages ----
const seedAlerts = alertsWs.onmessage;
alertsWs.onmessage = function(event) {
  seedAlerts(event);
  if (JSON.parse(event.data).type === 'data') seen.alerts++;
  done();
};
for (const sock of [ws, analysisWs, alertsWs, portfolioWs]) {
  sock.onerror = (e) => { console.log('ERROR ' + (e.message || e.type)); process.exit(2); };
}
setTimeout(() => { console.log('TIMEOUT ' + JSON.stringify(seen)); process.exit(1); }, 20000);
