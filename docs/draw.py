"""Draw a topology file's networks as SVG: `python docs/draw.py TOPOLOGY.peerlab.yml OUT.svg`.

Nodes sit on a circle in topology order; an arrow points from the node that runs addnode to its
peer; miners are filled. Used for docs/default-lab.svg (`make docs-graph`).
"""

from __future__ import annotations

import math
import os
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collections"))
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import Network, parse

SIZE, RADIUS, NODE = 420, 150, 24


def svg(network: Network) -> str:
    count = len(network.nodes)
    spot = {node.name: (SIZE / 2 + RADIUS * math.sin(2 * math.pi * i / count),
                        SIZE / 2 - RADIUS * math.cos(2 * math.pi * i / count)) for i, node in enumerate(network.nodes)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" font-family="sans-serif">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
             f'<text x="10" y="{SIZE - 10}" font-size="13">{network.name} ({network.chain}): '
             f'{count} nodes, {len(network.edges)} links; arrow = addnode; filled = miner</text>']
    for source, target in network.edges:
        (x1, y1), (x2, y2) = spot[source], spot[target]
        length = math.hypot(x2 - x1, y2 - y1)
        dx, dy = (x2 - x1) / length, (y2 - y1) / length
        parts.append(f'<line x1="{x1 + dx * NODE:.1f}" y1="{y1 + dy * NODE:.1f}" x2="{x2 - dx * NODE:.1f}" '
                     f'y2="{y2 - dy * NODE:.1f}" stroke="#333" stroke-width="1.6" marker-end="url(#arrow)"/>')
    for node in network.nodes:
        x, y = spot[node.name]
        fill = "#f7931a" if node.miner else "#fff"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{NODE}" fill="{fill}" stroke="#333" stroke-width="2"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 5:.1f}" font-size="14" text-anchor="middle">{node.name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as handle:
        networks = parse(yaml.safe_load(handle)["networks"], source)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(svg(networks[0]))


if __name__ == "__main__":
    main()
