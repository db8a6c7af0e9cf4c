"use strict";
// Renders /dynamo2mongo/api/tables: one card per table, refreshed every 30 s. Plain DOM and SVG, so
// the page needs no build step and no download when Airflow serves it.

const REFRESH_MS = 30000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${Number(s).toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// What a direction's lag cell says. A relay that stopped, paused or went silent applies nothing: its
// "lag" would only count how long ago it stopped, so it shows its state instead of a number.
function lagText(report, heartbeatTimeout) {
  if (report.fatal) return el("span", { class: "badge bad", "data-relay": "failed" }, "failed");
  const status = report.relay_status;
  if (status === "stopped" || status === "paused") {
    return el("span", { class: "badge warn", "data-relay": status, title: report.detail || "" },
              status === "stopped" ? "relay stopped" : "paused (by an operation)");
  }
  const age = report.heartbeat_age_seconds;
  if (status && age !== undefined && age !== null && heartbeatTimeout && age > heartbeatTimeout) {
    return el("span", { class: "badge warn", "data-relay": "stale", title: report.detail || "" },
              `stale: no heartbeat for ${seconds(age)}`);
  }
  if (report.lag_seconds !== null && report.lag_seconds !== undefined) return seconds(report.lag_seconds);
  return el("span", { class: "muted" }, status || report.detail || "–");
}

// Every phase has a tone: in progress (info), done and holding (good), needs a look (warn/bad).
const PHASE_TONES = { preflight_passed: "info", exported: "info", full_load_mismatch: "bad", full_load_done: "info",
                      forward_caught_up: "good", rolled_back: "warn", cut_over: "good", finished: "good" };

function phaseBadge(phase) {
  const tone = PHASE_TONES[phase] || "";
  return el("span", { class: `badge ${tone}`, "data-phase": phase || "" }, phase || "not started");
}

// The window starts at the first sample when the samples are younger than the chosen window, so minutes
// of samples are not squeezed into a dot at the right edge of a day (at least 10 minutes are shown).
function chartStart(history, hours, end) {
  const windowStart = end - hours * 3600 * 1000;
  const times = [...history.forward, ...history.backward].map((p) => new Date(p.at).getTime());
  if (!times.length) return windowStart;
  return Math.max(windowStart, Math.min(Math.min(...times), end - 10 * 60 * 1000));
}

function chart(history, threshold, hours, generatedAt) {
  const width = 600, height = 170, left = 44, right = 8, top = 8, bottom = 20;
  const end = new Date(generatedAt).getTime();
  const start = chartStart(history, hours, end);
  hours = (end - start) / 3600000;
  const values = [...history.forward, ...history.backward].map((p) => p.lag_seconds).filter((v) => v !== null);
  const top_value = Math.max(threshold * 1.25, ...values, 1);
  const x = (t) => left + ((new Date(t).getTime() - start) / (end - start)) * (width - left - right);
  const y = (v) => top + (1 - v / top_value) * (height - top - bottom);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
                            role: "img", "aria-label": "forward and backward lag over time" });
  root.append(svg("line", { class: "axis", x1: left, y1: y(0), x2: width - right, y2: y(0) }));
  root.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: y(0) }));
  root.append(svg("line", { class: "threshold", x1: left, y1: y(threshold), x2: width - right, y2: y(threshold) }));
  // The axis carries the scale; the threshold's label sits on its line inside the plot, at the right,
  // so neither crowds the other. A scale label too close to the threshold line is left out.
  for (const [value, label] of [[top_value, seconds(top_value)], [0, "0"]]) {
    if (value !== 0 && Math.abs(y(value) - y(threshold)) < 12) continue;
    const text = svg("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end" });
    text.textContent = label;
    root.append(text);
  }
  const alertLabel = svg("text", { class: "threshold-label", x: width - right - 2, y: y(threshold) - 3,
                                   "text-anchor": "end" });
  alertLabel.textContent = `alert ${seconds(threshold)}`;
  root.append(alertLabel);
  // Over half a day the same clock time recurs: the ticks then carry the date as well.
  const tick = hours > 12 ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
                          : { hour: "2-digit", minute: "2-digit" };
  for (const [at, anchor] of [[start, "start"], [(start + end) / 2, "middle"], [end, "end"]]) {
    const text = svg("text", { x: x(at), y: height - 4, "text-anchor": anchor });
    text.textContent = new Date(at).toLocaleString([], tick);
    root.append(text);
  }
  for (const direction of ["forward", "backward"]) {
    // A sample without a lag (relay not started, waiting) breaks the line instead of drawing zero.
    let run = [];
    const flush = () => {
      if (run.length === 1) run.push([run[0][0] + 1, run[0][1]]);
      if (run.length) root.append(svg("polyline", { class: direction, "data-direction": direction,
                                                     points: run.map((p) => p.join(",")).join(" ") }));
      run = [];
    };
    for (const point of history[direction]) {
      if (point.lag_seconds === null) { flush(); continue; }
      run.push([x(point.at).toFixed(1), y(point.lag_seconds).toFixed(1)]);
    }
    flush();
  }
  return root;
}

