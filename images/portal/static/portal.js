// peerlab portal: the network page. Refreshes the network's view every few seconds, shows a node's
// numbers on hover, and turns right-clicks and the toolbar into actions (POST with the CSRF token);
// each action changes the topology file and is applied by a playbook job (apply.yml or deploy.yml)
// whose progress is shown.
(function () {
  "use strict";
  const REFRESH_MS = 3000;
  // While an action's job runs and for a while after, the graph is read every half second: the
  // observer reports links as the nodes' logs open them, and the new node at its first poll.
  const FAST_MS = 500, FAST_AFTER_MS = 10000;
  const graphElement = document.getElementById("graph");
  const NETWORK = graphElement.dataset.network;
  const CSRF = document.querySelector("meta[name=csrf-token]").content;
  const status = document.getElementById("status");
  const panel = document.getElementById("panel");
  const dialog = document.getElementById("dialog");
  const form = document.getElementById("dialog-form");
  const state = { view: null, hovered: null, first: null, job: null, refreshed: 0, fastUntil: 0 };

  const graph = new window.PeerGraph(document.getElementById("canvas"), {
    hover: (vertex) => { state.hovered = vertex.id; showPanel(); },
    vertexMenu: (vertex) => rightClick(vertex),
    linkMenu: (link) => linkMenu(link),
    background: () => cancel(),
    open: (vertex) => { if (vertex.kind !== "external") window.location = `/network/${NETWORK}/node/${vertex.id}`; },
  });
  // each refresh's fetch (request to parsed view) and draw, in ms: the last 200 (make bench-portal reads them)
  const timings = { fetch: [], render: [] };
  window.peerlab = { graph, state, timings };

  function timed(list, started) {
    list.push(performance.now() - started);
    if (list.length > 200) list.shift();
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function text(value, fallback) {
    return value === null || value === undefined || value === "" ? (fallback || "–") : String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${Math.round(s / 3600)} h`;
  }

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const units = ["B", "kB", "MB", "GB"];
    let size = value;
    let unit = 0;
    while (size >= 1000 && unit < units.length - 1) { size /= 1000; unit += 1; }
    return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function element(tag, attributes, children) {
    const made = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === "text") made.textContent = value; else made.setAttribute(key, value);
    }
    for (const child of children || []) made.appendChild(child);
    return made;
  }

  function row(label, value) {
    return element("tr", {}, [element("th", { text: label }), element("td", { text: value })]);
  }

  function chart(view, node, metric, title) {
    if (!view.graphite) return null;
    const target = `peerlab.${view.name}.nodes.${node}.${metric}`;
    const url = `${view.graphite}/render?target=${encodeURIComponent(target)}&from=-30min&width=300&height=110&hideLegend=true&title=${encodeURIComponent(title)}&bgcolor=white&fgcolor=333333`;
    return element("img", { src: url, alt: `${title} of ${node}`, class: "chart" });
  }

  function showPanel() {
    const view = state.view;
    if (!view || !state.hovered) return;
    const node = view.nodes.find((item) => item.id === state.hovered);
    const external = view.external.find((item) => item.id === state.hovered);
    panel.replaceChildren();
    panel.dataset.node = state.hovered;
    if (external) {
      panel.appendChild(element("h2", { text: `${external.addr} (external)`, class: "external" }));
      const table = element("table", { id: "panel-table" }, [row("user agent", text(external.subver)), row("address", external.addr)]);
      for (const peer of external.peers) {
        table.appendChild(row(`peer of ${peer.node}`, `${peer.inbound ? "inbound" : peer.conn_type || "outbound"} (${peer.addr})`));
      }
      panel.appendChild(table);
      return;
    }
    if (!node) return;
    const live = node.live || {};
    panel.appendChild(element("h2", { text: `${node.id}${node.miner ? " (miner)" : ""}` }));
    const table = element("table", { id: "panel-table" }, [
      row("status", node.status),
      row("implementation", node.build),
      row("host", `${node.host} (${node.container})`),
      row("height", text(live.height)),
      row("tip", live.tip ? `${live.tip.slice(0, 16)}…` : "–"),
    ]);
    if (view.chain !== "regtest") {
      table.appendChild(row("headers", text(live.headers)));
      table.appendChild(row("verification", live.progress === null || live.progress === undefined ? "–" : `${(100 * live.progress).toFixed(2)} %`));
    }
    const peers = live.peers || [];
    table.appendChild(row("peers", `${text(live.peers_in, "0")} in, ${text(live.peers_out, "0")} out`));
    table.appendChild(row("peer names", peers.map((peer) => peer.node || peer.addr).join(", ") || "–"));
    table.appendChild(row("declared links out", node.peers_declared.join(", ") || "–"));
    table.appendChild(row("mempool", live.mempool ? `${live.mempool.size} tx, ${bytes(live.mempool.bytes)}` : "–"));
    table.appendChild(row("median ping", live.median_ping === null || live.median_ping === undefined ? "–" : `${(1000 * live.median_ping).toFixed(1)} ms`));
    table.appendChild(row("traffic", live.bytes ? `${bytes(live.bytes.sent)} sent, ${bytes(live.bytes.received)} received` : "–"));
    table.appendChild(row("faults (topology)", (node.faults || []).join(", ") + (node.side === null || node.side === undefined ? "" : `${(node.faults || []).length ? ", " : ""}partition side ${node.side + 1}`) || "–"));
    table.appendChild(row("uptime", duration(live.uptime)));
    table.appendChild(row("restarts", text(live.restarts, "0")));
    table.appendChild(row("blocks mined (seen by the observer)", text(live.mined, "0")));
    panel.appendChild(table);
    const alerts = live.alerts || [];
    panel.appendChild(element("h3", { text: alerts.length ? "active alerts" : "no active alert" }));
    if (alerts.length) {
      panel.appendChild(element("ul", { class: "alerts" }, alerts.map((alert) => element("li", { text: `${alert.detector}: ${alert.message}` }))));
    }
    const actions = element("p", { class: "node-actions" });
    const liveLink = element("a", { href: `/network/${NETWORK}/node/${node.id}`, text: "live messages" });
    actions.appendChild(liveLink);
    const faults = element("button", { text: `faults of ${node.id}…`, "data-action": "faults" });
    faults.addEventListener("click", () => nodeFaults(node));
    actions.appendChild(faults);
    for (const [label, path] of [["stop", "stop"], ["start", "start"]]) {
      const button = element("button", { text: `${label} ${node.id}`, "data-action": path });
      button.addEventListener("click", () => act(path, { node: node.id }, `${label} ${node.id}`));
      actions.appendChild(button);
    }
    if (view.chain === "regtest") {
      const button = element("button", { text: `mine on ${node.id}` });
      button.addEventListener("click", () => act("mine", { node: node.id, blocks: 1 }, `mine a block on ${node.id}`));
      actions.appendChild(button);
    }
    if (view.grafana) actions.appendChild(element("a", { href: `${view.grafana}/dashboards`, target: "_blank", rel: "noopener", text: "dashboards" }));
    panel.appendChild(actions);
    for (const [metric, title] of [["chain.height", "height"], ["peers.total", "peers"], ["mempool.size", "mempool"]]) {
      const image = chart(view, node.id, metric, title);
      if (image) panel.appendChild(image);
    }
  }

  function render() {
    const view = state.view;
    const items = view.nodes.map((node) => ({
      id: node.id, data: node,
      label: (node.status === "paused" || node.status === "stopped" ? `${node.id} (${node.status})` : node.id)
        + ((node.faults || []).length ? ` · ${node.faults.join(", ")}` : ""),
      kind: (node.status === "up" ? (node.miner ? "managed miner" : "managed") : `managed down ${node.status}`)
        + (node.side === null || node.side === undefined ? "" : ` side-${node.side % 4}`),
    })).concat(view.external.map((peer) => ({ id: peer.id, label: peer.addr.replace(/:\d+$/, ""), kind: "external", data: peer })));
    const edges = view.edges.map((edge) => ({
      id: edge.id, source: edge.from, target: edge.to, data: edge,
      kind: (edge.kind === "declared" ? (edge.connected ? "connected" : "missing") : edge.kind) + ((edge.faults || []).length ? " faulted" : ""),
      label: (edge.faults || []).map((fault) => fault.label).join("; "),
    }));
    graph.update(items, edges);
    graphElement.dataset.version = view.file_version;
    graphElement.dataset.refreshed = String(state.refreshed);
    if (!view.observed) say("no live data: the observer does not answer (is the monitoring stack deployed?)", "warn");
    showActivity(view);
    showForks(view.forks);
    showPanel();
  }

  // The fork view: the recent block tree from every node's tips (the observer's), one lane per
  // branch, the nodes on the block they sit on, stale blocks dashed, reorganisations listed.
  const SVG = "http://www.w3.org/2000/svg";
  const COLUMN = 74, LANE = 40, TOP = 16, BLOCK_W = 56, BLOCK_H = 18;

  function svg(tag, attributes, textContent) {
    const made = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes || {})) made.setAttribute(key, value);
    if (textContent !== undefined) made.textContent = textContent;
    return made;
  }

  function showForks(forks) {
    window.peerlab.forks = forks;
    const canvas = document.getElementById("fork-view");
    const title = document.getElementById("forks-title");
    const note = document.getElementById("forks-note");
    if (!forks || !forks.blocks.length) {
      title.textContent = "blocks";
      note.textContent = "no block seen yet (the observer draws blocks as nodes take them as their tip)";
      canvas.replaceChildren();
      canvas.setAttribute("height", "0");
      document.getElementById("reorgs").replaceChildren();
      return;
    }
    title.textContent = forks.branches > 1 ? `${forks.branches} competing branches` : "one chain";
    const aside = Object.entries(forks.behind).map(([node, height]) => `${node} at ${height}`)
      .concat(forks.unknown.map((node) => `${node}: no tip seen`));
    note.textContent = `heights ${forks.from} to ${forks.to}` + (aside.length ? ` · older: ${aside.join(", ")}` : "");
    const place = {};
    for (const block of forks.blocks) {
      place[block.hash] = { x: 24 + (block.height - forks.from) * COLUMN, y: TOP + block.lane * LANE };
    }
    const children = [];
    for (let height = forks.from; height <= forks.to; height += 1) {
      children.push(svg("text", { class: "fork-axis", x: 24 + (height - forks.from) * COLUMN, y: 11 }, String(height)));
    }
    for (const block of forks.blocks) {
      if (!block.parent || !place[block.parent]) continue;
      const from = place[block.parent], to = place[block.hash];
      const path = from.y === to.y ? `M${from.x + BLOCK_W},${from.y + BLOCK_H / 2} L${to.x},${to.y + BLOCK_H / 2}`
        : `M${from.x + BLOCK_W},${from.y + BLOCK_H / 2} C${to.x - 8},${from.y + BLOCK_H / 2} ${from.x + BLOCK_W + 8},${to.y + BLOCK_H / 2} ${to.x},${to.y + BLOCK_H / 2}`;
      children.push(svg("path", { class: "fork-link", d: path }));
    }
    for (const block of forks.blocks) {
      const at = place[block.hash];
      const kind = `block${block.lane ? " side" : ""}${block.stale ? " stale" : ""}${block.tip ? " tip" : ""}`;
      const group = svg("g", { class: kind, "data-hash": block.hash, "data-height": block.height, "data-lane": block.lane,
        "data-nodes": block.nodes.join(",") });
      const tooltip = `${block.height} ${block.hash}` + (block.miner ? `, mined by ${block.miner}` : "")
        + (block.stale ? ", stale: on no node's chain" : "") + (block.nodes.length ? `; tip of ${block.nodes.join(", ")}` : "");
      group.append(svg("title", {}, tooltip), svg("rect", { x: at.x, y: at.y, width: BLOCK_W, height: BLOCK_H, rx: 3 }),
        svg("text", { x: at.x + 4, y: at.y + 13 }, `…${block.hash.slice(-6)}`));
      // a big network's nodes on one block: the first few by name, then how many more (all in the tooltip)
      const names = block.nodes.length > 6 ? `${block.nodes.slice(0, 4).join(" ")} +${block.nodes.length - 4}` : block.nodes.join(" ");
      if (block.nodes.length) group.appendChild(svg("text", { class: "on", x: at.x, y: at.y + BLOCK_H + 12 }, names));
      children.push(group);
    }
    canvas.replaceChildren(...children);
    canvas.setAttribute("width", String(24 + (forks.to - forks.from + 1) * COLUMN + 100));  // room for the last block's node names
    canvas.setAttribute("height", String(TOP + forks.lanes * LANE + 4));
    document.getElementById("reorgs").replaceChildren(...forks.reorgs.slice(0, 5).map((reorg) => element("li", {
      text: `${new Date(reorg.time * 1000).toLocaleTimeString()} ${reorg.node} reorganised ${reorg.depth} block(s): `
        + `from …${reorg.old.slice(-6)} (${reorg.old_height}) back to ${reorg.fork_height}, onto …${reorg.hash.slice(-6)}`,
    })));
  }

  // The network's background activity (its `activity:` in the topology): as declared, what the
  // nodes hold now, and the payments counter from Graphite.
  function showActivity(view) {
    const strip = document.getElementById("activity");
    const activity = view.activity;
    strip.hidden = !activity;
    if (!activity) return;
    const declared = [`${activity.tx_per_second} payment(s)/s`,
      activity.block_interval ? `a block every ${activity.block_interval} s` : "no blocks",
      activity.fee_rates ? `fees ${activity.fee_rates[0]} to ${activity.fee_rates[1]} sat/vB` : "",
      activity.pairs.length ? `between ${activity.pairs.map((pair) => pair.join("→")).join(", ")}` : "every node pays every other"];
    const now = `now: mempool ${text(activity.mempool)} tx, height ${text(activity.height)}`;
    if (!strip.firstChild) {
      const children = [element("strong", { text: "background activity" }), element("span", { id: "activity-declared" }),
        element("span", { id: "activity-now" })];
      if (view.graphite) children.push(element("img", { id: "activity-chart", class: "chart", alt: "payments per second" }));
      strip.replaceChildren(...children);
    }
    const chartImage = document.getElementById("activity-chart");
    if (chartImage && Date.now() - (state.chartAt || 0) > 30000) {  // the chart again every 30 s, not every refresh
      state.chartAt = Date.now();
      const target = `perSecond(${activity.metrics.payments})`;
      chartImage.src = `${view.graphite}/render?target=${encodeURIComponent(target)}&from=-10min&width=360&height=90&hideLegend=true&lineWidth=2&title=${encodeURIComponent("payments/s, last 10 min")}&bgcolor=white&fgcolor=333333&_=${state.chartAt}`;
    }
    document.getElementById("activity-declared").textContent = ` ${declared.filter(Boolean).join(", ")} · `;
    document.getElementById("activity-now").textContent = now;
  }

  async function refresh() {
    try {
      const asked = performance.now();
      const response = await fetch(`/api/networks/${NETWORK}`, { headers: { Accept: "application/json" } });
      if (response.status === 401) { window.location = `/login?next=${encodeURIComponent(window.location.pathname)}`; return; }
      const view = await response.json();
      if (!response.ok) { say(view.error || `error ${response.status}`, "error"); return; }
      timed(timings.fetch, asked);
      state.view = view;
      state.refreshed += 1;
      const drawing = performance.now();
      render();
      timed(timings.render, drawing);
    } catch (error) {
      say(`cannot reach the portal: ${error}`, "error");
    }
  }

  async function post(path, body) {
    const response = await fetch(`/api/networks/${NETWORK}/${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await response.json(); } catch (error) { answer = { error: `error ${response.status}` }; }
    return { status: response.status, answer };
  }

  async function act(path, body, title) {
    say(`${title}: sending…`);
    const { status: code, answer } = await post(path, { ...body, file_version: state.view && state.view.file_version });
    if (code === 409) { say(`${answer.error}`, "error"); await refresh(); return; }
    if (code >= 400 && answer.expand && !body.expand) {
      // a link a generator makes: offer to write the generator out as its nodes and edges first
      if (window.confirm(`${body.from} - ${body.to} is made by a generator. Write the generator out as its nodes and edges `
        + "(the network stays the same, the file keeps its comments), then remove this link?")) {
        act(path, { ...body, expand: true }, title);
      } else {
        say("kept: the link is made by a generator", "warn");
      }
      return;
    }
    if (code >= 400) { say(`refused: ${answer.error}`, "error"); return; }
    if (answer.file_version && state.view) state.view.file_version = answer.file_version;
    follow(answer.job, title);
  }

  async function follow(job, title) {
    const section = document.getElementById("job");
    const output = document.getElementById("job-output");
    section.hidden = false;
    state.job = job;
    state.fastUntil = Infinity;
    for (;;) {
      // the quick apply made the edit: the page shows it now, the playbook's run confirms it
      say(job.applied != null && job.state === "running" ? `${title}: applied in ${job.applied} s; the playbook confirms (${job.seconds} s)`
        : `${title}: ${job.state} (${job.seconds} s)`, job.state === "failed" ? "error" : "busy");
      output.textContent = job.output.join("\n");
      section.dataset.state = job.state;
      if (job.state === "ok" || job.state === "failed") break;
      await new Promise((resolve) => setTimeout(resolve, FAST_MS));
      const response = await fetch(`/api/jobs/${job.id}`);
      job = await response.json();
      state.job = job;
    }
    const quick = job.applied != null ? `; applied in ${job.applied} s` : "";
    say(job.state === "ok" ? `${title}: done in ${job.seconds} s (changed=${job.changed}${quick})` : `${title}: failed after ${job.seconds} s (see below)`,
      job.state === "ok" ? "ok" : "error");
    state.fastUntil = Date.now() + FAST_AFTER_MS;
    await refresh();
  }

  function cancel() {
    if (state.first) graph.select(state.first, false);
    state.first = null;
  }

  // Right-click a node: its menu (connect it to another node, its faults, its partition side);
  // while a connection is being made, the second node's right-click makes it.
  function rightClick(vertex) {
    if (vertex.kind === "external") { say("external peers are not managed: they cannot be linked from here", "warn"); return; }
    if (state.first) {
      const first = state.first;
      cancel();
      if (first === vertex.id) { say("cancelled"); return; }
      act("connect", { from: first, to: vertex.id }, `connect ${first} → ${vertex.id}`);
      return;
    }
    const node = state.view.nodes.find((item) => item.id === vertex.id);
    const sides = state.view.sides || 0;
    // no partition yet: side 1 cuts the node off from the rest (the others become side 2)
    const sideNames = [];
    for (let index = 0; index < Math.max(sides, 1); index += 1) sideNames.push(`side ${index + 1}`);
    if (sides) sideNames.push("a new side");
    sideNames.push("no side");
    const current = node && node.side !== null && node.side !== undefined ? `side ${node.side + 1}` : "no side";
    ask(`node ${vertex.id}`, [
      ["action", select("action", ["connect to…", "set a fault", "clear its faults", "partition side"])],
      ...faultFields(["latency", "loss", "bandwidth", "pause"], "latency"),
      ["partition side", select("side", sideNames, current)],
    ], (form) => {
      const action = form.get("action");
      if (action === "connect to…") {
        state.first = vertex.id;
        graph.select(vertex.id, true);
        say(`connect ${vertex.id} to …: right-click the second node (right-click the background to cancel)`, "busy");
      } else if (action === "partition side") {
        const chosen = form.get("side");
        const side = chosen === "no side" ? null : chosen === "a new side" ? sides : Number(chosen.replace("side ", "")) - 1;
        act("partition", { node: vertex.id, side }, `${vertex.id} to ${chosen}`);
      } else {
        if (action === "clear its faults") form.set("kind", "clear faults");
        setFault({ node: vertex.id }, form, vertex.id);
      }
    });
  }

  // A fault's setting as the topology takes it, from the dialog's value.
  const SETTINGS = { latency: ["delay", "100ms"], loss: ["percent", "10"], bandwidth: ["rate", "1mbit"], pause: [null, ""] };

  function faultFields(kinds, chosen) {
    return [["kind", select("kind", kinds, chosen)],
      ["value", element("input", { name: "value", id: "dialog-value", placeholder: "latency 100ms, loss 10 (%), bandwidth 1mbit" })]];
  }

  function setFault(place, data, title) {
    const kind = data.get("kind");
    if (kind === "clear faults") { act("faults/clear", place, `clear the faults of ${title}`); return; }
    const [key, example] = SETTINGS[kind];
    const fault = { kind, ...(place.node ? { node: place.node } : { from: place.from, to: place.to }) };
    if (key) fault[key] = data.get("value") || example;
    if (kind === "loss" && Number.isFinite(Number(String(fault.percent).replace("%", "")))) fault.percent = Number(String(fault.percent).replace("%", ""));
    act("faults", { fault }, `${kind} on ${title}`);
  }

  // Right-click a link: its faults (each direction), or remove it.
  function linkMenu(link) {
    const data = link.data || {};
    if (data.kind === "external") { say("external peers are not managed: their links cannot be changed here", "warn"); return; }
    const directions = [`${data.from} → ${data.to}`, `${data.to} → ${data.from}`];
    ask(`the link ${data.from} - ${data.to}`, [
      ["action", select("action", ["set a fault", "clear faults", "remove the link"])],
      ["direction", select("direction", directions)],
      ...faultFields(["latency", "loss", "bandwidth"], "latency"),
    ], (form) => {
      const action = form.get("action");
      if (action === "remove the link") {
        if (data.kind !== "declared") { say("only declared links can be removed here (this one is not in the topology)", "warn"); return; }
        act("disconnect", { from: data.from, to: data.to }, `remove ${data.from} - ${data.to}`);
        return;
      }
      const [from, to] = form.get("direction").split(" → ");
      if (action === "clear faults") form.set("kind", "clear faults");
      setFault({ from, to }, form, `${from} → ${to}`);
    });
  }

  function nodeFaults(node) {
    ask(`faults of ${node.id}`, faultFields(["latency", "loss", "bandwidth", "pause", "clear faults"], "latency"),
      (form) => setFault({ node: node.id }, form, node.id));
  }

  function select(name, options, chosen) {
    const made = element("select", { name });
    for (const option of options) {
      const item = element("option", { value: option, text: option });
      if (option === chosen) item.selected = true;
      made.appendChild(item);
    }
    return made;
  }

  function ask(title, fields, submit) {
    form.replaceChildren(element("h2", { text: title }));
    for (const [label, field] of fields) form.appendChild(element("label", {}, [document.createTextNode(`${label} `), field]));
    const buttons = element("p", { class: "buttons" });
    const ok = element("button", { value: "ok", text: "apply", id: "dialog-ok" });
    const no = element("button", { value: "cancel", text: "cancel", formnovalidate: "" });
    buttons.append(ok, no);
    form.appendChild(buttons);
    dialog.returnValue = "";  // closed with Escape, a dialog keeps the last one's value: never apply that
    dialog.onclose = () => { if (dialog.returnValue === "ok") submit(new FormData(form)); };
    dialog.showModal();
  }

  document.getElementById("act-connect").addEventListener("click", () => {
    const names = state.view.nodes.map((node) => node.id);
    ask("connect two nodes", [["from", select("from", names)], ["to", select("to", names, names[1])]],
      (data) => act("connect", { from: data.get("from"), to: data.get("to") }, `connect ${data.get("from")} → ${data.get("to")}`));
  });
  document.getElementById("act-disconnect").addEventListener("click", () => {
    const declared = state.view.edges.filter((edge) => edge.kind === "declared").map((edge) => `${edge.from} - ${edge.to}`);
    ask("remove a link", [["link", select("link", declared)]], (data) => {
      const [from, to] = data.get("link").split(" - ");
      act("disconnect", { from, to }, `remove ${from} - ${to}`);
    });
  });
  document.getElementById("act-add").addEventListener("click", () => {
    const view = state.view;
    const implementations = Object.keys(view.implementations);
    const names = view.nodes.map((node) => node.id);
    const links = element("select", { name: "links", multiple: "", size: String(Math.min(8, names.length)) });
    for (const name of names) links.appendChild(element("option", { value: name, text: name }));
    if (links.options.length) links.options[0].selected = true;
    ask("add a node", [
      ["name", element("input", { name: "name", required: "", pattern: "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", placeholder: `n${names.length + 1}` })],
      ["implementation", select("implementation", implementations, view.nodes[0] ? view.nodes[0].implementation : implementations[0])],
      ["version", element("input", { name: "version", placeholder: "the implementation's default" })],
      ["host", select("host", view.docker_hosts.length ? view.docker_hosts : view.hosts, view.hosts[0])],
      ["links to", links],
    ], (data) => act("nodes", {
      // only what differs from the network's nodes goes into the file
      name: data.get("name"), version: data.get("version") || undefined, links: data.getAll("links"),
      implementation: view.nodes[0] && data.get("implementation") === view.nodes[0].implementation ? undefined : data.get("implementation"),
      host: view.hosts.length === 1 && data.get("host") === view.hosts[0] ? undefined : data.get("host"),
    }, `add ${data.get("name")}`));
  });
  document.getElementById("act-stop").addEventListener("click", () => act("stop", {}, `stop ${NETWORK}`));
  document.getElementById("act-start").addEventListener("click", () => act("start", {}, `start ${NETWORK}`));
  const mine = document.getElementById("act-mine");
  if (mine) mine.addEventListener("click", () => act("mine", { blocks: 1 }, "mine a block"));
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") cancel(); });

  (async function every() {
    await refresh();
    setTimeout(every, Date.now() < state.fastUntil ? FAST_MS : REFRESH_MS);
  }());
}());
