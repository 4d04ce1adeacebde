// The viz dashboard: plain JavaScript, hash routes, refreshed every few seconds.
// Routes: #/ (namespaces), #/namespaces/NS (the namespace's resources by kind),
// #/namespaces/NS/TYPE/NAME (a workload: stats, edges, routes, tap), #/health.
"use strict";

const WINDOW = "1m", WINDOW_SECONDS = 60, REFRESH_MS = 5000;
const KINDS = ["deployment", "statefulset", "daemonset", "pod", "service", "job", "cronjob"];
let refreshTimer = null, tapAbort = null;

async function call(method, body) {
  const rsp = await fetch("api/v1/" + method, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!rsp.ok) throw new Error(method + ": HTTP " + rsp.status + ": " + (await rsp.text()));
  return rsp.json();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function link(text, href) { return el("a", {href}, text); }

function table(headers, rows, id) {
  const t = el("table", id ? {id} : {});
  t.append(el("tr", {}, ...headers.map(h => el("th", {}, h))));
  if (rows.length === 0) t.append(el("tr", {}, el("td", {class: "empty", colspan: headers.length}, "No traffic or resources")));
  for (const r of rows) t.append(el("tr", {}, ...r.map(c => c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
  return t;
}

function num(v, cls) { return el("td", {class: "num " + (cls || "")}, v); }

// statCells returns the golden metrics of a stat row: success rate, RPS, p50, p95, p99.
function statCells(s) {
  if (!s || (s.successCount + s.failureCount) === 0) return [num("-"), num("-"), num("-"), num("-"), num("-")];
  const total = s.successCount + s.failureCount, sr = s.successCount / total;
  const cls = sr >= 0.95 ? "good" : sr >= 0.8 ? "warn" : "bad";
  return [num((sr * 100).toFixed(2) + "%", cls), num((total / WINDOW_SECONDS).toFixed(2)),
    num(s.latencyMsP50 + " ms"), num(s.latencyMsP95 + " ms"), num(s.latencyMsP99 + " ms")];
}

const STAT_HEADERS = ["Success rate", "RPS", "P50", "P95", "P99"];

function meshed(r) { return r.meshedPodCount + "/" + r.runningPodCount; }

async function stat(type, namespace, name) {
  const rsp = await call("StatSummary", {selector: {resource: {type, namespace, name}}, timeWindow: WINDOW});
  if (rsp.error) throw new Error(rsp.error.error);
  // Go encodes an empty list as null.
  return (rsp.ok.statTables || []).flatMap(t => t.podGroup.rows || []);
}

async function namespacesPage(main) {
  const rows = await stat("namespace", "", "");
  main.replaceChildren(el("h1", {}, "Namespaces"), table(["Namespace", "Meshed", ...STAT_HEADERS],
    rows.map(r => [el("td", {}, link(r.resource.name, "#/namespaces/" + r.resource.name)), meshed(r), ...statCells(r.stats)]),
    "namespaces"));
}

async function namespacePage(main, ns) {
  const parts = [el("h1", {}, "Namespace " + ns)];
  const tables = await Promise.all(KINDS.map(k => stat(k, ns, "")));
  KINDS.forEach((kind, i) => {
    const rows = tables[i];
    if (rows.length === 0) return;
    parts.push(el("h2", {}, kind + "s"), table(["Name", "Meshed", ...STAT_HEADERS], rows.map(r => [
      el("td", {}, link(r.resource.name, `#/namespaces/${ns}/${kind}/${r.resource.name}`)), meshed(r), ...statCells(r.stats)]),
      kind + "s"));
  });
  main.replaceChildren(...parts);
}

async function workloadPage(main, ns, kind, name) {
  const res = {type: kind, namespace: ns, name};
  const [rows, edges, routes] = await Promise.all([
    stat(kind, ns, name),
    call("Edges", {selector: {resource: res}}),
    call("TopRoutes", {selector: {resource: res}, timeWindow: WINDOW}),
  ]);
  const live = el("div", {id: "live"},
    el("h2", {}, "Stats"), table(["Name", "Meshed", ...STAT_HEADERS], rows.map(r => [r.resource.name, meshed(r), ...statCells(r.stats)]), "stats"));
  const edgeRows = ((edges.ok && edges.ok.edges) || []).map(e => {
    const inbound = e.dst.name === name && e.dst.type === kind;
    const other = inbound ? e.src : e.dst;
    return [inbound ? "inbound" : "outbound",
      el("td", {}, other.type && other.namespace ? link(other.name, `#/namespaces/${other.namespace}/${other.type}/${other.name}`) : other.name),
      other.namespace || "", e.clientId || "", e.serverId || "",
      el("td", {class: e.noIdentityMsg ? "bad" : "good"}, e.noIdentityMsg ? "no: " + e.noIdentityMsg : "yes (mTLS)")];
  });
  live.append(el("h2", {}, "Edges"), table(["Direction", "Resource", "Namespace", "Client identity", "Server identity", "Secured"], edgeRows, "edges"));
  const routeRows = ((routes.ok && routes.ok.routes) || []).flatMap(t => (t.rows || []).map(r => [r.route, r.authority, ...statCells(r.stats)]));
  live.append(el("h2", {}, "Top routes"), table(["Route", "Authority", ...STAT_HEADERS], routeRows, "routes"));
  let tapBox = document.getElementById("tap-box");
  if (!tapBox || tapBox.dataset.target !== ns + "/" + kind + "/" + name) tapBox = tapView(res);
  main.replaceChildren(el("h1", {}, `${kind} ${ns}/${name}`), live, tapBox);
}

// tapView is the tap section: filters, start/stop, and the latest requests.
function tapView(res) {
  const box = el("div", {id: "tap-box"});
  box.dataset.target = res.namespace + "/" + res.type + "/" + res.name;
  const f = {};
  const form = el("form", {class: "tap"});
  for (const k of ["method", "path", "authority", "to"]) {
    f[k] = el("input", {name: k, placeholder: k === "to" ? "to (deployment/NAME)" : k});
    form.append(f[k]);
  }
  const start = el("button", {type: "submit", id: "tap-start"}, "Start");
  const stop = el("button", {type: "button", id: "tap-stop", disabled: ""}, "Stop");
  form.append(start, stop);
  const events = table(["Direction", "From", "To", "Method", "Path", "Status", "Latency"], [], "tap-events");
  events.querySelector(".empty").parentNode.remove();
  const requests = new Map();
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    stopTap();
    const match = {method: f.method.value, path: f.path.value, authority: f.authority.value};
    if (f.to.value) { const [type, name] = f.to.value.split("/"); match.to = {type, name, namespace: res.namespace}; }
    tapAbort = new AbortController();
    start.disabled = true; stop.removeAttribute("disabled");
    try {
      const rsp = await fetch("api/tap", {method: "POST", body: JSON.stringify({target: {resource: res}, match, maxRps: 100}), signal: tapAbort.signal});
      if (!rsp.ok) throw new Error("tap: HTTP " + rsp.status + ": " + (await rsp.text()));
      const reader = rsp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) { tapEvent(events, requests, JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); }
      }
    } catch (e) { if (e.name !== "AbortError") setStatus(e.message); }
    start.disabled = false; stop.setAttribute("disabled", "");
  });
  stop.addEventListener("click", stopTap);
  box.append(el("h2", {}, "Live tap"), form, events);
  return box;
}

