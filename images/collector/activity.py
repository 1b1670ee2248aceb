"""Background activity of one regtest network (docs/experiments.md): payments at a rate between
chosen pairs at fee rates drawn from a range, and blocks every interval by hashrate share, until the
container stops.

The configuration is the command line's one JSON argument (`_activity.config` in the collection:
nothing secret). Each node's RPC cookie is read through the Docker engine, as the collector reads
it. The traffic is the collection's own (lab/_traffic.py, the code `playbooks/traffic.yml` runs).
Every `interval` seconds the counts go to Graphite: peerlab.<network>.network.activity.{payments,
failed, blocks} (counters since the container started).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

from collector import cookie_from_archive
from dockerapi import Docker
from lab._rpc import Rpc, RpcError
from lab._schedule import Miners, Payments
from lab._traffic import Traffic
from metrics import Carbon, Sample, carbon_lines, log, stop_on_sigterm


class Activity:
    def __init__(self, config: dict[str, Any], docker: Docker) -> None:
        self.config = config
        self.docker = docker
        self.nodes = {node["name"]: node for node in config["nodes"]}
        self.cookies: dict[str, tuple[str, str]] = {}
        names = list(self.nodes)
        self.traffic = Traffic(names, self.rpc, config["wallet"], Miners(config.get("shares"), config.get("miners") or names[:1],
                                                                         config.get("seed")),
                               Payments(names, config.get("pairs"), config.get("fee_rates"), config.get("seed")))

    def cookie(self, name: str, fresh: bool = False) -> tuple[str, str]:
        node = self.nodes[name]
        if fresh or name not in self.cookies:
            path = quote(node["cookie"], safe="")
            self.cookies[name] = cookie_from_archive(self.docker.request("GET", f"/containers/{node['container']}/archive?path={path}",
                                                                         raw=True))
        return self.cookies[name]

    def rpc(self, name: str, wallet: bool = False) -> Rpc:
        user, password = self.cookie(name)
        node = self.nodes[name]
        return Rpc(node["container"], int(node["rpc_port"]), user, password, 30.0,
                   wallet=self.config["wallet"] if wallet else None)

    def samples(self) -> list[Sample]:
        scope = ("network", self.config["network"])
        return [Sample(scope, "activity.payments", float(self.traffic.transactions)),
                Sample(scope, "activity.failed", float(self.traffic.failed)),
                Sample(scope, "activity.blocks", float(len(self.traffic.mined)))]

    def report(self, stop: threading.Event) -> None:
        carbon = Carbon()
        while not stop.wait(float(self.config["interval"])):
            if self.config.get("carbon"):
                carbon.send(self.config["carbon"], carbon_lines(self.samples(), int(time.time())))

    def run(self) -> None:
        """Ready every wallet (a node restarting: wait and try again), then the traffic, forever."""
        while True:
            try:
                self.traffic.ready()
                break
            except (RpcError, OSError, ValueError) as error:
                log(f"activity: waiting for the nodes: {error}")
                self.cookies.clear()
                time.sleep(5)
        log(f"activity on {self.config['network']}: a payment every {self.config['tx_interval']} s, "
            f"a block every {self.config['block_interval']} s, miners {self.traffic.draw.declared}")
        if not float(self.config["block_interval"]) and not float(self.config["tx_interval"]):
            threading.Event().wait()  # nothing to do: hold until stopped
        while True:
            try:
                self.traffic.run(float("inf"), float(self.config["block_interval"]), float(self.config["tx_interval"]))
            except (RpcError, OSError) as error:  # a node restarting: go on after a pause
                log(f"activity: {error}")
                self.cookies.clear()
                time.sleep(2)


def main() -> None:
    stop_on_sigterm()
    config = json.loads(sys.argv[1])
    activity = Activity(config, Docker())
    stop = threading.Event()
    threading.Thread(target=activity.report, args=(stop,), daemon=True).start()
    activity.run()


if __name__ == "__main__":
    main()
