// SpiceFlow status page: plain JS, no build step, no dependency.
//
// Every data request carries the bearer token in the Authorization header. The live
// feed (/live) is a text/event-stream read with fetch() streaming, because EventSource
// cannot send that header. /health and /subscriptions are polled once a second; the
// live feed brings the chosen book and the latency numbers five times a second.
// All text from the server is put in the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "spiceflow.apiToken";
const POLL_MS = 1000;
const RETRY_MS = 2000;
const HISTORY = 300; // latency points kept per venue (a minute at 5 per second)
const COLORS = ["#4aa3df", "#e0a526", "#b07ee8", "#3fc1a5", "#e86f9b", "#9fc14a"];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  selected: decodeURIComponent(location.hash.slice(1)) || null, // "venue:symbol" shown in the ladder
  health: null,
  subscriptions: [],
  numbers: {}, // venue -> {p50_ms, p99_ms, counters} from the live feed
  history: {}, // venue -> [{t, p50, p99}]
  live: null, // AbortController of the running stream
  pollTimer: null,
  liveTimer: null,
  unauthorized: false,
};

const $ = (id) => document.getElementById(id);

class HttpError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  let text = `HTTP ${status}`;
  if (body && typeof body.error === "string") text += `: ${body.error}`;
  const near = (body && (body.close_matches || body.matches)) || [];
  if (near.length) text += ` (did you mean ${near.slice(0, 5).join(", ")}?)`;
  return text;
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  return headers;
}

async function api(path, options) {
  const opts = Object.assign({ cache: "no-store" }, options || {});
  opts.headers = authHeaders(opts.headers);
  const response = await fetch(path, opts);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

// -- element helpers -----------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badgeClass(stateName) {
  if (stateName === "synced" || stateName === "live") return "badge ok";
  if (stateName === "pending" || stateName === "resyncing" || stateName === "connecting") return "badge warn";
  return "badge bad";
}

function fmt(n) {
  return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US");
}

// -- errors ----------------------------------------------------------------------------
function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function setFeedState(text, cls) {
  const badge = $("feed-state");
  badge.textContent = text;
  badge.className = cls;
}

function clearData() {
  state.health = null;
  state.subscriptions = [];
  state.numbers = {};
  state.history = {};
  renderVenues();
  renderSubscriptions();
  renderLadder(null);
  drawLatency();
}

// Any request answered 401 stops everything until a token is given: the page shows
// the error and no data.
function unauthorized(err) {
  state.unauthorized = true;
  stopPolling();
  stopLive();
  clearData();
  setFeedState("no access", "badge bad");
  showError(`${err.message} — enter the API token above.`);
  $("token").focus();
}

// -- polling /health and /subscriptions --------------------------------------------
async function poll() {
  state.pollTimer = null;
  try {
    const [health, subscriptions] = await Promise.all([api("/health"), api("/subscriptions")]);
    if (state.unauthorized) return;
    state.health = health;
    state.subscriptions = subscriptions;
    showError("");
    renderVenues();
    renderVenueChoices();
    renderSubscriptions();
    if (!state.selected) {
      const book = subscriptions.find((s) => s.feed === "book");
      if (book) select(`${book.venue}:${book.symbol}`);
    }
    if (!state.live && state.liveTimer === null) openLive();
    schedulePoll(POLL_MS);
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) return unauthorized(err);
    showError(err instanceof HttpError ? err.message : `cannot reach the control API (${err.message})`);
    schedulePoll(RETRY_MS);
  }
}

function schedulePoll(ms) {
  if (!state.unauthorized && state.pollTimer === null) state.pollTimer = setTimeout(poll, ms);
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

// -- the live feed: fetch() streaming of text/event-stream -------------------------
function stopLive() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
  if (state.live) state.live.abort();
  state.live = null;
}