function stopTap() { if (tapAbort) { tapAbort.abort(); tapAbort = null; } }

function endpoint(addr, meta) {
  const l = (meta && meta.labels) || {};
  return l.deployment ? "deploy/" + l.deployment : l.pod ? "pod/" + l.pod : addrString(addr);
}

function addrString(a) {
  if (!a || !a.ip || a.ip.ipv4 === undefined) return "";
  const v = a.ip.ipv4;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".") + ":" + a.port;
}

function streamKey(id) { return id ? (id.base || 0) + "/" + (id.stream || 0) : ""; }

// tapEvent adds a request row on its RequestInit and completes it with the response.
function tapEvent(t, requests, ev) {
  const h = ev.http || {};
  if (h.requestInit) {
    const r = h.requestInit, m = r.method || {};
    const row = el("tr", {class: "tap-request"}, el("td", {}, (ev.proxyDirection || "").toLowerCase()),
      el("td", {}, endpoint(ev.source, ev.sourceMeta)), el("td", {}, endpoint(ev.destination, ev.destinationMeta)),
      el("td", {}, m.registered || m.unregistered || ""), el("td", {}, r.path || ""), el("td", {}, ""), el("td", {}, ""));
    requests.set(ev.proxyDirection + streamKey(r.id), row);
    t.children[0].after(row);
    while (t.rows.length > 101) { const last = t.rows[t.rows.length - 1]; last.remove(); }
  } else if (h.responseInit) {
    const row = requests.get(ev.proxyDirection + streamKey(h.responseInit.id));
    if (row) row.cells[5].textContent = h.responseInit.httpStatus;
  } else if (h.responseEnd) {
    const key = ev.proxyDirection + streamKey(h.responseEnd.id), row = requests.get(key);
    if (row) { row.cells[6].textContent = h.responseEnd.sinceRequestInit || ""; requests.delete(key); }
  }
}

async function healthPage(main) {
  const rsp = await fetch("api/health");
  if (!rsp.ok) throw new Error("health: HTTP " + rsp.status + ": " + (await rsp.text()));
  const pods = await rsp.json();
  main.replaceChildren(el("h1", {}, "Control plane and extensions"), table(["Namespace", "Component", "Pod", "Phase", "Ready", "Meshed", "Restarts"],
    pods.map(p => [p.namespace, p.component, p.pod, p.phase, el("td", {class: p.ready ? "good" : "bad"}, p.ready ? "ready" : "not ready"),
      p.meshed ? "yes" : "no", num(String(p.restarts))]), "health"));
}

function setStatus(msg) { document.getElementById("status").textContent = msg; }

async function render() {
  clearTimeout(refreshTimer);
  const main = document.getElementById("main");
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (!(parts[0] === "namespaces" && parts.length === 4)) stopTap();
  try {
    if (parts.length === 0) await namespacesPage(main);
    else if (parts[0] === "health") await healthPage(main);
    else if (parts[0] === "namespaces" && parts.length === 2) await namespacePage(main, parts[1]);
    else if (parts[0] === "namespaces" && parts.length === 4) await workloadPage(main, parts[1], parts[2], parts[3]);
    else main.replaceChildren(el("h1", {}, "Not found: " + location.hash));
    setStatus("");
  } catch (e) { setStatus(e.message); }
  refreshTimer = setTimeout(render, REFRESH_MS);
}

window.addEventListener("hashchange", render);
render();
