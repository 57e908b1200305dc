"""The status page itself: one self-contained HTML document (inline CSS and JavaScript).

Nothing is loaded from elsewhere (no CDN, fonts or images; the server's Content-Security-Policy
forbids it too), so the page works on an isolated network and leaks nothing to third parties.
The script fetches ``status.json`` about once a second and redraws three tables with DOM calls
and ``textContent`` only: text from the cluster (error messages) is never parsed as HTML.

Stable hooks for tests and scripts: rows ``#node-<id>`` with ``data-node-state`` ``up|down``;
rows ``#shard-<n>`` with ``data-leader``, ``data-shard-state`` ``led|no-leader`` and
``data-digests`` ``agree|differ|unknown``; replica cells with ``data-replica-node`` and
``data-replica-state`` ``answered|down``; rows ``#rpc-<method>``; ``body[data-loaded]`` turns
``true`` after the first snapshot is drawn, ``#fetch-state[data-fetch-state]`` says whether
the last fetch worked.
"""

from __future__ import annotations

__all__ = ["PAGE_HTML"]

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ledger cluster status</title>
<style>
  :root { --bad: #b3261e; --bad-bg: #fde7e6; --ok: #1e6b34; --ok-bg: #e5f4e9;
          --warn-bg: #fff4d6; --line: #d9dce1; --muted: #5f6670; }
  * { box-sizing: border-box; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         color: #1d2126; background: #f6f7f9; }
  header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  h1 { font-size: 20px; margin: 0 0 6px; }
  h2 { font-size: 16px; margin: 22px 0 8px; }
  main { padding: 0 24px 24px; }
  #verdict { font-weight: 600; padding: 4px 10px; border-radius: 4px; display: inline-block; }
  #verdict[data-verdict="healthy"] { background: var(--ok-bg); color: var(--ok); }
  #verdict[data-verdict="degraded"] { background: var(--bad-bg); color: var(--bad); }
  #verdict[data-verdict="unknown"] { background: var(--warn-bg); }
  #meta { color: var(--muted); margin-top: 6px; }
  #fetch-state[data-fetch-state="error"] { color: var(--bad); font-weight: 600; }
  body.stale main { opacity: 0.55; }
  table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
  th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
           vertical-align: top; }
  th { background: #eef0f3; font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.down td, tr.no-leader td, td.replica.down, td.differ { background: var(--bad-bg); }
  tr.down td.state, tr.no-leader td.leader, td.replica.down .role, td.differ {
    color: var(--bad); font-weight: 700; }
  tr.up td.state, td.agree { color: var(--ok); font-weight: 600; }
  td.replica { min-width: 190px; }
  td.replica.leader { background: var(--ok-bg); }
  td.replica .rid { font-weight: 600; margin-right: 6px; }
  td.replica .detail { display: block; color: var(--muted); }
  td.replica .digest { font-family: ui-monospace, monospace; font-size: 12px; }
  .side-by-side { display: flex; flex-wrap: wrap; gap: 0 32px; align-items: flex-start; }
  td.replica.lagging .detail { color: #8a5a00; font-weight: 600; }
  td.error { color: var(--bad); max-width: 520px; word-break: break-word; }
  footer { color: var(--muted); padding: 0 24px 24px; }
</style>
</head>
<body data-loaded="false">
<header>
  <h1>ledger cluster status</h1>
  <div id="verdict" data-verdict="unknown">waiting for the first snapshot&hellip;</div>
  <div id="meta">snapshot <span id="generated-at">&ndash;</span>
    &middot; gateway up <span id="uptime">&ndash;</span>
    &middot; <span id="fetch-state" data-fetch-state="pending">loading</span></div>
</header>
<main>
 <div class="side-by-side">
  <section>
  <h2>Nodes</h2>
  <table id="nodes">
    <thead><tr><th>node</th><th>address</th><th>state</th><th class="num">leads</th>
      <th class="num">status rpc</th><th>error</th></tr></thead>
    <tbody></tbody>
  </table>
  </section>
  <section>
  <h2>Public API <span id="rpc-window"></span></h2>
  <table id="rpcs">
    <thead><tr><th>rpc</th><th class="num">calls/s</th><th class="num">errors/s</th>
      <th class="num">p99 ms</th><th>errors by code (window)</th>
      <th class="num">calls since start</th></tr></thead>
    <tbody></tbody>
  </table>
  </section>
 </div>
  <h2>Shards</h2>
  <table id="shards">
    <thead><tr><th class="num">shard</th><th>leader</th><th class="num">term</th>
      <th>replica 1 (preferred leader)</th><th>replica 2</th><th>replica 3</th>
      <th>digests agree</th></tr></thead>
    <tbody></tbody>
  </table>
</main>
<footer>Served by the gateway from its own polls of the nodes (about once a second) and its
  own call metrics. This page has no authentication: keep it on loopback or a private
  network. Lag: the leader's commit index minus the replica's applied Raft index. Digests
  are compared only between replicas at the same applied index (&ndash;: none to compare
  yet).</footer>
<script>
"use strict";
const pollMs = 1000;
const lagWarn = 100;

function byId(id) { return document.getElementById(id); }

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function fixed(value, digits) {
  return value === null || value === undefined ? "\\u2013" : Number(value).toFixed(digits);
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"],
                 [Math.floor(s / 60) % 60, "m"], [s % 60, "s"]];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts.slice(first, first + 2).map(([n, unit]) => n + unit).join(" ");
}

function renderNodes(nodes) {
  const rows = nodes.map((n) => {
    const state = n.up ? "up" : "down";
    const row = el("tr", null, { id: "node-" + n.node_id, class: state,
                                 "data-node-id": n.node_id, "data-node-state": state });
    row.append(el("td", n.node_id), el("td", n.address),
               el("td", n.up ? "up" : "DOWN", { class: "state" }),
               el("td", n.leads, { class: "num" }),
               el("td", n.up ? fixed(n.status_ms, 1) + " ms" : "\\u2013", { class: "num" }),
               el("td", n.error || "", { class: "error" }));
    return row;
  });
  byId("nodes").tBodies[0].replaceChildren(...rows);
}

function replicaCell(r) {
  const classes = ["replica"];
  if (!r.answered) classes.push("down");
  else if (r.role) classes.push(r.role);
  if (r.lag !== null && r.lag >= lagWarn) classes.push("lagging");
  const cell = el("td", null, { class: classes.join(" "), "data-replica-node": r.node_id,
                                "data-replica-state": r.answered ? "answered" : "down" });
  cell.append(el("span", r.node_id, { class: "rid" }));
  if (!r.answered) {
    cell.append(el("span", "no answer", { class: "role" }));
    return cell;
  }
  const role = r.role + (r.role === "leader" && !r.has_quorum ? " (no quorum)" : "");
  cell.append(el("span", role, { class: "role" }));
  const detail = el("span", "applied " + r.applied_index + " \\u00b7 lag " + fixed(r.lag, 0),
                    { class: "detail" });
  if (r.digest) {
    detail.append(" \\u00b7 ", el("span", r.digest.slice(0, 8) + "@" + r.digest_applied_index,
                  { class: "digest", title: r.digest + " (" + r.digest_age_s + " s ago)" }));
  }
  cell.append(detail);
  return cell;
}

function renderShards(shards) {
  const rows = shards.map((s) => {
    const led = s.leader !== null;
    const digests = s.digests_agree === null ? "unknown" : (s.digests_agree ? "agree" : "differ");
    const row = el("tr", null, { id: "shard-" + s.shard, class: led ? "led" : "no-leader",
                                 "data-shard": s.shard, "data-leader": s.leader || "",
                                 "data-shard-state": led ? "led" : "no-leader",
                                 "data-digests": digests });
    const leaderText = led ? s.leader
      : (s.leaders.length > 1 ? "SEVERAL: " + s.leaders.join(", ") : "NO LEADER");
    row.append(el("td", s.shard, { class: "num" }), el("td", leaderText, { class: "leader" }),
               el("td", fixed(s.term, 0), { class: "num" }));
    for (const r of s.replicas) row.append(replicaCell(r));
    const verdict = { agree: "yes", differ: "NO", unknown: "\\u2013" }[digests];
    row.append(el("td", verdict, { class: digests }));
    return row;
  });
  byId("shards").tBodies[0].replaceChildren(...rows);
}

function renderRpcs(rpcs, windowS) {
  byId("rpc-window").textContent = "(last " + fixed(windowS, 0) + " s)";
  const rows = rpcs.map((r) => {
    const codes = Object.entries(r.errors_by_code).map(([c, n]) => c + " " + n).join(", ");
    const row = el("tr", null, { id: "rpc-" + r.method, "data-rpc": r.method });
    row.append(el("td", r.method), el("td", fixed(r.calls_per_s, 1), { class: "num" }),
               el("td", fixed(r.errors_per_s, 1), { class: "num" }),
               el("td", fixed(r.p99_ms, 1), { class: "num" }),
               el("td", codes, { class: codes ? "error" : "" }),
               el("td", r.calls_total, { class: "num" }));
    return row;
  });
  byId("rpcs").tBodies[0].replaceChildren(...rows);
}

function renderVerdict(summary) {
  const problems = [];
  if (summary.nodes_down) problems.push(summary.nodes_down + " node(s) down");
  const leaderless = summary.shards_without_leader.length;
  if (leaderless) problems.push(leaderless + " shard(s) without a leader");
  const differ = summary.shards_digests_differ.length;
  if (differ) problems.push(differ + " shard(s) whose replicas differ");
  const verdict = byId("verdict");
  verdict.dataset.verdict = problems.length ? "degraded" : "healthy";
  verdict.textContent = problems.length ? "degraded: " + problems.join(", ")
    : "healthy: " + summary.nodes_up + " nodes up, " + summary.shards_with_leader
      + " shards led";
}

function render(snapshot) {
  renderVerdict(snapshot.summary);
  renderNodes(snapshot.nodes);
  renderShards(snapshot.shards);
  renderRpcs(snapshot.rpcs, snapshot.rpc_window_s);
  byId("generated-at").textContent = snapshot.generated_at;
  byId("uptime").textContent = duration(snapshot.gateway_uptime_s);
  document.body.dataset.snapshotAt = snapshot.generated_at;
  document.body.dataset.loaded = "true";
}

function fetchState(state, text) {
  const node = byId("fetch-state");
  node.dataset.fetchState = state;
  node.textContent = text;
  document.body.classList.toggle("stale", state === "error");
}

async function poll() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    fetchState("ok", "live, every " + pollMs / 1000 + " s");
  } catch (error) {
    fetchState("error", "update failed (" + error.message + "); showing the last snapshot");
  } finally {
    setTimeout(poll, pollMs);
  }
}

poll();
</script>
</body>
</html>
"""