async function openLive() {
  stopLive();
  const ctrl = new AbortController();
  state.live = ctrl;
  const query = state.selected ? `?instrument=${encodeURIComponent(state.selected)}` : "";
  setFeedState("connecting", "badge warn");
  try {
    const response = await fetch(`/live${query}`, {
      headers: authHeaders({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal: ctrl.signal,
    });
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      throw new HttpError(response.status, body);
    }
    setFeedState("live", "badge ok");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let ended = false;
    while (!ended) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while (!ended && (end = buffer.indexOf("\n\n")) >= 0) {
        ended = onEvent(parseEvent(buffer.slice(0, end)));
        buffer = buffer.slice(end + 2);
      }
    }
    if (ended) {
      // The server is stopping: no retry from here; the next successful poll (the
      // server is back) opens the feed again.
      if (state.live === ctrl) {
        state.live = null;
        setFeedState("server stopped", "badge bad");
      }
      return;
    }
    if (state.live === ctrl) setFeedState("stream ended", "badge bad");
  } catch (err) {
    if (ctrl.signal.aborted) return;
    if (err instanceof HttpError && err.status === 401) return unauthorized(err);
    setFeedState("disconnected", "badge bad");
    if (err instanceof HttpError && err.status !== 503) {
      // a bad instrument: show why, and keep the numbers coming without it
      $("sub-result").textContent = `live feed: ${err.message}`;
      $("sub-result").className = "note bad";
      if (state.selected) {
        select(null);
        return;
      }
    }
  }
  if (state.live === ctrl && !state.unauthorized) state.liveTimer = setTimeout(openLive, RETRY_MS);
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { name, data: data.length ? JSON.parse(data.join("\n")) : null };
}

// Returns true at the server's "end" event (it is shutting down).
function onEvent(event) {
  if (event.name === "end") return true;
  if (event.name !== "tick" || !event.data) return false;
  const frame = event.data;
  state.numbers = frame.venues;
  for (const [venue, numbers] of Object.entries(frame.venues)) {
    const points = state.history[venue] || (state.history[venue] = []);
    points.push({ t: frame.ts_ms, p50: numbers.p50_ms, p99: numbers.p99_ms });
    if (points.length > HISTORY) points.splice(0, points.length - HISTORY);
  }
  renderVenues();
  drawLatency();
  renderLadder(frame.book);
  return false;
}

// -- choosing the instrument of the ladder ----------------------------------------
function select(instrument) {
  if (instrument === state.selected) return;
  state.selected = instrument;
  window.history.replaceState(null, "", instrument ? `#${encodeURIComponent(instrument)}` : location.pathname);
  renderLadder(null);
  renderSubscriptions();
  if (!state.unauthorized) openLive();
}

// -- rendering -----------------------------------------------------------------------
function renderVenues() {
  const body = $("venues").tBodies[0];
  const rows = [];
  const venues = (state.health && state.health.venues) || {};
  for (const name of Object.keys(venues).sort()) {
    const v = venues[name];
    const counters = (state.numbers[name] && state.numbers[name].counters) || {};
    const conns = el("td");
    conns.append(`${v.connected}/${v.connections} up `);
    for (const c of v.connection_states || []) {
      const title = c.last_error ? `last error: ${c.last_error}` : `${c.channels} channels, ${c.frames} frames`;
      conns.append(el("span", { class: `conn ${c.up ? "up" : "down"}`, title }, `#${c.id}${c.up ? "▲" : "▼"}`));
    }
    rows.push(
      el(
        "tr",
        { "data-venue": name },
        el("td", {}, name),
        conns,
        el("td", { class: "num" }, fmt(v.subscriptions)),
        el("td", { class: "num" }, fmt(counters.frames_in)),
        el("td", { class: "num" }, fmt(counters.book_updates)),
        el("td", { class: "num" }, fmt(counters.published)),
        el("td", { class: "num" }, fmt(counters.gaps)),
        el("td", { class: "num" }, fmt(counters.resyncs)),
        el("td", { class: "num" }, fmt(counters.reconnects)),
      ),
    );
  }
  body.replaceChildren(...rows);
}