function countsList(counts) {
  if (!counts) return el("p", { class: "muted" }, "no full load yet");
  const rows = [["exported items", number(counts.export_items)]];
  if (counts.converted !== undefined) {
    rows.push(["converted", number(counts.converted)], ["imported", number(counts.imported)],
              ["quarantined", number(counts.quarantined)],
              ["files converted / imported", `${counts.files_converted} / ${counts.files_imported}`]);
  }
  if (counts.reconciled) {
    rows.push(["documents in collection", number(counts.reconciled.collection_count)],
              ["reconcile differences", number(counts.reconciled.differences)]);
  }
  return el("dl", { class: "counts" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// A sampled check and a full comparison say different things: the label keeps them apart.
function verificationKind(v) {
  const mode = v.mode || "full";
  if (mode === "full") return `full: every item of both stores, ${number(v.checked)} keys`;
  return `${mode.startsWith("sample") ? mode.replace(/^sample(d)?/, "sampled") : mode}: ${number(v.checked)} keys ` +
         "compared, not the whole table";
}

function verification(v) {
  if (!v) return el("p", { class: "muted" }, "never verified");
  const ok = v.differences === 0;
  return el("dl", { class: "verification" },
    el("dt", {}, "result"), el("dd", {}, el("span", { class: `badge ${ok ? "good" : "bad"}` },
                                            ok ? "no differences" : `${number(v.differences)} differences`)),
    el("dt", {}, "kind"), el("dd", { class: "verification-kind" }, verificationKind(v)),
    el("dt", {}, "checked"), el("dd", {}, `${number(v.checked)} (${v.mode || "full"})`),
    el("dt", {}, "missing / extra / different"),
    el("dd", {}, `${number(v.missing)} / ${number(v.extra)} / ${number(v.different)}`),
    el("dt", {}, "at"), el("dd", {}, when(v.at)));
}

function conflicts(table) {
  const list = table.recent_conflicts || [];
  return el("div", {},
    el("p", {}, el("strong", { class: "conflict-count" }, number(table.conflicts)),
      table.conflicts === 1 ? " conflict recorded" : " conflicts recorded"),
    list.length ? el("table", { class: "conflicts" },
      el("tr", {}, el("th", {}, "key"), el("th", {}, "policy"), el("th", {}, "resolution"), el("th", {}, "at")),
      list.map((c) => el("tr", {}, el("td", {}, JSON.stringify(c.key)), el("td", {}, c.policy),
                                   el("td", {}, c.resolution), el("td", {}, when(c.at))))) : null);
}

function quarantine(table) {
  const q = table.quarantine;
  const total = q.forward + q.backward;
  return el("div", {},
    el("p", {}, el("strong", { class: "quarantine-count" }, number(total)),
      total === 1 ? " change quarantined" : " changes quarantined",
      el("span", { class: "muted" }, ` (forward ${number(q.forward)}, backward ${number(q.backward)})`)),
    q.latest.length ? el("table", { class: "quarantine" },
      el("tr", {}, el("th", {}, "key"), el("th", {}, "direction"), el("th", {}, "reason"), el("th", {}, "count"),
         el("th", {}, "last")),
      q.latest.map((e) => el("tr", {}, el("td", {}, e.key), el("td", {}, e.direction), el("td", {}, e.reason),
                                       el("td", {}, number(e.count)), el("td", {}, when(e.last_at))))) : null);
}

function chartNote(history, payload) {
  const end = new Date(payload.generated_at).getTime();
  const start = chartStart(history, payload.hours, end);
  if (start <= end - payload.hours * 3600 * 1000) return null;
  return el("span", { class: "chart-note" },
            ` (samples since ${new Date(start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })})`);
}

function card(table, payload) {
  if (table.error) {
    return el("section", { class: "card", "data-table": table.table },
      el("h2", {}, table.table), el("p", { class: "error" }, table.error));
  }
  const q = table.quarantine;
  const quarantined = q.forward + q.backward > 0
    ? `${number(q.forward + q.backward)} change(s) quarantined; every other key keeps syncing ` +
      `(dynamo2mongo quarantine list --table ${table.table})` : null;
  const beatTimeout = table.heartbeat_timeout_seconds;
  const alerts = [table.alert, ...Object.values(table.lag_alerts || {}).map((a) => a.reason),
                  table.forward.fatal, table.backward.fatal, quarantined].filter(Boolean);
  return el("section", { class: "card", "data-table": table.table },
    el("div", { class: "card-head" },
      el("div", {}, el("h2", {}, el("a", { href: `../dags/${table.dag_id}`, target: "_top" }, table.table)),
        el("span", { class: "sub" }, `${table.source_table} → ${table.target}`)),
      el("div", {}, phaseBadge(table.phase), " writer: ", el("strong", {}, table.writer))),
    alerts.map((a) => el("p", { class: "alert" }, `⚠ ${a}`)),
    el("div", { class: "grid" },
      el("div", {}, el("h3", {}, "Full load"), countsList(table.counts)),
      el("div", {}, el("h3", {}, "Sync"), el("dl", {},
        el("dt", {}, `forward (${table.engines.forward})`), el("dd", { class: "forward-lag" }, lagText(table.forward, beatTimeout)),
        el("dt", {}, `backward (${table.engines.backward})`), el("dd", { class: "backward-lag" }, lagText(table.backward, beatTimeout)),
        el("dt", {}, "last run"), el("dd", {}, table.last_run_id || "–"),
        el("dt", {}, "next"), el("dd", {}, table.next || "–"))),
      el("div", {}, el("h3", {}, "Last verification"), verification(table.verification)),
      el("div", {}, el("h3", {}, "Conflicts"), conflicts(table)),
      el("div", {}, el("h3", {}, "Sync quarantine"), quarantine(table))),
    el("div", {}, el("h3", {}, `Lag, last ${payload.hours} h`, chartNote(table.lag_history, payload)),
      el("div", { class: "legend" }, el("span", { class: "forward" }, "— forward"),
         el("span", { class: "backward" }, "— backward"), el("span", { class: "muted" }, "- - alert threshold")),
      chart(table.lag_history, table.lag_alert_seconds, payload.hours, payload.generated_at)));
}

async function refresh() {
  const main = document.getElementById("tables");
  const hours = document.getElementById("hours").value;
  try {
    const response = await fetch(`api/tables?hours=${hours}`, { credentials: "same-origin" });
    if (response.status === 401 || response.status === 403) {
      main.replaceChildren(el("p", { class: "error" }, "Sign in to Airflow to see the migrations."));
      return;
    }
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.detail || response.statusText);
    main.replaceChildren(...(payload.tables.length ? payload.tables.map((t) => card(t, payload))
                                                   : [el("p", { class: "muted" }, "No table you may read is configured.")]));
    document.getElementById("updated").textContent = `updated ${when(payload.generated_at)}`;
  } catch (error) {
    main.replaceChildren(el("p", { class: "error" }, `Could not load the migrations: ${error.message}`));
  } finally {
    main.setAttribute("aria-busy", "false");
  }
}

document.getElementById("hours").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
