// dbwarden dashboard: plain JavaScript, no dependencies, no build step.
//
// Every URL is relative, so the dashboard works wherever the router is
// nested. Data comes from the JSON API with the session cookie set by
// `login`; live updates come over server-sent events (`api/events`), with a
// periodic refresh as the fallback. Text from the server is only ever set
// with textContent, never parsed as HTML.
'use strict';

(function () {
  // ---- small helpers ------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** Builds an element: h('td', {class: 'num'}, 'text', otherNode). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function replace(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : 0);

  // ---- formatting ---------------------------------------------------------

  const fmt = {
    count(v) {
      v = num(v);
      if (Math.abs(v) >= 1e9) return (v / 1e9).toFixed(1) + ' B';
      if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + ' M';
      return Math.round(v).toLocaleString('en-US');
    },
    ms(v) {
      v = num(v);
      if (v === 0) return '0 ms';
      if (v < 1) return v.toFixed(2) + ' ms';
      if (v < 10) return v.toFixed(1) + ' ms';
      if (v < 1000) return Math.round(v) + ' ms';
      if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
      return fmt.secs(v / 1000);
    },
    secs(v) {
      v = num(v);
      if (v < 1) return Math.round(v * 1000) + ' ms';
      if (v < 60) return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' s';
      const m = Math.floor(v / 60);
      const join = (a, unitA, b, unitB) => a + ' ' + unitA + (b ? ' ' + b + ' ' + unitB : '');
      if (m < 60) return join(m, 'min', Math.round(v % 60), 's');
      const hrs = Math.floor(m / 60);
      if (hrs < 48) return join(hrs, 'h', m % 60, 'min');
      return join(Math.floor(hrs / 24), 'd', hrs % 24, 'h');
    },
    rate(v) {
      v = num(v);
      if (v === 0) return '0/s';
      if (v < 0.1) return (v * 60).toFixed(1) + '/min';
      if (v < 10) return v.toFixed(2) + '/s';
      if (v < 1000) return v.toFixed(1) + '/s';
      return fmt.count(v) + '/s';
    },
    pct(ratio, digits) {
      ratio = num(ratio);
      const p = ratio * 100;
      if (p === 0) return '0 %';
      const d = digits !== undefined ? digits : p < 1 ? 2 : p < 10 ? 1 : 0;
      return p.toFixed(d) + ' %';
    },
    bytes(v) {
      v = num(v);
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
    },
    ago(ts) {
      if (!ts) return '—';
      const d = (Date.now() - ts) / 1000;
      if (d < 2) return 'just now';
      if (d < 60) return Math.round(d) + ' s ago';
      if (d < 3600) return Math.round(d / 60) + ' min ago';
      if (d < 86400) return (d / 3600).toFixed(1) + ' h ago';
      return Math.round(d / 86400) + ' d ago';
    },
    time(ts) {
      if (!ts) return '—';
      const d = new Date(ts);
      return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    },
    dateTime(ts) {
      if (!ts) return '—';
      return new Date(ts).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    },
    words(key) {
      if (!key) return '—';
      const t = String(key).replace(/_/g, ' ');
      return t.charAt(0).toUpperCase() + t.slice(1);
    },
  };

  function statusClass(status) {
    return status === 'pass' ? 'is-pass' : status === 'warn' ? 'is-warn' : status === 'fail' ? 'is-fail' : '';
  }
  const STATUS_WORD = { pass: 'Healthy', warn: 'Degraded', fail: 'Unhealthy' };

  function levelOf(value, warn, fail) {
    if (typeof fail === 'number' && value >= fail) return 'fail';
    if (typeof warn === 'number' && value >= warn) return 'warn';
    return 'pass';
  }

  function stat(label, value, cls) {
    return h('div', null, h('dt', { text: label }), h('dd', { class: cls || null, text: value }));
  }

  function inline(label, value, cls) {
    return h('span', null, label + ' ', h('b', { class: cls || null, text: value }));
  }

  function emptyRow(table, cols, text) {
    replace(table, h('tr', null, h('td', { class: 'empty', colspan: cols, text })));
  }

  function emptyItem(list, text, good) {
    replace(list, h('li', { class: 'empty-state' + (good ? ' good' : ''), text }));
  }

  // ---- state ----------------------------------------------------------------

  const state = {
    running: false,
    errorWindow: '5m',
    queryTab: 'top',
    data: {},
    lastRefresh: 0,
    lastSlow: 0,
    lastTrend: 0,
    inFlight: null,
    queued: null,
    events: null,
    live: 'off',
    retryAt: 0,
    silenceTarget: null,
    routeCounts: null,
  };
  const MIN_INTERVAL_MS = 2500;
  /** Values seen since the page opened, per chart, for the live part of the trends. */
  const series = {};
  const MAX_LIVE_POINTS = 720;
  const POLL_MS = 5000;
  const SLOW_GROUP_MS = 15000;
  const TREND_MS = 60000;

  // ---- API --------------------------------------------------------------------

  class Unauthorized extends Error {}
  class RateLimited extends Error {
    constructor(seconds) {
      super('rate limited');
      this.seconds = seconds;
    }
  }

  async function api(path, options) {
    const opts = Object.assign({ credentials: 'same-origin', cache: 'no-store' }, options || {});
    opts.headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    const res = await fetch(path, opts);
    if (res.status === 401) throw new Unauthorized();
    if (res.status === 429) throw new RateLimited(parseInt(res.headers.get('Retry-After') || '5', 10) || 5);
    let body = null;
    const text = await res.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = null;
      }
    }
    // /health answers 503 with a full document when the verdict is fail.
    if (!res.ok && !(res.status === 503 && body && body.status)) {
      const detail = body && (body.detail || body.error) ? [body.error, body.detail].filter(Boolean).join(': ') : res.status + ' ' + res.statusText;
      throw new Error(detail);
    }
    return body;
  }

  function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
  }

  // ---- views: sign-in and dashboard ------------------------------------------------

  function showSignIn(message) {
    stop();
    document.body.dataset.view = 'signin';
    $('app').hidden = true;
    $('signin').hidden = false;
    const err = $('signin-error');
    if (message) {
      err.textContent = message;
      err.hidden = false;
    }
    $('token').focus();
  }

  function showDashboard() {
    document.body.dataset.view = 'dashboard';
    $('signin').hidden = true;
    $('signin-error').hidden = true;
    $('app').hidden = false;
    start();
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('token');
    const button = $('signin-submit');
    const err = $('signin-error');
    err.hidden = true;
    button.disabled = true;
    try {
      const res = await fetch('login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ token: input.value.trim() }),
      });
      if (res.ok) {
        input.value = '';
        showDashboard();
        return;
      }
      let message = 'Sign-in failed (' + res.status + ').';
      if (res.status === 401) message = 'That token is not valid.';
      else if (res.status === 429) message = 'Too many attempts. Wait ' + (res.headers.get('Retry-After') || 'a few') + ' seconds and try again.';
      else {
        try {
          const body = await res.json();
          if (body && body.detail) message = body.detail;
        } catch (_) {
          /* keep the generic message */
        }
      }
      err.textContent = message;
      err.hidden = false;
      input.select();
    } catch (e) {
      err.textContent = 'The server could not be reached: ' + e.message;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function signOut(event) {
    event.preventDefault();
    try {
      await fetch('logout', { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } });
    } catch (_) {
      /* the cookie expires by itself */
    }
    showSignIn();
  }

  // ---- live updates -------------------------------------------------------------------

  function setLive(mode) {
    state.live = mode;
    const el = $('live');
    el.className = 'live ' + (mode === 'on' ? 'live-on' : mode === 'poll' ? 'live-poll' : 'live-off');
    $('live-text').textContent = mode === 'on' ? 'Live' : mode === 'poll' ? 'Polling every 5 s' : 'Offline';
    el.title = mode === 'on' ? 'Updates arrive over server-sent events' : mode === 'poll' ? 'The event stream is unavailable; refreshing periodically' : 'The server cannot be reached';
  }

  const EVENT_NAMES = ['alert', 'leak_suspected', 'leak_returned', 'transaction_timeout', 'slow_query', 'error', 'n_plus_one', 'tick', 'lagged'];

  function connectEvents() {
    if (!('EventSource' in window)) {
      setLive('poll');
      return;
    }
    const es = new EventSource('api/events');
    state.events = es;
    es.addEventListener('ready', () => setLive('on'));
    es.addEventListener('open', () => setLive('on'));
    for (const name of EVENT_NAMES) {
      es.addEventListener(name, (msg) => onEvent(name, msg));
    }
    es.onerror = () => {
      if (state.events !== es) return;
      setLive('poll');
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. 401 or 503); try again later, and let
        // the periodic refresh find out whether the session ended.
        state.events = null;
        setTimeout(() => state.running && !state.events && connectEvents(), 15000);
      }
    };
  }

  function onEvent(name, msg) {
    setLive('on');
    if (name === 'alert') {
      try {
        const n = JSON.parse(msg.data);
        const alert = n.alert || n;
        if (alert && alert.message && (n.kind === 'fired' || n.kind === 'escalated' || !n.kind)) toast(alert.severity + ': ' + alert.message);
      } catch (_) {
        /* a malformed event still triggers a refresh */
      }
      scheduleRefresh(0);
    } else if (name === 'tick') {
      scheduleRefresh(0);
    } else {
      scheduleRefresh(1000);
    }
  }

  // ---- refresh -------------------------------------------------------------------------

  let refreshTimer = null;
  let pollTimer = null;
  let clockTimer = null;

  function scheduleRefresh(delay) {
    if (!state.running) return;
    const wait = Math.max(delay || 0, state.lastRefresh + MIN_INTERVAL_MS - Date.now(), state.retryAt - Date.now(), 0);
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, wait);
  }

  function start() {
    if (state.running) return;
    state.running = true;
    state.lastSlow = 0;
    state.lastTrend = 0;
    setLive('poll');
    refresh(true);
    connectEvents();
    pollTimer = setInterval(() => {
      if (document.hidden) return;
      const quiet = Date.now() - state.lastRefresh;
      if (state.live !== 'on' || quiet > 3 * POLL_MS) scheduleRefresh(0);
    }, POLL_MS);
    clockTimer = setInterval(renderClock, 1000);
  }

  function stop() {
    state.running = false;
    if (state.events) state.events.close();
    state.events = null;
    clearInterval(pollTimer);
    clearInterval(clockTimer);
    clearTimeout(refreshTimer);
    refreshTimer = null;
  }

  async function refresh(force) {
    if (!state.running) return;
    if (state.inFlight) {
      state.queued = true;
      return state.inFlight;
    }
    const now = Date.now();
    const slow = force || now - state.lastSlow > SLOW_GROUP_MS;
    const trend = force || now - state.lastTrend > TREND_MS;
    state.lastRefresh = now;
    const w = state.errorWindow;
    const requests = {
      status: api('api/status'),
      health: api('health'),
      alerts: api('api/alerts'),
      checkouts: api('api/pool/checkouts'),
      queries: api('api/queries?sort=total_time&limit=10'),
      slowQueries: api('api/queries/slow?limit=10'),
      errors5m: api('api/errors?window=5m'),
      requests: api('api/requests?limit=50'),
    };
    if (w !== '5m') requests['errors' + w] = api('api/errors?window=' + w);
    if (slow) {
      for (const win of ['15m', '1h']) if (!requests['errors' + win]) requests['errors' + win] = api('api/errors?window=' + win);
      requests.history = api('api/alerts/history?limit=20');
      requests.silences = api('api/silences');
      requests.performance = api('api/performance');
    }
    if (trend) requests.trend = api('api/trend');
    const keys = Object.keys(requests);
    state.inFlight = Promise.allSettled(keys.map((k) => requests[k])).then((results) => {
      let failure = null;
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') state.data[keys[i]] = r.value;
        else failure = failure instanceof Unauthorized || failure instanceof RateLimited ? failure : r.reason;
      });
      if (failure instanceof Unauthorized) {
        showSignIn('Your session has ended. Sign in again.');
        return;
      }
      if (slow && !(failure instanceof RateLimited)) state.lastSlow = now;
      if (trend && requests.trend && results[keys.indexOf('trend')].status === 'fulfilled') state.lastTrend = now;
      if (failure instanceof RateLimited) {
        state.retryAt = Date.now() + failure.seconds * 1000;
        banner('The server is rate limiting this dashboard; retrying in ' + failure.seconds + ' s.');
      } else if (failure) {
        banner('Some figures could not be loaded: ' + failure.message);
        if (results.every((r) => r.status === 'rejected')) setLive('off');
      } else {
        banner(null);
      }
      render();
    });
    try {
      await state.inFlight;
    } finally {
      state.inFlight = null;
      if (state.queued) {
        state.queued = false;
        scheduleRefresh(0);
      }
    }
  }

  function banner(text) {
    const el = $('banner');
    if (!text) {
      el.hidden = true;
      return;
    }
    el.textContent = text;
    el.hidden = false;
  }

  let toastTimer = null;
  function toast(text, isError) {
    const el = $('toast');
    el.textContent = text;
    el.className = 'toast' + (isError ? ' is-error' : '');
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.hidden = true), 4000);
  }

  // ---- rendering ---------------------------------------------------------------------

  function render() {
    const d = state.data;
    if (!d.status) return;
    const sections = [renderHeader, renderKpis, renderHealth, renderAlerts, renderRequests, renderPool, renderSessions, renderQueries, renderErrors, renderResources, renderCleanup, renderTrends];
    for (const fn of sections) {
      try {
        fn(d);
      } catch (e) {
        console.error('dbwarden: rendering failed in', fn.name, e);
      }
    }
    $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
  }

  function renderClock() {
    const st = state.data.status;
    if (!st) return;
    const up = num(st.monitor.uptime_seconds) + (Date.now() - state.lastRefresh) / 1000;
    $('uptime').textContent = 'up ' + fmt.secs(up);
  }

  function renderHeader(d) {
    const m = d.status.monitor;
    $('monitor-name').textContent = m.name + ' · v' + m.version;
    renderClock();
    document.title = (d.alerts && d.alerts.count ? '(' + d.alerts.count + ') ' : '') + 'dbwarden · ' + m.name;
  }

  function kpi(id, value, sub, level) {
    $('kpi-' + id).textContent = value;
    const card = $('kpi-' + id).parentElement;
    card.classList.remove('is-pass', 'is-warn', 'is-fail');
    if (level) card.classList.add('is-' + level);
    if (sub !== undefined) {
      const subEl = card.querySelector('.kpi-sub');
      subEl.textContent = sub;
    }
  }

  function rates(d, w) {
    return (d.status.rates && d.status.rates[w]) || {};
  }

  function renderKpis(d) {
    const st = d.status;
    const t = st.thresholds;
    const health = d.health || st.health || {};
    kpi('health', STATUS_WORD[health.status] || '–', d.performance ? 'Score ' + Math.round(d.performance.score) + ' / 100 · ' + d.performance.grade : '', health.status);
    const r1 = rates(d, '1m');
    const r5 = rates(d, '5m');
    kpi('qps', fmt.rate(r1.queries_per_second), 'p95 ' + fmt.ms(r5.query_latency ? r5.query_latency.p95_ms : st.query_metrics.latency.p95_ms));
    const rm = st.request_metrics;
    kpi('rps', fmt.rate(r1.requests_per_second), fmt.count(rm.in_flight) + ' in flight · p95 ' + fmt.ms(rm.latency.p95_ms));
    kpi('errors', fmt.pct(r5.error_rate), fmt.count(r5.errors) + ' errors in 5 min', levelOf(num(r5.error_rate), t.error_rate_warning, t.error_rate_critical));
    const pool = st.pool_metrics;
    const cur = pool.current;
    kpi('pool', cur ? cur.in_use + ' / ' + cur.max : '–', cur ? fmt.pct(pool.utilization) + ' · ' + cur.pending + ' waiting' : 'no pool sample yet', cur ? levelOf(pool.utilization, t.pool_utilization_warning, t.pool_utilization_critical) : null);
    const alerts = (d.alerts && d.alerts.alerts) || [];
    const firing = alerts.filter((a) => a.state === 'firing').length;
    const worst = alerts.reduce((w, a) => Math.max(w, SEVERITIES.indexOf(a.severity)), -1);
    kpi('alerts', String(alerts.length), alerts.length ? firing + ' firing' : 'none active', alerts.length ? (worst >= 2 ? 'fail' : 'warn') : 'pass');
  }

  const SEVERITIES = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];

  // ---- health ----

  function renderHealth(d) {
    const health = d.health || {};
    const pill = $('health-status');
    pill.textContent = STATUS_WORD[health.status] || (health.status ? String(health.status) : 'Unknown');
    pill.className = 'pill ' + statusClass(health.status);
    const issues = health.issues || (d.status.health && d.status.health.issues) || [];
    if (issues.length) replace($('health-issues'), issues.map((i) => h('li', { text: i })));
    else replace($('health-issues'), h('li', { class: 'all-good', text: 'Every check is within its thresholds.' }));
    const checks = [];
    for (const [key, list] of Object.entries(health.checks || {})) {
      for (const c of Array.isArray(list) ? list : [list]) checks.push([key, c]);
    }
    // Failing checks first, then warnings, each group in key order.
    const rank = { fail: 0, warn: 1, pass: 2 };
    checks.sort((a, b) => (rank[a[1].status] ?? 3) - (rank[b[1].status] ?? 3) || a[0].localeCompare(b[0]));
    const rows = checks.map(([key, c]) =>
      h(
        'tr',
        { class: c.status !== 'pass' ? 'row-' + c.status : null, title: c.output || null, 'data-check': key },
        h('td', null, h('span', { class: 'mono', text: key })),
        h('td', { class: 'num', text: observed(c.observedValue, c.observedUnit) }),
        h('td', { class: 'num muted', text: c.threshold !== undefined ? observed(c.threshold, c.observedUnit) : '—' }),
        h('td', null, h('span', { class: 'status-dot ' + statusClass(c.status), title: c.status }), h('span', { class: 'sr-only', text: c.status })),
      ),
    );
    if (rows.length) replace($('health-checks'), rows);
    else emptyRow($('health-checks'), 4, 'Check details are shown to signed-in users only.');
    const perf = d.performance;
    if (perf) {
      const recs = (perf.recommendations || []).slice(0, 3);
      replace(
        $('performance'),
        h('div', { class: 'score' }, h('span', { class: 'muted', text: 'Performance score' }), h('b', { text: Math.round(perf.score) + ' / 100' }), h('span', { class: 'pill', text: perf.grade })),
        recs.length ? h('ul', { class: 'recs' }, recs.map((r) => h('li', { text: r.message }))) : h('span', { class: 'muted small', text: 'No recommendations: nothing costs points right now.' }),
      );
    }
  }

  function observed(value, unit) {
    if (typeof value === 'boolean') return value ? 'yes' : 'no';
    if (typeof value !== 'number') return '—';
    if (unit === 'ratio') return fmt.pct(value);
    if (unit === 'ms') return fmt.ms(value);
    if (unit === 's' || unit === 'seconds') return fmt.secs(value);
    if (unit === 'bytes') return fmt.bytes(value);
    if (unit === 'per_second' || unit === '/s') return fmt.rate(value);
    return fmt.count(value) + (unit && unit !== 'count' ? ' ' + unit : '');
  }

  // ---- alerts ----

  function alertValue(a) {
    const sig = JSON.stringify(a.signal || '');
    if (/rate|utilization|usage|ratio/i.test(sig) && a.threshold <= 1) return fmt.pct(a.value) + ' (threshold ' + fmt.pct(a.threshold) + ')';
    return (Math.round(a.value * 100) / 100).toLocaleString('en-US') + ' (threshold ' + (Math.round(a.threshold * 100) / 100).toLocaleString('en-US') + ')';
  }

  async function alertAction(button, label, action) {
    button.disabled = true;
    try {
      await action();
      toast(label);
      await refresh(true);
    } catch (e) {
      if (e instanceof Unauthorized) showSignIn('Your session has ended. Sign in again.');
      else toast('Could not do that: ' + e.message, true);
      button.disabled = false;
    }
  }

  function renderAlerts(d) {
    const alerts = (d.alerts && d.alerts.alerts) || [];
    alerts.sort((a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) || (b.fired_at || b.pending_since) - (a.fired_at || a.pending_since));
    $('alerts-count').textContent = alerts.length ? alerts.length + ' active' : '';
    if (!alerts.length) {
      emptyItem($('alerts-active'), 'No active alerts. Rules are evaluated every few seconds against the thresholds in force.', true);
    } else {
      replace(
        $('alerts-active'),
        alerts.map((a) => {
          const sev = String(a.severity || '').toLowerCase();
          const ack = a.acknowledged;
          const since = a.fired_at || a.pending_since;
          const actions = h('div', { class: 'alert-actions' });
          if (!ack) {
            const b = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'ack', 'data-alert': a.id, text: 'Acknowledge' });
            b.addEventListener('click', () => alertAction(b, 'Alert acknowledged', () => post('api/alerts/' + a.id + '/ack', {})));
            actions.append(b);
          }
          const r = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'resolve', 'data-alert': a.id, text: 'Resolve' });
          r.addEventListener('click', () => alertAction(r, 'Alert resolved', () => post('api/alerts/' + a.id + '/resolve', {})));
          const sl = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-action': 'silence', 'data-alert': a.id, text: a.silenced_by ? 'Silenced' : 'Silence…', disabled: a.silenced_by ? true : null });
          sl.addEventListener('click', () => openSilence(a));
          actions.append(r, sl);
          return h(
            'li',
            { class: 'alert sev-' + sev, 'data-alert-id': a.id, 'data-rule': a.rule, 'data-state': a.state, 'data-acknowledged': ack ? 'true' : 'false' },
            h('div', { class: 'alert-top' }, h('span', { class: 'pill sev-' + sev, text: a.severity }), h('span', { class: 'alert-title', text: fmt.words(a.alert_type) }), h('span', { class: 'pill', text: a.state })),
            h('div', { class: 'alert-msg', text: a.message }),
            h(
              'div',
              { class: 'alert-meta' },
              (a.state === 'firing' ? 'Firing since ' : 'Pending since ') + fmt.time(since) + ' (' + fmt.ago(since) + ') · now ' + alertValue(a) + ' · rule ',
              h('code', { text: a.rule }),
            ),
            ack ? h('div', { class: 'acked', 'data-role': 'acknowledged' }, '✓ Acknowledged by ' + ack.by + ' ' + fmt.ago(ack.at) + (ack.comment ? ': “' + ack.comment + '”' : '')) : null,
            actions,
          );
        }),
      );
    }
    if (d.history) {
      const hist = d.history.alerts || [];
      $('alerts-history-count').textContent = '(' + hist.length + ')';
      if (!hist.length) emptyRow($('alerts-history'), 5, 'No resolved alerts yet.');
      else
        replace(
          $('alerts-history'),
          hist.map((a) =>
            h(
              'tr',
              { title: a.message },
              h('td', { text: fmt.words(a.alert_type) }),
              h('td', null, h('span', { class: 'pill sev-' + String(a.severity).toLowerCase(), text: a.severity })),
              h('td', { text: fmt.dateTime(a.fired_at || a.pending_since) }),
              h('td', { text: fmt.dateTime(a.resolved_at) }),
              h('td', { class: 'muted', text: a.resolution && a.resolution.type === 'manual' ? 'by ' + a.resolution.by : 'cleared' }),
            ),
          ),
        );
    }
    if (d.silences) {
      const list = d.silences.silences || [];
      $('silences-count').textContent = '(' + list.length + ')';
      if (!list.length) emptyItem($('silences'), 'No silences in force.');
      else
        replace(
          $('silences'),
          list.map((si) => {
            const end = h('button', { type: 'button', class: 'btn btn-small btn-ghost', text: 'End now' });
            end.addEventListener('click', () => alertAction(end, 'Silence ended', () => api('api/silences/' + si.id, { method: 'DELETE' })));
            const what = si.matcher && si.matcher.match === 'all' ? 'all alerts' : (si.matcher.match === 'rule' ? 'rule ' : 'type ') + si.matcher.value;
            return h('li', null, h('span', null, h('b', { text: what }), ' until ' + fmt.dateTime(si.ends_at) + (si.comment ? ' — ' + si.comment : '')), end);
          }),
        );
    }
  }

  function openSilence(alert) {
    state.silenceTarget = alert;
    $('silence-what').textContent = 'Mute notifications from rule “' + alert.rule + '” (' + fmt.words(alert.alert_type) + '). The alert stays visible here.';
    $('silence-comment').value = '';
    const dialog = $('silence-dialog');
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  }

  async function onSilenceClose() {
    const dialog = $('silence-dialog');
    const alert = state.silenceTarget;
    state.silenceTarget = null;
    if (dialog.returnValue !== 'ok' || !alert) return;
    try {
      await post('api/silences', {
        matcher: { match: 'rule', value: alert.rule },
        duration_seconds: parseInt($('silence-duration').value, 10),
        comment: $('silence-comment').value.trim(),
      });
      toast('Rule “' + alert.rule + '” silenced');
      await refresh(true);
    } catch (e) {
      toast('Could not silence: ' + e.message, true);
    }
  }

  // ---- requests ----

  function renderRequests(d) {
    const req = d.requests || {};
    const totals = req.totals || d.status.request_metrics;
    const t = d.status.thresholds;
    const r1 = rates(d, '1m');
    replace(
      $('requests-stats'),
      inline('Throughput', fmt.rate(r1.requests_per_second)),
      inline('In flight', fmt.count(totals.in_flight), totals.in_flight >= t.request_queue_warning ? 'warnish' : null),
      inline('Peak', fmt.count(totals.peak_in_flight)),
      inline('Error rate', fmt.pct(totals.total ? totals.errors / totals.total : 0), totals.errors ? 'bad' : null),
      inline('Slow (≥ ' + fmt.secs(t.slow_request) + ')', fmt.count(totals.slow), totals.slow ? 'warnish' : null),
      inline('Timed out', fmt.count(totals.timed_out), totals.timed_out ? 'bad' : null),
    );
    const routes = (req.routes || []).slice().sort((a, b) => b.requests - a.requests);
    // Per-route throughput: the change in each route's count since the
    // previous update (the API keeps totals per route, rates only overall).
    const now = Date.now();
    const prev = state.routeCounts;
    const routeRates = new Map();
    for (const r of routes) {
      const key = (r.method || '*') + ' ' + (r.route || '');
      const before = prev && prev.counts.get(key);
      const dt = prev ? (now - prev.at) / 1000 : 0;
      if (before !== undefined && dt > 0.5 && r.requests >= before) routeRates.set(key, (r.requests - before) / dt);
    }
    if (!prev || now - prev.at > 0.5 * 1000) state.routeCounts = { at: now, counts: new Map(routes.map((r) => [(r.method || '*') + ' ' + (r.route || ''), r.requests])) };
    if (!routes.length) {
      emptyRow($('routes'), 9, 'No requests recorded yet. Add RequestTrackingLayer to your axum router to see per-route latency, errors and database work here.');
    } else {
      const slowMs = t.slow_request * 1000;
      replace(
        $('routes'),
        routes.slice(0, 25).map((r) =>
          h(
            'tr',
            { 'data-route': r.route || '' },
            h('td', { class: 'route' }, h('span', { class: 'method', text: r.method || '*' }), r.route || '(other routes)'),
            h('td', { class: 'num', text: fmt.count(r.requests) }),
            h('td', { class: 'num', text: routeRates.has((r.method || '*') + ' ' + (r.route || '')) ? fmt.rate(routeRates.get((r.method || '*') + ' ' + (r.route || ''))) : '…' }),
            h('td', { class: 'num hide-narrow', text: fmt.ms(r.latency.p50_ms) }),
            h('td', { class: 'num' + (r.latency.p95_ms >= slowMs ? ' warnish' : ''), text: fmt.ms(r.latency.p95_ms) }),
            h('td', { class: 'num' + (r.latency.p99_ms >= slowMs ? ' warnish' : ''), text: fmt.ms(r.latency.p99_ms) }),
            h('td', { class: 'num' + (r.errors ? ' bad' : ''), text: r.errors ? fmt.count(r.errors) + ' · ' + fmt.pct(r.error_rate) : '0' }),
            h('td', { class: 'num hide-narrow' + (r.slow ? ' warnish' : ''), text: fmt.count(r.slow) }),
            h('td', { class: 'num', title: 'statements and database time per request', text: r.avg_db_queries.toFixed(1) + ' · ' + fmt.ms(r.avg_db_time_ms) }),
          ),
        ),
      );
    }
    // The same route running the same statement again and again is one
    // finding to fix, not many: group by route and fingerprint.
    const groups = new Map();
    for (const f of req.n_plus_one || []) {
      const key = f.method + ' ' + f.route + ' ' + f.fingerprint;
      const g = groups.get(key);
      if (g) {
        g.requests += 1;
        g.maxCount = Math.max(g.maxCount, f.count);
      } else {
        groups.set(key, Object.assign({}, f, { requests: 1, maxCount: f.count }));
      }
    }
    if (!groups.size) {
      emptyItem($('n-plus-one'), 'No N+1 patterns: no request ran one statement ' + t.n_plus_one_min_count + ' or more times for more than ' + fmt.secs(t.n_plus_one_min_total) + ' in total.', true);
    } else {
      replace(
        $('n-plus-one'),
        [...groups.values()].slice(0, 6).map((g) =>
          h(
            'li',
            { class: 'finding', 'data-route': g.route },
            h(
              'div',
              { class: 'finding-top' },
              h('span', null, h('span', { class: 'method', text: g.method }), h('code', { text: g.route })),
              h('span', { class: 'muted', text: 'up to ' + g.maxCount + '× per request · ' + g.requests + (g.requests === 1 ? ' request' : ' requests') + ' · last ' + fmt.ago(g.at) }),
            ),
            h('code', { class: 'muted', text: g.text }),
            h('span', { class: 'muted small' }, 'latest: ' + g.count + ' runs, ' + fmt.ms(g.total_ms) + ' in request ', h('code', { text: g.request_id })),
          ),
        ),
      );
    }
  }

  // ---- pool ----

  function renderPool(d) {
    const pool = d.status.pool_metrics;
    const t = d.status.thresholds;
    const cur = pool.current;
    const level = levelOf(pool.utilization, t.pool_utilization_warning, t.pool_utilization_critical);
    const meter = $('pool-meter');
    meter.className = 'meter' + (level !== 'pass' ? ' is-' + level : '');
    meter.setAttribute('aria-valuenow', String(Math.round(pool.utilization * 100)));
    $('pool-meter-fill').style.width = Math.min(100, pool.utilization * 100).toFixed(1) + '%';
    $('pool-config').textContent = cur ? 'min ' + cur.min + ' · max ' + cur.max + ' · sampled ' + fmt.ago(cur.at) : '';
    if (!cur) {
      replace($('pool-stats'), stat('Pool', 'no sample yet'), stat('Checkouts', fmt.count(pool.checkouts)));
    } else {
      replace(
        $('pool-stats'),
        stat('In use', cur.in_use + ' / ' + cur.max, level !== 'pass' ? (level === 'fail' ? 'bad' : 'warnish') : null),
        stat('Idle', fmt.count(cur.idle)),
        stat('Open', fmt.count(cur.size)),
        stat('Waiting', fmt.count(cur.pending), cur.pending ? 'warnish' : null),
        stat('Utilization', fmt.pct(pool.utilization)),
        stat('Peak', fmt.pct(pool.peak_utilization)),
        stat('Wait p95', fmt.ms(pool.wait_time.p95_ms)),
        stat('Use p95', fmt.ms(pool.use_time.p95_ms)),
        stat('Checkouts', fmt.rate(pool.checkout_rate_per_second)),
        stat('Timeouts', fmt.count(pool.timeouts), pool.timeouts ? 'bad' : null),
        stat('Leaks', fmt.count(pool.suspected_leaks), pool.suspected_leaks ? 'bad' : null),
      );
    }
    const co = d.checkouts || {};
    const list = co.checkouts || [];
    const leakAfter = num(co.leak_threshold_seconds);
    if (!list.length) {
      emptyRow($('checkouts'), 4, 'No connection is checked out right now.' + (leakAfter ? ' One held longer than ' + fmt.secs(leakAfter) + ' is reported as a suspected leak.' : ''));
    } else {
      replace(
        $('checkouts'),
        list.slice(0, 20).map((c) => {
          const holder = c.holder || {};
          const who = holder.route
            ? [h('code', { text: holder.route }), holder.request_id ? h('div', { class: 'muted small mono', title: 'request ' + holder.request_id, text: shortId(holder.request_id) }) : null]
            : holder.span
              ? [h('code', { text: holder.span })]
              : [h('span', { class: 'muted', text: 'unknown holder' })];
          return h(
            'tr',
            { 'data-checkout': c.id },
            h('td', null, who, c.kind === 'transaction' ? h('span', { class: 'tag', text: 'transaction' }) : null),
            h('td', { class: 'num' + (leakAfter && c.age_seconds >= leakAfter ? ' bad' : ''), text: fmt.secs(c.age_seconds) }),
            h('td', { class: 'num', text: fmt.secs(c.idle_seconds) }),
            h('td', null, c.leak_suspected ? h('span', { class: 'pill is-fail', text: 'suspected' }) : h('span', { class: 'muted', text: '—' })),
          );
        }),
        list.length > 20 ? h('tr', null, h('td', { class: 'empty', colspan: 4, text: '…and ' + (list.length - 20) + ' more' })) : null,
      );
    }
  }

  /** A long request id shortened for a narrow column; the full id is in the title. */
  function shortId(id) {
    return id.length > 13 ? id.slice(0, 8) + '…' + id.slice(-4) : id;
  }

  // ---- sessions ----

  function renderSessions(d) {
    const sm = d.status.session_metrics;
    const t = d.status.thresholds;
    replace(
      $('session-stats'),
      stat('Active', fmt.count(sm.active_sessions), sm.active_sessions >= t.max_active_sessions ? 'bad' : null),
      stat('Peak', fmt.count(sm.peak_active_sessions)),
      stat('Avg duration', fmt.ms(sm.avg_session_duration_ms)),
      stat('p95 duration', fmt.ms(sm.session_duration.p95_ms)),
      stat('Opened', fmt.count(sm.sessions_created)),
      stat('Commits', fmt.count(sm.commits)),
      stat('Rollbacks', fmt.count(sm.rollbacks), sm.rollbacks ? 'warnish' : null),
      stat('Errors', fmt.count(sm.session_errors), sm.session_errors ? 'bad' : null),
    );
  }

  // ---- queries ----

  function sqlCell(text, q) {
    return h(
      'td',
      { class: 'sql', title: text },
      h('div', { class: 'sql-text', text }),
      q && q.table ? h('span', { class: 'tag', text: q.table }) : null,
      q && q.kind ? h('span', { class: 'tag', text: q.kind }) : null,
    );
  }

  function renderQueries(d) {
    const qm = d.status.query_metrics;
    const r1 = rates(d, '1m');
    replace(
      $('query-stats'),
      inline('Rate', fmt.rate(r1.queries_per_second)),
      inline('Statements', fmt.count(qm.total)),
      inline('p50', fmt.ms(qm.latency.p50_ms)),
      inline('p95', fmt.ms(qm.latency.p95_ms)),
      inline('p99', fmt.ms(qm.latency.p99_ms)),
      inline('Failed', fmt.count(qm.failed), qm.failed ? 'bad' : null),
      inline('Slow', fmt.count(qm.slow), qm.slow ? 'warnish' : null),
      inline('Fingerprints', fmt.count(qm.fingerprints_tracked)),
    );
    const top = (d.queries && d.queries.queries) || [];
    if (!top.length) emptyRow($('queries-top-body'), 6, 'No statements recorded yet. Statements run through a MonitoredPool appear here, normalized: literal values are never shown.');
    else
      replace(
        $('queries-top-body'),
        top.map((q) =>
          h(
            'tr',
            null,
            sqlCell(q.other ? '(other statements)' : q.text, q.other ? null : q),
            h('td', { class: 'num', text: fmt.count(q.calls) }),
            h('td', { class: 'num', text: fmt.ms(q.total_time_ms) }),
            h('td', { class: 'num hide-narrow', text: fmt.ms(q.latency.mean_ms) }),
            h('td', { class: 'num', text: fmt.ms(q.latency.p95_ms) }),
            h('td', { class: 'num hide-narrow' + (q.errors ? ' bad' : ''), text: fmt.count(q.errors) }),
          ),
        ),
      );
    const slow = (d.slowQueries && d.slowQueries.queries) || [];
    const threshold = d.slowQueries ? d.slowQueries.threshold_ms : d.status.thresholds.slow_query * 1000;
    $('tab-slow').textContent = 'Slow' + (slow.length ? ' (' + slow.length + ')' : '');
    if (!slow.length) emptyRow($('queries-slow-body'), 4, 'No statement reached the slow-query threshold of ' + fmt.ms(threshold) + ' recently.');
    else
      replace(
        $('queries-slow-body'),
        slow.map((q) =>
          h(
            'tr',
            null,
            sqlCell(q.text, q),
            h('td', { class: 'num warnish', text: fmt.ms(q.duration_ms) }),
            h('td', { class: 'num', text: fmt.count(q.rows) }),
            h('td', { class: 'muted', text: fmt.ago(q.at) }),
          ),
        ),
      );
  }

  function selectQueryTab(which) {
    state.queryTab = which;
    for (const [tab, panel] of [
      ['tab-top', 'queries-top'],
      ['tab-slow', 'queries-slow'],
    ]) {
      const on = panel === 'queries-' + which;
      $(tab).setAttribute('aria-selected', on ? 'true' : 'false');
      $(tab).tabIndex = on ? 0 : -1;
      $(panel).hidden = !on;
    }
  }

  // ---- errors ----

  function renderErrors(d) {
    const w = state.errorWindow;
    const report = d['errors' + w] || d.errors5m;
    if (!report) return;
    replace(
      $('error-stats'),
      inline('Errors', fmt.count(report.errors), report.errors ? 'bad' : null),
      inline('Operations', fmt.count(report.operations)),
      inline('Error rate', fmt.pct(report.error_rate), report.error_rate >= d.status.thresholds.error_rate_warning ? 'bad' : null),
      report.covered_seconds < windowSeconds(w) * 0.95 ? h('span', { class: 'small' }, '(covers ' + fmt.secs(report.covered_seconds) + ' so far)') : null,
    );
    const classes = new Set();
    for (const win of ['5m', '15m', '1h']) {
      const r = d['errors' + win];
      if (r) Object.keys(r.by_class || {}).forEach((c) => classes.add(c));
    }
    if (!classes.size) {
      emptyRow($('error-classes'), 4, 'No database errors in the last hour.');
    } else {
      replace(
        $('error-classes'),
        [...classes].sort().map((c) =>
          h(
            'tr',
            null,
            h('td', { text: fmt.words(c) }),
            ...['5m', '15m', '1h'].map((win) => {
              const r = d['errors' + win];
              const n = r && r.by_class ? r.by_class[c] || 0 : null;
              return h('td', { class: 'num' + (n ? ' bad' : ''), text: n === null ? '…' : fmt.count(n) });
            }),
          ),
        ),
      );
    }
    const patterns = report.patterns || [];
    if (!patterns.length) emptyItem($('error-patterns'), 'No recurring error patterns in the last ' + windowWord(w) + '.', true);
    else
      replace(
        $('error-patterns'),
        patterns.slice(0, 6).map((p) =>
          h(
            'li',
            { class: 'finding' },
            h('div', { class: 'finding-top' }, h('span', { class: 'pill is-fail', text: fmt.words(p.class) }), h('span', { class: 'muted', text: p.count + '× · last ' + fmt.ago(p.last_seen) })),
            p.query ? h('code', { text: p.query }) : null,
            h('span', { class: 'muted small', text: p.last_message }),
          ),
        ),
      );
  }

  const windowSeconds = (w) => ({ '1m': 60, '5m': 300, '15m': 900, '1h': 3600 })[w] || 300;
  const windowWord = (w) => ({ '1m': 'minute', '5m': '5 minutes', '15m': '15 minutes', '1h': 'hour' })[w] || w;

  function selectErrorWindow(button) {
    state.errorWindow = button.dataset.window;
    for (const b of document.querySelectorAll('#w-errors [data-window]')) {
      const on = b === button;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
    renderErrors(state.data);
    scheduleRefresh(0);
  }

  // ---- resources ----

  function resourceBar(label, ratio, detail, warn, fail) {
    const level = levelOf(ratio, warn, fail);
    const fill = h('span', { class: 'meter-fill' });
    fill.style.width = Math.min(100, ratio * 100).toFixed(1) + '%';
    return h(
      'div',
      { class: 'resource' },
      h('div', { class: 'resource-head' }, h('span', { text: label }), h('span', null, h('b', { class: level === 'pass' ? null : level === 'fail' ? 'bad' : 'warnish', text: fmt.pct(ratio, 0) }), ' ', h('span', { class: 'muted small', text: detail }))),
      h('div', { class: 'meter' + (level !== 'pass' ? ' is-' + level : ''), role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(ratio * 100) }, fill),
    );
  }

  function renderResources(d) {
    const rm = d.status.resource_metrics || {};
    const t = d.status.thresholds;
    const cur = rm.current;
    $('resources-at').textContent = rm.sampled_at ? 'sampled ' + fmt.ago(rm.sampled_at) : '';
    if (!cur) {
      replace($('resources'), h('p', { class: 'empty-state', text: 'No resource samples yet. dbwarden serve samples CPU, memory and disk every few seconds; an embedding application calls Monitor::record_resources.' }));
      return;
    }
    const parts = [
      resourceBar('CPU', cur.cpu_usage, 'all cores', t.cpu_warning, t.cpu_critical),
      resourceBar('Memory', num(rm.memory_usage), fmt.bytes(cur.memory_used) + ' of ' + fmt.bytes(cur.memory_total), t.memory_warning, t.memory_critical),
    ];
    if (cur.disk_total) parts.push(resourceBar('Disk', num(rm.disk_usage), fmt.bytes(cur.disk_used) + ' of ' + fmt.bytes(cur.disk_total), 0.85, 0.95));
    parts.push(h('dl', { class: 'stats' }, stat('Process memory', fmt.bytes(cur.process_rss))));
    replace($('resources'), parts);
  }

  // ---- cleanup ----

  function renderCleanup(d) {
    const cm = d.status.cleanup_metrics;
    const store = d.status.session_store_metrics || {};
    const items = [];
    if (cm.last_run) {
      const run = cm.last_run;
      items.push(
        stat('Last run', fmt.ago(cm.last_run_at)),
        stat('Removed', fmt.count(run.rows_removed) + ' rows'),
        stat('Took', fmt.secs(run.duration)),
        stat('Batches', fmt.count(run.batches) + (run.errors ? ' · ' + run.errors + ' failed' : ''), run.errors ? 'bad' : null),
        stat('Runs', fmt.count(cm.runs)),
        stat('Removed in all', fmt.count(cm.rows_removed)),
      );
    } else {
      items.push(h('div', { class: 'empty-state' }, 'Cleanup has not run yet.' + (store.cleanup_interval_seconds ? ' It is expected every ' + fmt.secs(store.cleanup_interval_seconds) + '.' : ' Run dbwarden cleanup or let dbwarden serve run it on its interval.')));
    }
    if (store.cleanup_interval_seconds && cm.last_run) items.push(stat('Interval', fmt.secs(store.cleanup_interval_seconds)));
    if (store.table) {
      items.push(stat('Sessions stored', fmt.count(store.table.total)), stat('Expired', fmt.count(store.table.expired), store.table.expired > d.status.thresholds.expired_sessions ? 'bad' : null));
      if (store.table.bytes !== null && store.table.bytes !== undefined) items.push(stat('Table size', fmt.bytes(store.table.bytes)));
    }
    if (store.writes || store.touches || store.writes_avoided) items.push(stat('Writes avoided', fmt.pct(store.avoided_ratio)));
    replace($('cleanup-stats'), items);
  }

  // ---- trends ----

  const CHARTS = [
    { key: 'qps', title: 'Query rate', fmt: (v) => fmt.rate(v), point: (p) => p.queries_per_second, now: (st) => (st.rates['1m'] || {}).queries_per_second },
    { key: 'p95', title: 'Query latency p95', fmt: (v) => fmt.ms(v), point: (p) => p.query_p95_ms, now: (st) => ((st.rates['5m'] || {}).query_latency || {}).p95_ms },
    { key: 'err', title: 'Error rate', fmt: (v) => fmt.pct(v), point: (p) => p.error_rate, now: (st) => (st.rates['5m'] || {}).error_rate, max: 0.01 },
    { key: 'pool', title: 'Pool utilization', fmt: (v) => fmt.pct(v, 0), point: (p) => p.pool_utilization_avg, now: (st) => st.pool_metrics.utilization, max: 1, fixedMax: true },
    { key: 'sess', title: 'Active sessions', fmt: (v) => fmt.count(v), point: (p) => p.active_sessions, now: (st) => st.session_metrics.active_sessions, max: 2, integer: true },
    { key: 'rps', title: 'Requests', fmt: (v) => fmt.rate(v), point: (p) => p.requests_per_second, now: (st) => (st.rates['1m'] || {}).requests_per_second },
  ];

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
    return 10 * e;
  }

  function renderTrends(d) {
    const container = $('charts');
    const trend = (d.trend && d.trend.points) || [];
    const interval = (d.trend && d.trend.interval_seconds) || 300;
    if (!container.dataset.built) {
      container.dataset.built = '1';
      for (const c of CHARTS) {
        container.append(
          h(
            'div',
            { class: 'chart', id: 'chart-' + c.key, 'data-chart': c.key },
            h('div', { class: 'chart-head' }, h('span', { class: 'chart-title', text: c.title }), h('span', { class: 'chart-value', id: 'chart-' + c.key + '-value' })),
            h('div', { class: 'chart-plot', id: 'chart-' + c.key + '-plot' }),
          ),
        );
      }
    }
    const nowMs = Date.now();
    const lastStored = trend.length ? trend[trend.length - 1].at : 0;
    for (const c of CHARTS) {
      const stored = trend.map((p) => ({ t: p.at, v: num(c.point(p)) }));
      const current = c.now(d.status);
      const live = (series[c.key] = series[c.key] || []);
      if (typeof current === 'number' && isFinite(current) && (!live.length || nowMs - live[live.length - 1].t >= 1000)) {
        live.push({ t: nowMs, v: current, live: true });
        if (live.length > MAX_LIVE_POINTS) live.splice(0, live.length - MAX_LIVE_POINTS);
      }
      const points = stored.concat(live.filter((p) => p.t > lastStored));
      $('chart-' + c.key + '-value').textContent = typeof current === 'number' ? c.fmt(current) : '–';
      drawChart($('chart-' + c.key + '-plot'), c, points, stored.length, interval);
    }
    const firstAt = d.status.monitor.started_at + interval * 1000;
    $('trends-note').textContent = trend.length
      ? 'last ' + fmt.secs((nowMs - trend[0].at) / 1000) + ' · a point every ' + fmt.secs(interval) + ', live since the page opened'
      : 'live since the page opened · the first ' + fmt.secs(interval) + ' point is stored at ' + fmt.time(Math.max(firstAt, nowMs));
  }

  function drawChart(plot, c, points, stored, interval) {
    if (points.length < 2) {
      replace(plot, h('div', { class: 'chart-empty', text: 'Collecting: the line starts with the next update. The figure above is live.' }));
      return;
    }
    const width = Math.max(200, plot.clientWidth || 300);
    const height = 120;
    const left = 44;
    const right = 6;
    const top = 6;
    const bottom = 18;
    // At least an hour of stored history, or two minutes of live values.
    const t0 = Math.min(points[0].t, points[points.length - 1].t - (stored ? 3600 : 120) * 1000);
    const t1 = points[points.length - 1].t;
    let maxV = c.fixedMax ? c.max : niceMax(Math.max(c.max || 0, ...points.map((p) => p.v)));
    // Counts get an even maximum, so the middle grid line is a whole number.
    if (c.integer) maxV = Math.max(2, Math.ceil(maxV / 2) * 2);
    const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
    const y = (v) => top + (1 - Math.min(v, maxV) / maxV) * (height - top - bottom);
    const svg = s('svg', { viewBox: '0 0 ' + width + ' ' + height, width, height, role: 'img', 'aria-label': c.title + ': ' + points.length + ' points, latest ' + c.fmt(points[points.length - 1].v) + ', highest ' + c.fmt(Math.max(...points.map((p) => p.v))) });
    for (const frac of [0, 0.5, 1]) {
      const yy = y(maxV * frac);
      svg.append(s('line', { class: frac === 0 ? 'axis' : 'grid-line', x1: left, x2: width - right, y1: yy, y2: yy }));
      const label = s('text', { class: 'label', x: left - 6, y: yy + 3, 'text-anchor': 'end' });
      // Axis labels are round numbers: drop a trailing ".0" ("25.0/s" → "25/s").
      label.textContent = c.fmt(maxV * frac).replace(/\.0+(?=\D|$)/, '');
      svg.append(label);
    }
    for (const [t, anchor] of [
      [t0, 'start'],
      [t1, 'end'],
    ]) {
      const label = s('text', { class: 'label', x: x(t), y: height - 4, 'text-anchor': anchor });
      label.textContent = t === t1 ? 'now' : fmt.time(t);
      svg.append(label);
    }
    // Gaps longer than two intervals (the server was down) break the line.
    const gap = interval * 1000 * 2.5;
    const liveGap = 60 * 1000;
    let d = '';
    let area = '';
    let segStart = null;
    points.forEach((p, i) => {
      const px = x(p.t).toFixed(1);
      const py = y(p.v).toFixed(1);
      const prev = points[i - 1];
      const broken = i > 0 && p.t - prev.t > (p.live && prev.live ? liveGap : gap);
      if (i === 0 || broken) {
        if (segStart !== null) area += ' L' + x(points[i - 1].t).toFixed(1) + ',' + y(0) + ' L' + segStart + ',' + y(0) + ' Z';
        d += 'M' + px + ',' + py;
        area += 'M' + px + ',' + y(0) + ' L' + px + ',' + py;
        segStart = px;
      } else {
        d += ' L' + px + ',' + py;
        area += ' L' + px + ',' + py;
      }
    });
    area += ' L' + x(points[points.length - 1].t).toFixed(1) + ',' + y(0) + ' L' + segStart + ',' + y(0) + ' Z';
    svg.append(s('path', { class: 'area', d: area }), s('path', { class: 'line', d }));
    if (points.length === 1) svg.append(s('circle', { class: 'cursor-dot', cx: x(points[0].t), cy: y(points[0].v), r: 3 }));
    const cursor = s('line', { class: 'cursor', x1: 0, x2: 0, y1: top, y2: height - bottom, visibility: 'hidden' });
    const dot = s('circle', { class: 'cursor-dot', r: 3, visibility: 'hidden' });
    svg.append(cursor, dot);
    const tip = h('div', { class: 'chart-tip', hidden: true });
    svg.addEventListener('mousemove', (ev) => {
      const rect = svg.getBoundingClientRect();
      const mx = ((ev.clientX - rect.left) / rect.width) * width;
      let best = points[0];
      for (const p of points) if (Math.abs(x(p.t) - mx) < Math.abs(x(best.t) - mx)) best = p;
      const bx = x(best.t);
      for (const [k, v] of [
        ['x1', bx],
        ['x2', bx],
      ])
        cursor.setAttribute(k, v);
      cursor.setAttribute('visibility', 'visible');
      dot.setAttribute('cx', bx);
      dot.setAttribute('cy', y(best.v));
      dot.setAttribute('visibility', 'visible');
      tip.textContent = (best.live ? 'now' : fmt.time(best.t)) + ' · ' + c.fmt(best.v);
      tip.style.left = (bx / width) * 100 + '%';
      tip.hidden = false;
    });
    svg.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      dot.setAttribute('visibility', 'hidden');
      tip.hidden = true;
    });
    replace(plot, svg, tip);
  }

  // ---- wiring ----------------------------------------------------------------------------

  function tabKeys(ev, buttons, select) {
    const i = buttons.indexOf(ev.target);
    if (i < 0) return;
    let j = null;
    if (ev.key === 'ArrowRight') j = (i + 1) % buttons.length;
    else if (ev.key === 'ArrowLeft') j = (i - 1 + buttons.length) % buttons.length;
    if (j === null) return;
    ev.preventDefault();
    buttons[j].focus();
    select(buttons[j]);
  }

  function init() {
    $('signin-form').addEventListener('submit', signIn);
    $('signout-form').addEventListener('submit', signOut);
    $('refresh').addEventListener('click', () => refresh(true));
    $('tab-top').addEventListener('click', () => selectQueryTab('top'));
    $('tab-slow').addEventListener('click', () => selectQueryTab('slow'));
    const queryTabs = [$('tab-top'), $('tab-slow')];
    queryTabs.forEach((b) => b.addEventListener('keydown', (ev) => tabKeys(ev, queryTabs, (t) => selectQueryTab(t === queryTabs[0] ? 'top' : 'slow'))));
    const windowTabs = [...document.querySelectorAll('#w-errors [data-window]')];
    windowTabs.forEach((b) => {
      b.addEventListener('click', () => selectErrorWindow(b));
      b.addEventListener('keydown', (ev) => tabKeys(ev, windowTabs, selectErrorWindow));
    });
    $('silence-dialog').addEventListener('close', onSilenceClose);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'r' && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !/^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName) && state.running) refresh(true);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.running) scheduleRefresh(0);
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.data.status && renderTrends(state.data), 150);
    });
    if (document.body.dataset.view === 'dashboard') showDashboard();
    else showSignIn();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