function renderVenueChoices() {
  const choice = $("sub-venue");
  const names = Object.keys((state.health && state.health.venues) || {}).sort();
  const current = [...choice.options].map((o) => o.value);
  if (names.join() === current.join()) return;
  const keep = choice.value;
  choice.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  if (names.includes(keep)) choice.value = keep;
}

function renderSubscriptions() {
  const body = $("subscriptions").tBodies[0];
  const rows = state.subscriptions.map((s) => {
    const key = `${s.venue}:${s.symbol}`;
    const c = s.counters || {};
    const actions = el("td", { class: "num" });
    if (s.feed === "book") {
      actions.append(el("button", { type: "button", class: "small", onclick: () => select(key) }, "show"), " ");
    }
    actions.append(
      el(
        "button",
        { type: "button", class: "small", onclick: () => change("/unsubscribe", s.venue, s.symbol, s.feed) },
        "unsubscribe",
      ),
    );
    const selected = s.feed === "book" && key === state.selected;
    return el(
      "tr",
      { "data-id": s.id, class: selected ? "selected" : "" },
      el("td", { title: s.instrument }, `${s.id}${selected ? " ◂" : ""}`),
      el("td", {}, el("span", { class: badgeClass(s.state) }, s.state)),
      el("td", { class: "num" }, s.connection === null ? "–" : s.connection),
      el("td", { class: "num" }, fmt(c.book_updates || 0)),
      el("td", { class: "num" }, fmt(c.trades || 0)),
      el("td", { class: "num" }, fmt(c.gaps || 0)),
      el("td", { class: "num" }, fmt(c.resyncs || 0)),
      actions,
    );
  });
  body.replaceChildren(...rows);
}

