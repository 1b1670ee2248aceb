// peerlab portal: a network's graph in SVG, laid out by d3-force (Debian's node-d3-force).
// Vertices and links are updated in place, so positions stay where they are between refreshes;
// the layout is run again (gently) only when vertices or links come or go.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  function make(tag, attributes, parent) {
    const element = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
    if (parent) parent.appendChild(element);
    return element;
  }

  class PeerGraph {
    constructor(svg, handlers) {
      this.svg = svg;
      this.handlers = handlers || {};
      this.vertices = new Map(); // id -> vertex (d3 node: x, y, vx, vy; plus element, kind, data)
      this.links = new Map();    // id -> link (source, target, element, kind)
      this.transform = { x: 0, y: 0, k: 1 };
      this.root = make("g", { class: "viewport" }, svg);
      this.linkLayer = make("g", { class: "links" }, this.root);
      this.vertexLayer = make("g", { class: "vertices" }, this.root);
      this.labelLayer = make("g", { class: "link-labels" }, this.root); // above the vertices: a label is never hidden
      this.laidOut = false;
      this.renderedAt = null;
      this.simulation = d3.forceSimulation([])
        .force("charge", d3.forceManyBody().strength(-260).distanceMax(600))
        .force("link", d3.forceLink([]).id((vertex) => vertex.id).distance((link) => (link.kind === "external" ? 60 : 100)))
        .force("collide", d3.forceCollide(24))
        .force("x", d3.forceX(0).strength(0.04))
        .force("y", d3.forceY(0).strength(0.04))
        .on("tick", () => this.draw())
        .stop();
      this.panning = null;
      this.dragging = null;
      svg.addEventListener("wheel", (event) => this.zoom(event), { passive: false });
      svg.addEventListener("mousedown", (event) => {
        if (event.button === 0 && event.target === svg) this.panning = { x: event.clientX, y: event.clientY };
      });
      window.addEventListener("mousemove", (event) => this.move(event));
      window.addEventListener("mouseup", () => this.release());
      svg.addEventListener("contextmenu", (event) => {
        if (event.target === svg) { event.preventDefault(); if (this.handlers.background) this.handlers.background(); }
      });
    }

    // items: [{id, label, kind, data}]; edges: [{id, source, target, kind, data}]
    update(items, edges) {
      let changed = false;
      const wanted = new Set(items.map((item) => item.id));
      for (const [id, vertex] of this.vertices) {
        if (!wanted.has(id)) { vertex.element.remove(); this.vertices.delete(id); changed = true; }
      }
      const neighbours = new Map();
      for (const edge of edges) {
        if (!neighbours.has(edge.source)) neighbours.set(edge.source, []);
        if (!neighbours.has(edge.target)) neighbours.set(edge.target, []);
        neighbours.get(edge.source).push(edge.target);
        neighbours.get(edge.target).push(edge.source);
      }
      for (const item of items) {
        let vertex = this.vertices.get(item.id);
        if (!vertex) {
          const near = (neighbours.get(item.id) || []).map((id) => this.vertices.get(id)).find(Boolean);
          const angle = Math.random() * 2 * Math.PI;
          vertex = { id: item.id, x: near ? near.x + 40 * Math.cos(angle) : 200 * Math.cos(angle), y: near ? near.y + 40 * Math.sin(angle) : 200 * Math.sin(angle) };
          vertex.element = this.vertexElement(vertex);
          this.vertices.set(item.id, vertex);
          changed = true;
        }
        vertex.kind = item.kind;
        vertex.data = item.data;
        vertex.element.setAttribute("class", `vertex ${item.kind}${vertex.selected ? " selected" : ""}`);
        vertex.label.textContent = item.label;
      }
      const wantedLinks = new Set();
      for (const edge of edges) {
        if (!this.vertices.has(edge.source) || !this.vertices.has(edge.target)) continue;
        wantedLinks.add(edge.id);
        let link = this.links.get(edge.id);
        if (!link) {
          link = { id: edge.id, source: edge.source, target: edge.target };
          link.element = make("line", { "data-id": edge.id }, this.linkLayer);
          link.element.addEventListener("contextmenu", (event) => {
            event.preventDefault();
            if (this.handlers.linkMenu) this.handlers.linkMenu(link, event);
          });
          this.links.set(edge.id, link);
          changed = true;
        }
        link.kind = edge.kind;
        link.data = edge.data;
        link.element.setAttribute("class", `link ${edge.kind}`);
        // A link's label (its faults) sits at its middle, drawn with it.
        if (edge.label && !link.text) link.text = make("text", { class: "link-label", "text-anchor": "middle", "data-id": edge.id }, this.labelLayer);
        if (link.text && !edge.label) { link.text.remove(); link.text = null; }
        if (link.text) link.text.textContent = edge.label;
      }
      for (const [id, link] of this.links) {
        if (!wantedLinks.has(id)) {
          link.element.remove();
          if (link.text) link.text.remove();
          this.links.delete(id);
          changed = true;
        }
      }
      if (changed) this.layout();
      else this.draw();
    }

    vertexElement(vertex) {
      const group = make("g", { "data-id": vertex.id }, this.vertexLayer);
      make("circle", { r: 14 }, group);
      vertex.label = make("text", { dy: 30, "text-anchor": "middle" }, group);
      group.addEventListener("mouseenter", () => this.handlers.hover && this.handlers.hover(vertex));
      group.addEventListener("mouseleave", () => this.handlers.leave && this.handlers.leave(vertex));
      group.addEventListener("contextmenu", (event) => {
        event.preventDefault();
        event.stopPropagation();
        if (this.handlers.vertexMenu) this.handlers.vertexMenu(vertex, event);
      });
      group.addEventListener("dblclick", () => this.handlers.open && this.handlers.open(vertex));
      group.addEventListener("mousedown", (event) => {
        if (event.button !== 0) return;
        event.stopPropagation();
        this.dragging = { vertex, x: event.clientX, y: event.clientY };
      });
      return group;
    }

    layout() {
      const vertices = [...this.vertices.values()];
      this.simulation.nodes(vertices);
      this.simulation.force("link").links([...this.links.values()]);
      if (!this.laidOut) {
        // The first layout is computed at once (no animation), then shown whole and fitted.
        const started = performance.now();
        this.simulation.alpha(1);
        const ticks = Math.ceil(Math.log(this.simulation.alphaMin()) / Math.log(1 - this.simulation.alphaDecay()));
        for (let tick = 0; tick < ticks; tick += 1) this.simulation.tick();
        this.layoutMs = performance.now() - started; // measured by make bench-portal
        this.laidOut = true;
        this.draw();
        this.fit();
        this.renderedAt = performance.now();
        if (this.handlers.rendered) this.handlers.rendered(this.renderedAt);
      } else {
        this.simulation.alpha(0.25).restart();
      }
    }

    draw() {
      for (const link of this.links.values()) {
        const source = typeof link.source === "object" ? link.source : this.vertices.get(link.source);
        const target = typeof link.target === "object" ? link.target : this.vertices.get(link.target);
        if (!source || !target) continue;
        link.element.setAttribute("x1", source.x.toFixed(1));
        link.element.setAttribute("y1", source.y.toFixed(1));
        link.element.setAttribute("x2", target.x.toFixed(1));
        link.element.setAttribute("y2", target.y.toFixed(1));
        if (link.text) {
          link.text.setAttribute("x", ((source.x + target.x) / 2).toFixed(1));
          link.text.setAttribute("y", ((source.y + target.y) / 2 - 4).toFixed(1));
        }
      }
      for (const vertex of this.vertices.values()) {
        vertex.element.setAttribute("transform", `translate(${vertex.x.toFixed(1)},${vertex.y.toFixed(1)})`);
      }
    }

    fit() {
      const box = this.svg.getBoundingClientRect();
      const vertices = [...this.vertices.values()];
      if (!vertices.length || !box.width) return;
      const xs = vertices.map((vertex) => vertex.x);
      const ys = vertices.map((vertex) => vertex.y);
      const width = Math.max(...xs) - Math.min(...xs) + 120;
      const height = Math.max(...ys) - Math.min(...ys) + 120;
      const k = Math.min(2, box.width / width, box.height / height);
      this.transform = { k, x: box.width / 2 - k * (Math.max(...xs) + Math.min(...xs)) / 2, y: box.height / 2 - k * (Math.max(...ys) + Math.min(...ys)) / 2 };
      this.applyTransform();
    }

    applyTransform() {
      const { x, y, k } = this.transform;
      this.root.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)}) scale(${k.toFixed(4)})`);
    }

    zoom(event) {
      event.preventDefault();
      const box = this.svg.getBoundingClientRect();
      const factor = Math.exp(-event.deltaY * 0.0015);
      const px = event.clientX - box.left;
      const py = event.clientY - box.top;
      const t = this.transform;
      this.transform = { k: t.k * factor, x: px - (px - t.x) * factor, y: py - (py - t.y) * factor };
      this.applyTransform();
    }

    move(event) {
      if (this.dragging) {
        const { vertex } = this.dragging;
        vertex.x += (event.clientX - this.dragging.x) / this.transform.k;
        vertex.y += (event.clientY - this.dragging.y) / this.transform.k;
        vertex.fx = vertex.x;
        vertex.fy = vertex.y;
        this.dragging.x = event.clientX;
        this.dragging.y = event.clientY;
        this.draw();
      } else if (this.panning) {
        this.transform.x += event.clientX - this.panning.x;
        this.transform.y += event.clientY - this.panning.y;
        this.panning = { x: event.clientX, y: event.clientY };
        this.applyTransform();
      }
    }

    release() {
      this.dragging = null; // a dragged vertex stays where it was put (fx, fy)
      this.panning = null;
    }

    select(id, on) {
      const vertex = this.vertices.get(id);
      if (!vertex) return;
      vertex.selected = on;
      vertex.element.classList.toggle("selected", on);
    }
  }

  window.PeerGraph = PeerGraph;
}());
