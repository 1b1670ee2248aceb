# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""peerlab's Grafana dashboards and alert rules, as code (grafanalib), and their validation.

Every panel reads Graphite series the collector writes (docs/metrics.md). The dashboards take
`$network` and `$node` (and `$host`) variables; alert rules watch every network at once.
"""

from __future__ import annotations

import json
import re
from typing import Any

try:
    import grafanalib.core as g
    from grafanalib._gen import DashboardEncoder

    HAS_GRAFANALIB = True
except ImportError:  # the filter plugin reports it
    HAS_GRAFANALIB = False

DATASOURCE_UID = "peerlab-graphite"
FOLDER = "peerlab"
NODE = "peerlab.$network.nodes.$node"
NET = "peerlab.$network.network"
HOST = "peerlab.hosts.$host"
STATOSHI = f"{NODE}.statoshi"
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")

# (title, unit, targets) per panel; a target is (Graphite expression, legend).
Panel = tuple[str, str, list[str]]

DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "peerlab-overview": ("Network overview", [
        ("Nodes up / expected", "none", [f"alias({NET}.nodes.up, 'up')", f"alias({NET}.nodes.expected, 'expected')"]),
        ("Tip agreement", "percentunit", [f"alias({NET}.tip_agreement, 'nodes on the most common tip')"]),
        ("Distinct tips", "none", [f"alias({NET}.tips.distinct, 'distinct tips')"]),
        ("Edges connected / expected", "none",
         [f"alias({NET}.edges.connected, 'connected')", f"alias({NET}.edges.expected, 'expected')"]),
        ("Height (max, min)", "none", [f"alias({NET}.height.max, 'max')", f"alias({NET}.height.min, 'min')"]),
        ("Block propagation (first to last node)", "s", [f"alias({NET}.blocks.propagation_seconds, 'last block')"]),
        ("Height per node", "none", [f"aliasByNode({NODE}.chain.height, 3)"]),
        ("Peers per node", "none", [f"aliasByNode({NODE}.peers.total, 3)"]),
        ("Mining share (blocks mined)", "percent", [f"aliasByNode(asPercent({NODE}.mining.blocks_mined), 3)"]),
        ("Mempool transactions per node", "none", [f"aliasByNode({NODE}.mempool.size, 3)"]),
        ("Node CPU", "percent", [f"aliasByNode({NODE}.system.cpu_percent, 3)"]),
        ("Node memory (RSS)", "bytes", [f"aliasByNode({NODE}.system.memory_rss, 3)"]),
    ]),
    "peerlab-node": ("Node detail", [
        ("Peers in / out", "none", [f"aliasByNode({NODE}.peers.{{inbound,outbound}}, 3, 5)"]),
        ("Peers by connection type", "none", [f"aliasByNode({NODE}.peers.type.*, 3, 6)"]),
        ("Peers by network", "none", [f"aliasByNode({NODE}.peers.network.*, 3, 6)"]),
        ("Ping per peer", "ms", [f"aliasByNode({NODE}.ping.peer.*, 3, 6)"]),
        ("Minimum ping per peer", "ms", [f"aliasByNode({NODE}.minping.peer.*, 3, 6)"]),
        ("Ping median", "ms", [f"aliasByNode({NODE}.{{ping,minping}}.median, 3, 4)"]),
        ("Bandwidth", "Bps", [f"aliasByNode(perSecond({NODE}.bandwidth.{{bytes_sent,bytes_received}}), 3, 5)"]),
        ("Height and headers", "none", [f"aliasByNode({NODE}.chain.{{height,headers}}, 3, 5)"]),
        ("Seconds since the last block", "s", [f"aliasByNode({NODE}.chain.seconds_since_block, 3)"]),
        ("Blocks behind the network", "none", [f"aliasByNode({NODE}.chain.blocks_behind, 3)"]),
        ("Uptime", "s", [f"aliasByNode({NODE}.uptime, 3)"]),
        ("Restarts", "none", [f"aliasByNode({NODE}.restarts, 3)"]),
        ("Up", "none", [f"aliasByNode({NODE}.up, 3)"]),
        ("Implementation and version", "none", [f"aliasByNode({NODE}.build.*.*, 3, 5, 6)"]),
    ]),
    "peerlab-p2p": ("P2P messages", [
        ("Messages received per second, by type", "none",
         [f"aliasByNode(perSecond(groupByNode({NODE}.message.received.*, 6, 'sumSeries')), 0)"]),
        ("Messages sent per second, by type", "none",
         [f"aliasByNode(perSecond(groupByNode({NODE}.message.sent.*, 6, 'sumSeries')), 0)"]),
        ("Bytes received per message type", "bytes",
         [f"groupByNode({NODE}.bandwidth.received_by_msg.*, 6, 'sumSeries')"]),
        ("Bytes sent per message type", "bytes", [f"groupByNode({NODE}.bandwidth.sent_by_msg.*, 6, 'sumSeries')"]),
        ("Messages received per second, by node", "none",
         [f"aliasByNode(perSecond(groupByNode({NODE}.message.received.*, 3, 'sumSeries')), 0)"]),
        ("Ping median per node", "ms", [f"aliasByNode({NODE}.ping.median, 3)"]),
    ]),
    "peerlab-blocks": ("Blocks & mining", [
        ("Height per node", "none", [f"aliasByNode({NODE}.chain.height, 3)"]),
        ("Blocks mined per node", "none", [f"aliasByNode({NODE}.mining.blocks_mined, 3)"]),
        ("Mining share", "percent", [f"aliasByNode(asPercent({NODE}.mining.blocks_mined), 3)"]),
        ("Block propagation (first to last node)", "s", [f"alias({NET}.blocks.propagation_seconds, 'seconds')"]),
        ("Blocks propagated to every node", "none", [f"alias({NET}.blocks.propagated, 'blocks')"]),
        ("Chain tips and forks per node", "none", [f"aliasByNode({NODE}.chain.{{tips,forks}}, 3, 5)"]),
        ("Longest fork branch", "none", [f"aliasByNode({NODE}.chain.fork_branchlen_max, 3)"]),
        ("Distinct tips across the network", "none", [f"alias({NET}.tips.distinct, 'tips')"]),
        ("Seconds since the last block", "s", [f"aliasByNode({NODE}.chain.seconds_since_block, 3)"]),
        ("Tip (last 48 bits of the hash)", "none", [f"aliasByNode({NODE}.chain.tip, 3)"]),
    ]),
    "peerlab-mempool": ("Mempool & transactions", [
        ("Mempool transactions", "none", [f"aliasByNode({NODE}.mempool.size, 3)"]),
        ("Mempool size", "bytes", [f"aliasByNode({NODE}.mempool.bytes, 3)"]),
        ("Mempool memory usage", "bytes", [f"aliasByNode({NODE}.mempool.usage, 3)"]),
        ("Mempool minimum fee (BTC/kvB)", "none", [f"aliasByNode({NODE}.mempool.min_fee, 3)"]),
        ("Transactions accepted per second", "none", [f"aliasByNode(perSecond({NODE}.transactions.accepted), 3)"]),
        ("Transactions confirmed per second", "none", [f"aliasByNode(perSecond({NODE}.chain.transactions), 3)"]),
    ]),
    # Statoshi's own statsd series (docs/metrics.md, "Statoshi"): only Statoshi nodes have them.
    "peerlab-statoshi": ("Statoshi", [
        ("Connections (Statoshi)", "none", [f"aliasByNode({STATOSHI}.peers.totalConnections, 3)"]),
        ("Inbound / outbound (Statoshi)", "none",
         [f"aliasByNode({STATOSHI}.peers.{{inboundConnections,outboundConnections}}, 3, 6)"]),
        ("Height (Statoshi)", "none", [f"aliasByNode({STATOSHI}.blocks.currentHeight, 3)"]),
        ("Ping (Statoshi, µs)", "none", [f"aliasByNode({STATOSHI}.peers.ping_us.mean, 3)"]),
        ("Messages received per second, by type (Statoshi)", "none",
         [f"aliasByNode(groupByNode({STATOSHI}.message.received.*, 7, 'sumSeries'), 0)"]),
        ("Messages sent per second, by type (Statoshi)", "none",
         [f"aliasByNode(groupByNode({STATOSHI}.message.sent.*, 7, 'sumSeries'), 0)"]),
        ("Bytes received per message type (Statoshi)", "bytes",
         [f"groupByNode({STATOSHI}.bandwidth.message.*.totalBytesReceived, 7, 'sumSeries')"]),
        ("Connections: Statoshi's count against peerlab's", "none",
         [f"aliasByNode({STATOSHI}.peers.totalConnections, 3, 4)", f"aliasByNode({NODE}.peers.total, 3, 4)"]),
    ]),
    "peerlab-system": ("System", [
        ("Node CPU", "percent", [f"aliasByNode({NODE}.system.cpu_percent, 3)"]),
        ("Node memory (RSS)", "bytes", [f"aliasByNode({NODE}.system.memory_rss, 3)"]),
        ("Node memory (cgroup usage)", "bytes", [f"aliasByNode({NODE}.system.memory_usage, 3)"]),
        ("Node chain data on disk", "bytes", [f"aliasByNode({NODE}.system.disk_size, 3)"]),
        ("Node disk I/O", "Bps",
         [f"aliasByNode(perSecond({NODE}.system.{{disk_read_bytes,disk_write_bytes}}), 3, 5)"]),
        ("Node network", "Bps", [f"aliasByNode(perSecond({NODE}.system.{{net_rx_bytes,net_tx_bytes}}), 3, 5)"]),
        ("Host CPU", "percent", [f"aliasByNode({HOST}.cpu_percent, 2)"]),
        ("Host load", "none", [f"aliasByNode({HOST}.load1, 2)"]),
        ("Host memory", "bytes", [f"aliasByNode({HOST}.{{memory_used,memory_total}}, 2, 3)"]),
        ("Host disk (Docker data)", "bytes", [f"aliasByNode({HOST}.{{disk_free,disk_total}}, 2, 3)"]),
        ("Host network", "Bps", [f"aliasByNode(perSecond({HOST}.{{net_rx_bytes,net_tx_bytes}}), 2, 3)"]),
        ("Collector CPU and poll time", "none",
         [f"aliasByNode({HOST}.collector.{{cpu_percent,poll_seconds}}, 2, 4)"]),
        ("Collector memory (RSS)", "bytes", [f"aliasByNode({HOST}.collector.memory_rss, 2)"]),
    ]),
}

# uid, title, Graphite target (all networks), reducer, comparison, threshold, for, summary.
# A derivative skips the step across a missing point (its first value after a gap has nothing
# before it): keepLastValue() bridges the gap, so a restart or a drop during one still counts.
ALERTS: list[tuple[str, str, str, str, str, float, str, str]] = [
    ("peerlab-node-down", "Node down", "peerlab.*.nodes.*.up", "last", "lt", 1, "1m",
     "A node does not answer RPC or its container is not running."),
    ("peerlab-node-restart", "Node restarted", "movingSum(nonNegativeDerivative(keepLastValue(peerlab.*.nodes.*.restarts)), '10min')",
     "last", "gt", 0, "0s", "A node's bitcoind or container restarted in the last 10 minutes."),
    ("peerlab-peers-low", "Peers below threshold", "peerlab.*.nodes.*.peers.total", "last", "lt", 1, "2m",
     "A node has fewer peers than the threshold."),
    ("peerlab-inbound-drop", "Inbound peers dropped", "movingSum(derivative(keepLastValue(peerlab.*.nodes.*.peers.inbound)), '5min')",
     "last", "lt", -1, "0s", "A node lost more than one inbound peer in five minutes."),
    ("peerlab-tip-lag", "Tip lagging", "peerlab.*.nodes.*.chain.blocks_behind", "last", "gt", 2, "1m",
     "A node is 3 or more blocks behind its network's highest node."),
    ("peerlab-fork", "Fork", "peerlab.*.network.tips.distinct", "last", "gt", 1, "2m",
     "The nodes of a network disagree on the tip for two minutes."),
]


def _require() -> None:
    if not HAS_GRAFANALIB:
        raise RuntimeError("grafanalib is required to render peerlab's dashboards: pip install grafanalib")


def _variables() -> Any:
    def template(name: str, query: str, include_all: bool) -> Any:
        return g.Template(name=name, label=name, query=query, dataSource={"type": "graphite", "uid": DATASOURCE_UID},
                          includeAll=include_all, multi=include_all, allValue="*" if include_all else None,
                          regex="/^(?!hosts$|statsd$).*/" if name == "network" else None, refresh=2)

    return g.Templating(list=[template("network", "peerlab.*", False),
                              template("node", "peerlab.$network.nodes.*", True),
                              template("host", "peerlab.hosts.*", True)])


def dashboards(refresh: str = "10s") -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model."""
    _require()
    out = {}
    for uid, (title, panels) in DASHBOARDS.items():
        built = []
        for index, (panel_title, unit, targets) in enumerate(panels):
            built.append(g.TimeSeries(
                title=panel_title, unit=unit, dataSource={"type": "graphite", "uid": DATASOURCE_UID},
                targets=[g.Target(target=target, refId=chr(ord("A") + number),
                                  datasource={"type": "graphite", "uid": DATASOURCE_UID})
                         for number, target in enumerate(targets)],
                gridPos=g.GridPos(h=8, w=12, x=12 * (index % 2), y=8 * (index // 2)), id=index + 1))
        dashboard = g.Dashboard(title=f"peerlab: {title}", uid=uid, tags=["peerlab"], panels=built,
                                templating=_variables(), refresh=refresh, time=g.Time("now-1h", "now"),
                                timezone="utc", editable=False).auto_panel_ids()
        out[uid] = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    return out


def alert_rules(interval: str = "1m", min_peers: int = 1) -> dict[str, Any]:
    """Grafana's alerting provisioning file (apiVersion 1) with peerlab's rule group."""
    _require()
    rules = []
    for uid, title, target, reducer, comparison, threshold, duration, summary in ALERTS:
        value = float(min_peers) if uid == "peerlab-peers-low" else float(threshold)
        rules.append(g.AlertRulev9(
            title=title, uid=uid, condition="C", evaluateFor=duration,
            noDataAlertState=g.ALERTRULE_STATE_DATA_ALERTING if uid == "peerlab-node-down" else g.ALERTRULE_STATE_DATA_OK,
            errorAlertState=g.ALERTRULE_STATE_DATA_ERROR,
            annotations={"summary": summary}, labels={"severity": "critical" if uid != "peerlab-inbound-drop" else "warning"},
            timeRangeFrom=900, timeRangeTo=0,
            triggers=[
                g.Target(target=target, refId="A", datasource=DATASOURCE_UID),
                g.AlertExpression(refId="B", expression="A", expressionType=g.EXP_TYPE_REDUCE,
                                  reduceFunction=reducer, reduceMode=g.EXP_REDUCER_MODE_STRICT),
                g.AlertExpression(refId="C", expression="B", expressionType=g.EXP_TYPE_CLASSIC, conditions=[
                    g.AlertCondition(evaluator=g.Evaluator(type=comparison, params=[value]), operator=g.OP_AND,
                                     reducerType=g.RTYPE_LAST)]),
            ]))
    # grafanalib renders rules in the ruler API's shape; file provisioning wants them flat.
    flat = []
    for rule in rules:
        model = json.loads(json.dumps(rule.to_json_data(), cls=DashboardEncoder))
        alert = model.pop("grafana_alert")
        flat.append({**model, "title": alert["title"], "condition": alert["condition"], "data": alert["data"],
                     "noDataState": alert["no_data_state"], "execErrState": alert["exec_err_state"]})
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": "peerlab", "folder": FOLDER, "interval": interval,
                                         "rules": flat}]}


def datasource(url: str) -> dict[str, Any]:
    return {"apiVersion": 1, "datasources": [{
        "name": "Graphite (peerlab)", "type": "graphite", "uid": DATASOURCE_UID, "access": "proxy", "url": url,
        "isDefault": True, "editable": False, "jsonData": {"graphiteVersion": "1.1", "graphiteType": "default"}}]}


def dashboard_provider(path: str) -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "peerlab", "folder": FOLDER, "type": "file", "disableDeletion": True, "allowUiUpdates": False,
        "updateIntervalSeconds": 30, "options": {"path": path}}]}