function renderLadder(book) {
  $("ladder-title").textContent = state.selected || "";
  const table = $("ladder");
  const empty = $("ladder-empty");
  const stateBadge = $("ladder-state");
  if (!book) {
    table.hidden = true;
    empty.hidden = false;
    empty.textContent = state.selected ? "waiting for the live feed…" : "Choose a book subscription (“show”) or subscribe one.";
    stateBadge.textContent = "";
    $("ladder-seq").textContent = "–";
    $("ladder-time").textContent = "–";
    return;
  }
  stateBadge.textContent = book.state;
  stateBadge.className = badgeClass(book.state);
  $("ladder-seq").textContent = book.sequence === null ? "–" : String(book.sequence);
  $("ladder-time").textContent = book.exchange_ts_ms ? new Date(book.exchange_ts_ms).toISOString().slice(11, 23) : "–";
  if (book.state === "unsubscribed") {
    table.hidden = true;
    empty.hidden = false;
    empty.textContent = `${book.venue}:${book.symbol} has no book subscription.`;
    return;
  }
  const depth = Math.max(book.bids.length, book.asks.length);
  if (!depth) {
    table.hidden = true;
    empty.hidden = false;
    empty.textContent = book.reason ? `no book: ${book.state} (${book.reason})` : `no book yet: ${book.state}`;
    return;
  }
  empty.hidden = true;
  table.hidden = false;
  const sizes = [...book.bids, ...book.asks].map((level) => parseFloat(level[1]) || 0);
  const biggest = Math.max(...sizes, 1e-12);
  const sizeCell = (level, side) => {
    const td = el("td", { class: `num ${side}-size` });
    if (!level) return td;
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.min(100, (100 * (parseFloat(level[1]) || 0)) / biggest)}%`;
    td.append(bar, el("span", {}, level[1]));
    return td;
  };
  const rows = [];
  for (let i = 0; i < depth; i++) {
    const bid = book.bids[i];
    const ask = book.asks[i];
    rows.push(
      el(
        "tr",
        {},
        sizeCell(bid, "bid"),
        el("td", { class: "num bid" }, bid ? bid[0] : ""),
        el("td", { class: "num ask" }, ask ? ask[0] : ""),
        sizeCell(ask, "ask"),
      ),
    );
  }
  table.tBodies[0].replaceChildren(...rows);
}

function drawLatency() {
  const canvas = $("latency");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const venues = Object.keys(state.history).sort();
  let top = 0;
  for (const v of venues) for (const p of state.history[v]) top = Math.max(top, p.p99);
  top = top > 0 ? top * 1.15 : 1;
  const pad = { left: 46, right: 6, top: 8, bottom: 16 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#8b98a5";
  ctx.strokeStyle = "#2a333c";
  ctx.lineWidth = 1;
  for (const frac of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - frac);
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
    ctx.fillText(`${(top * frac).toFixed(top < 1 ? 3 : 1)} ms`, 2, y + 4);
  }
  // x is time: the chart spans what is kept (up to HISTORY points per venue)
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const v of venues) {
    const points = state.history[v];
    if (points.length) {
      t0 = Math.min(t0, points[0].t);
      t1 = Math.max(t1, points[points.length - 1].t);
    }
  }
  const span = Math.max(t1 - t0, 1);
  if (venues.length && Number.isFinite(t0)) ctx.fillText(`last ${Math.round(span / 1000)} s`, pad.left, height - 3);
  const legend = [];
  venues.forEach((venue, i) => {
    const color = COLORS[i % COLORS.length];
    const points = state.history[venue];
    for (const [key, dash, w] of [["p99", [4, 3], 1.2], ["p50", [], 2]]) {
      ctx.beginPath();
      ctx.setLineDash(dash);
      ctx.strokeStyle = color;
      ctx.lineWidth = w;
      points.forEach((p, j) => {
        const x = pad.left + (plotW * (p.t - t0)) / span;
        const y = pad.top + plotH * (1 - p[key] / top);
        if (j === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
    ctx.setLineDash([]);
    const last = points[points.length - 1];
    const swatch = el("i");
    swatch.style.background = color;
    legend.push(
      el("span", {}, swatch, `${venue} p50 ${last ? last.p50.toFixed(3) : "–"} ms · p99 ${last ? last.p99.toFixed(3) : "–"} ms`),
    );
  });
  if (venues.length) legend.push(el("span", {}, "solid p50, dashed p99"));
  canvas.dataset.points = String(Math.max(0, ...venues.map((v) => state.history[v].length)));
  $("latency-legend").replaceChildren(...legend);
}

// -- the forms -----------------------------------------------------------------------
async function change(path, venue, instrument, feed) {
  const result = $("sub-result");
  result.className = "note";
  result.textContent = `${path.slice(1)} ${venue}:${instrument} ${feed}…`;
  try {
    const sub = await api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ venue, instrument, feed }),
    });
    result.className = "note good";
    result.textContent = `${path === "/subscribe" ? "subscribed" : "unsubscribed"} ${sub.id} (topic ${sub.topic})`;
    if (path === "/subscribe" && sub.feed === "book") select(`${sub.venue}:${sub.symbol}`);
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) return unauthorized(err);
    result.className = "note bad";
    result.textContent = err instanceof HttpError ? err.message : `request failed (${err.message})`;
  }
  stopPolling();
  poll();
}

function onSubForm(path) {
  const instrument = $("sub-instrument").value.trim();
  if (!instrument) {
    $("sub-result").className = "note bad";
    $("sub-result").textContent = "name an instrument (symbol or normalized id)";
    return;
  }
  change(path, $("sub-venue").value || null, instrument, $("sub-feed").value);
}

function start() {
  state.unauthorized = false;
  showError("");
  stopPolling();
  poll();
  openLive();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").placeholder = state.token ? "token set (this tab)" : "bearer token";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    $("token").placeholder = state.token ? "token set (this tab)" : "bearer token";
    start();
  });
  $("forget-token").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").placeholder = "bearer token";
    start();
  });
  $("sub-form").addEventListener("submit", (event) => {
    event.preventDefault();
    onSubForm("/subscribe");
  });
  $("unsubscribe").addEventListener("click", () => onSubForm("/unsubscribe"));
  window.addEventListener("resize", drawLatency);
  start();
});
