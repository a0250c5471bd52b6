// Moonship dashboard: logs in with the API's session cookie, follows GET /events (server-sent events) and
// sends start/stop and trading-state commands. Stable hooks: form#login, [data-strategy="ENGINE/STRATEGY"]
// with [data-field=...] and [data-action=...] (see the moonship-api README).
"use strict";

const CHART_POINTS = 600;
const FIELDS = ["active", "trading_state", "position", "total_profit", "open_orders", "price"];
const charts = new Map();  // "engine/strategy" -> {plot, data}
let events = null;

const $ = (selector, root = document) => root.querySelector(selector);

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

async function send(method, path, body) {
  const options = {method, credentials: "same-origin", headers: {}};
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

function show(loggedIn) {
  $("#login").hidden = loggedIn;
  $("#dashboard").hidden = !loggedIn;
  $("#logout").hidden = !loggedIn;
}

async function begin() {
  try {
    await send("GET", "/engines");
  } catch (error) {
    show(false);
    return;
  }
  show(true);
  follow();
}

function follow() {
  if (events) events.close();
  events = new EventSource("/events");
  events.onmessage = (message) => render(JSON.parse(message.data));
  events.addEventListener("unavailable", () => { $("#status").textContent = "shared cache unavailable"; });
  events.onerror = () => {
    events.close();
    events = null;
    setTimeout(begin, 2000);  // the session may have ended: begin() shows the login form then
  };
}

function engineSection(engine) {
  let section = $(`[data-engine="${CSS.escape(engine.name)}"]`);
  if (!section) {
    section = element("div", {"class": "engine", "data-engine": engine.name});
    const title = element("h2");
    const controls = element("div", {"class": "controls"});
    for (const [action, state] of [["halt", "HALTED"], ["reduce", "REDUCING"], ["resume", "ACTIVE"]]) {
      const button = element("button", {"data-action": action}, action);
      button.addEventListener("click", () => command(
        () => send("POST", `/engines/${encodeURIComponent(engine.name)}/trading-state`,
          {state, reason: "dashboard"})));
      controls.append(button);
    }
    section.append(title, controls, element("div", {"class": "strategies"}));
    $("#engines").append(section);
  }
  $("h2", section).textContent = `${engine.name}: ${engine.trading_state}` +
    (engine.trading_state_reason ? ` (${engine.trading_state_reason})` : "");
  return section;
}

function strategyCard(info, section) {
  const key = `${info.engine}/${info.name}`;
  let card = $(`[data-strategy="${CSS.escape(key)}"]`);
  if (card) return card;
  card = element("div", {"class": "strategy", "data-strategy": key});
  const list = element("dl");
  for (const field of FIELDS) list.append(element("dt", {}, field), element("dd", {"data-field": field}));
  const controls = element("div", {"class": "controls"});
  const base = `/strategies/${encodeURIComponent(info.engine)}/${encodeURIComponent(info.name)}`;
  for (const action of ["start", "stop"]) {
    const button = element("button", {"data-action": action}, action);
    button.addEventListener("click", () => command(() => send("POST", `${base}/${action}`, {}), card));
    controls.append(button);
  }
  for (const [action, state] of [["halt", "HALTED"], ["reduce", "REDUCING"], ["resume", "ACTIVE"]]) {
    const button = element("button", {"data-action": action}, action);
    button.addEventListener("click", () => command(
      () => send("POST", `${base}/trading-state`, {state, reason: "dashboard"}), card));
    controls.append(button);
  }
  const chart = element("div", {"class": "chart"});
  card.append(element("h3", {}, info.name), list, controls, chart, element("p", {"class": "error"}));
  $(".strategies", section).append(card);
  const data = [[], [], []];
  const plot = new uPlot({
    width: 440, height: 160,
    series: [{}, {label: "price", stroke: "#1f5fbf", scale: "price"},
      {label: "P/L", stroke: "#0a7c2f", scale: "pl"}],
    axes: [{}, {scale: "price", size: 80}, {scale: "pl", side: 1, size: 60, grid: {show: false}}],
  }, data, chart);
  charts.set(key, {plot, data});
  return card;
}

async function command(action, card) {
  const error = card ? $(".error", card) : $("#status");
  try {
    const info = await action();
    error.textContent = "";
    if (card && info && info.name) fill(card, info, undefined);
  } catch (problem) {
    error.textContent = problem.message;
  }
}

function fill(card, info, price) {
  const values = {
    active: String(Boolean(info.active)),
    trading_state: info.trading_state || "ACTIVE",
    position: String(info.position ?? ""),
    total_profit: String(info.total_profit ?? ""),
    open_orders: String(info.open_orders ?? 0),
  };
  if (price !== undefined) values.price = price === null ? "" : String(price);
  for (const [field, value] of Object.entries(values)) {
    const node = $(`[data-field="${field}"]`, card);
    node.textContent = value;
    if (field === "active") node.className = value;
  }
}

function render(picture) {
  $("#status").textContent = `updated ${new Date(picture.time).toLocaleTimeString()}`;
  const seen = new Set();
  const sections = new Map(picture.engines.map((engine) => [engine.name, engineSection(engine)]));
  const now = Date.parse(picture.time) / 1000;
  for (const info of picture.strategies) {
    const section = sections.get(info.engine);
    if (!section) continue;
    const key = `${info.engine}/${info.name}`;
    seen.add(key);
    const market = (info.config && info.config.markets || [])[0];
    const price = ((picture.prices || {})[info.engine] || {})[market] ?? null;
    const card = strategyCard(info, section);
    fill(card, info, price);
    const {plot, data} = charts.get(key);
    data[0].push(now);
    data[1].push(price === null ? null : Number(price));
    data[2].push(Number(info.total_profit || 0));
    if (data[0].length > CHART_POINTS) data.forEach((series) => series.shift());
    plot.setData(data);
  }
  for (const card of document.querySelectorAll("[data-strategy]")) {
    if (!seen.has(card.dataset.strategy)) {
      charts.get(card.dataset.strategy)?.plot.destroy();
      charts.delete(card.dataset.strategy);
      card.remove();
    }
  }
  for (const section of document.querySelectorAll("[data-engine]")) {
    if (!sections.has(section.dataset.engine)) section.remove();
  }
  const rows = $("#alerts tbody");
  rows.replaceChildren(...picture.alerts.map((alert) => {
    const row = element("tr");
    for (const value of [alert.time, alert.alert, alert.engine, alert.strategy]) {
      row.append(element("td", {}, String(value ?? "")));
    }
    return row;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await send("POST", "/login", {user: form.get("user"), password: form.get("password")});
      $("#login-error").textContent = "";
      event.target.reset();
      begin();
    } catch (problem) {
      $("#login-error").textContent = problem.message;
    }
  });
  $("#logout").addEventListener("click", async () => {
    if (events) events.close();
    events = null;
    await send("POST", "/logout", {}).catch(() => {});
    show(false);
  });
  begin();
});
