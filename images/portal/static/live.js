// peerlab portal: one node's live view (peer-observer's p2p-circle idea). The node sits in the
// middle, its peers around it; each message from the Observer's websocket feed flashes along the
// line it travelled (in: towards the middle, out: outwards) and is listed on the right.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const live = document.getElementById("live");
  const NETWORK = live.dataset.network;
  const NODE = live.dataset.node;
  const FEED = live.dataset.feed;
  const svg = document.getElementById("circle");
  const list = document.getElementById("messages");
  const rate = document.getElementById("rate");
  const peers = new Map(); // peer key -> {angle, element, line, label}
  const stats = { messages: 0, since: performance.now() };
  window.peerlabLive = { peers, stats };

  function make(tag, attributes, parent) {
    const element = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
    if (parent) parent.appendChild(element);
    return element;
  }

  const lines = make("g", {}, svg);
  const dots = make("g", {}, svg);
  const centre = make("g", { class: "vertex managed", "data-id": NODE }, dots);
  make("circle", { r: 26 }, centre);
  make("text", { dy: 5, "text-anchor": "middle" }, centre).textContent = NODE;

  function place() {
    const keys = [...peers.keys()].sort();
    keys.forEach((key, index) => {
      const peer = peers.get(key);
      const angle = (2 * Math.PI * index) / keys.length - Math.PI / 2;
      const x = 230 * Math.cos(angle);
      const y = 230 * Math.sin(angle);
      peer.x = x;
      peer.y = y;
      peer.element.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)})`);
      peer.line.setAttribute("x2", x.toFixed(1));
      peer.line.setAttribute("y2", y.toFixed(1));
    });
  }

  function peer(key, managed) {
    let found = peers.get(key);
    if (!found) {
      const line = make("line", { class: "link connected", x1: 0, y1: 0, x2: 0, y2: 0 }, lines);
      const element = make("g", { class: `vertex ${managed ? "managed" : "external"}`, "data-id": key }, dots);
      make("circle", { r: 16 }, element);
      make("text", { dy: 34, "text-anchor": "middle" }, element).textContent = key;
      found = { element, line, x: 0, y: 0 };
      peers.set(key, found);
      place();
    }
    return found;
  }

  function flash(from, event) {
    const inbound = event.dir === "in";
    const dot = make("circle", { r: 5, class: `message ${inbound ? "in" : "out"}` }, svg);
    const start = performance.now();
    const [x0, y0, x1, y1] = inbound ? [from.x, from.y, 0, 0] : [0, 0, from.x, from.y];
    function step(now) {
      const t = Math.min(1, (now - start) / 600);
      dot.setAttribute("cx", (x0 + (x1 - x0) * t).toFixed(1));
      dot.setAttribute("cy", (y0 + (y1 - y0) * t).toFixed(1));
      if (t < 1) requestAnimationFrame(step); else dot.remove();
    }
    requestAnimationFrame(step);
  }

  function show(event) {
    if (event.kind !== "msg") return;
    const key = event.peer_node || (event.addr || `peer ${event.peer}`).replace(/:\d+$/, "");
    const found = peer(key, Boolean(event.peer_node));
    flash(found, event);
    stats.messages += 1;
    const item = document.createElement("li");
    item.className = event.dir === "in" ? "in" : "out";
    item.textContent = `${event.dir === "in" ? "<-- from" : "--> to"} ${key}${event.conn_type ? ` (${event.conn_type})` : ""}: ${event.type} (${event.size} bytes)`;
    list.prepend(item);
    while (list.children.length > 60) list.lastChild.remove();
    const seconds = (performance.now() - stats.since) / 1000;
    rate.textContent = `${stats.messages} in ${seconds.toFixed(0)} s`;
  }

  async function known() {
    // the peers the node has now, before any message flows
    const response = await fetch(`/api/networks/${NETWORK}`);
    if (!response.ok) return;
    const view = await response.json();
    const node = view.nodes.find((item) => item.id === NODE);
    for (const item of (node && node.live && node.live.peers) || []) peer(item.node || item.addr.replace(/:\d+$/, ""), Boolean(item.node));
  }

  function connect() {
    if (!FEED) { rate.textContent = "no feed (the monitoring stack is not deployed)"; return; }
    const socket = new WebSocket(`${FEED}?network=${encodeURIComponent(NETWORK)}&node=${encodeURIComponent(NODE)}&type=msg`);
    socket.onmessage = (message) => { try { show(JSON.parse(message.data)); } catch (error) { /* not an event */ } };
    socket.onclose = () => setTimeout(connect, 2000);
    live.dataset.feedState = "open";
  }

  known().then(connect);
}());