def targets(model: dict[str, Any]) -> list[str]:
    """Every Graphite target of a dashboard or alerting provisioning model."""
    found = []
    for panel in model.get("panels", []):
        found += [target["target"] for target in panel.get("targets", []) if "target" in target]
    for group in model.get("groups", []):
        for rule in group.get("rules", []):
            found += [query["model"]["target"] for query in rule.get("data", []) if "target" in query.get("model", {})]
    return found


def validate(models: dict[str, dict[str, Any]]) -> list[str]:
    """Problems that would give an empty or broken panel, before anything is deployed."""
    problems = []
    uids: set[str] = set()
    for name, model in models.items():
        if model.get("uid"):
            if model["uid"] in uids:
                problems.append(f"{name}: duplicate dashboard uid {model['uid']}")
            uids.add(model["uid"])
        known = {variable["name"] for variable in (model.get("templating") or {}).get("list", [])}
        ids: set[int] = set()
        for panel in model.get("panels", []):
            title = panel.get("title", "?")
            if panel.get("id") in ids:
                problems.append(f"{name}: panel '{title}' reuses id {panel.get('id')}")
            ids.add(panel.get("id"))
            if not panel.get("targets"):
                problems.append(f"{name}: panel '{title}' has no target")
            if (panel.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{name}: panel '{title}' does not use the {DATASOURCE_UID} datasource")
            for target in panel.get("targets", []):
                problems += _check_target(f"{name}: panel '{title}'", target.get("target", ""), known)
        for group in model.get("groups", []):
            for rule in group.get("rules", []):
                refs = {query.get("refId") for query in rule.get("data", [])}
                if rule.get("condition") not in refs:
                    problems.append(f"{name}: alert '{rule.get('title')}' has no condition query {rule.get('condition')}")
                for query in rule.get("data", []):
                    if "target" in query.get("model", {}):
                        problems += _check_target(f"{name}: alert '{rule.get('title')}'", query["model"]["target"], set())
    return problems


def _check_target(where: str, target: str, known: set[str]) -> list[str]:
    problems = []
    if not target.strip():
        problems.append(f"{where}: empty target")
    if target.count("(") != target.count(")") or target.count("{") != target.count("}"):
        problems.append(f"{where}: unbalanced brackets in {target}")
    for match in VARIABLE.finditer(target):
        if (match[1] or match[2]) not in known:
            problems.append(f"{where}: unknown variable ${match[1] or match[2]} in {target}")
    if "peerlab." not in target:
        problems.append(f"{where}: target reads no peerlab series: {target}")
    return problems
