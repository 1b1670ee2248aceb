"""Dashboards and alert rules come from code and validate; broken ones are caught before deploy."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_grafana", ROOT / "plugins" / "plugin_utils" / "_grafana.py")
assert _spec and _spec.loader
grafana = importlib.util.module_from_spec(_spec)
sys.modules["_grafana"] = grafana
_spec.loader.exec_module(grafana)


def test_seven_dashboards_and_the_alert_rules_validate() -> None:
    dashboards = grafana.dashboards()
    assert {model["title"] for model in dashboards.values()} == {
        "peerlab: Network overview", "peerlab: Node detail", "peerlab: P2P messages", "peerlab: Blocks & mining",
        "peerlab: Mempool & transactions", "peerlab: System", "peerlab: Statoshi"}
    alerts = grafana.alert_rules(min_peers=3)
    assert grafana.validate({**dashboards, "alerts": alerts}) == []
    rules = {rule["title"]: rule for rule in alerts["groups"][0]["rules"]}
    assert rules["Peers below threshold"]["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [3.0]
    assert all(rule["data"][0]["datasourceUid"] == grafana.DATASOURCE_UID for rule in rules.values())
    node = dashboards["peerlab-node"]
    assert {variable["name"] for variable in node["templating"]["list"]} == {"network", "node", "host"}
    assert len(grafana.targets(node)) == len(node["panels"])


def test_validation_names_each_problem() -> None:
    model = copy.deepcopy(grafana.dashboards()["peerlab-p2p"])
    model["panels"][0]["targets"] = []
    model["panels"][1]["targets"][0]["target"] = "sumSeries(peerlab.$nope.x"
    model["panels"][2]["datasource"] = {"uid": "other"}
    model["panels"][3]["id"] = model["panels"][4]["id"]
    problems = grafana.validate({"p2p": model})
    assert any("has no target" in problem for problem in problems)
    assert any("unbalanced brackets" in problem for problem in problems)
    assert any("unknown variable $nope" in problem for problem in problems)
    assert any("does not use the peerlab-graphite datasource" in problem for problem in problems)
    assert any("reuses id" in problem for problem in problems)
