#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: scenario
short_description: Run a scenario's timeline on one regtest network and report what the chain did
version_added: 0.5.0
description:
  - Runs the steps of a scenario (validated by C(plugins/module_utils/_scenario.py)) on the nodes of
    one network on this Docker host - mine (by hashrate share or on a node), traffic, fault and
    clear, kill and restart, wait for a condition, assert, sleep - while watching every node's tip
    (every O(poll) seconds) and, with O(observer_url), the Observer's alerts.
  - Returns the report, which holds per block who mined it and when each node had it, the forks and
    reorganisations with their depth, observed against declared mining shares, the faults applied
    and cleared and when, and the alerts raised. Faults go through the same fault holders as
    M(peerlab.bitcoin.faults).
  - A network on several Docker hosts of a Swarm runs with the module on each of them at once (O(hub)).
  - At the end, passed or not, the scenario's faults are cleared (the topology's stay), killed nodes
    are started again and links the faults cut are reopened.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: none
    description: A scenario acts on the nodes; there is nothing to plan.
  diff_mode:
    support: none
    description: Nothing to compare.
  idempotent:
    support: none
    description: Each run mines blocks.
options:
  nodes:
    description: The network's nodes.
    type: list
    elements: dict
    required: true
    suboptions:
      node:
        description: The node's name in its network.
        type: str
        required: true
      name:
        description: Its container.
        type: str
        required: true
      rpc_host:
        description: Address of its RPC; empty - read from the Docker engine.
        type: str
        default: ""
      host:
        description: Its Docker host (inventory name; the same as O(host) or empty - this one).
        type: str
        default: ""
      swarm:
        description: Whether it runs as a Swarm service.
        type: bool
        default: false
      network:
        description: Its network (the same as O(network); its Docker network is peerlab-<network>).
        type: str
        default: ""
      rpc_port:
        description: RPC port.
        type: int
        required: true
      rpc_user:
        description: RPC user.
        type: str
        default: peerlab
      rpc_password:
        description: RPC password.
        type: str
        required: true
      address:
        description: Its address as its peers see it (default O(nodes[].rpc_host)).
        type: str
      peers:
        description: Its outbound peers as C(container:port).
        type: list
        elements: str
        default: []
  network:
    description: The network's name.
    type: str
    required: true
  p2p_port:
    description: The chain's P2P port.
    type: int
    required: true
  faults:
    description: The topology's faults (they stay; the scenario's come and go).
    type: list
    elements: dict
    default: []
  shares:
    description: Hashrate shares of the miners by node name (equal shares of O(miners) when empty).
    type: dict
    default: {}
  miners:
    description: The topology's miners by node name.
    type: list
    elements: str
    default: []
  scenario:
    description: The validated scenario (name, description, network, seed, steps).
    type: dict
    required: true
  observer_url:
    description: The Observer's HTTP address (its /state lists alerts); empty - no alerts in the report.
    type: str
    default: ""
  poll:
    description: Seconds between two reads of every node's tip.
    type: float
    default: 0.1
  wallet:
    description: Wallet name on every node.
    type: str
    default: peerlab
  docker_socket:
    description: The Docker Engine's Unix socket.
    type: str
    default: /var/run/docker.sock
  host:
    description: This Docker host's inventory name.
    type: str
    default: ""
  hub:
    description:
      - A network across Docker hosts (plugins/module_utils/_hub.py). The conductor, on a Swarm manager,
        runs the timeline; an agent on every other host of the network acts on its own nodes for it.
      - The conductor listens on the address its host advertises to the Swarm, on O(hub.port), for as
        long as the run lasts; agents find it among their Swarm's managers. Every message is signed
        with O(hub.token).
    type: dict
    default: {role: alone}
    suboptions:
      role:
        description: alone (every node is on this host), conductor or agent.
        type: str
        default: alone
        choices: [alone, conductor, agent]
      port:
        description: The conductor's port.
        type: int
        default: 0
      token:
        description: This run's secret (HMAC-SHA256 key of every message).
        type: str
        default: ""
      agents:
        description: The hosts of the agents (the conductor's).
        type: list
        elements: str
        default: []
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
- name: Split brain
  peerlab.bitcoin.scenario:
    nodes: "{{ scenario_nodes }}"
    network: lab
    p2p_port: 18444
    scenario: "{{ checked_scenario }}"
  register: run
"""

RETURN = r"""
report:
  description: The report (docs/experiments.md describes every key).
  returned: always
  type: dict
markdown:
  description: The report as Markdown.
  returned: always
  type: str
"""

import socket
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ..module_utils import _faults
from ..module_utils._access import resolve
from ..module_utils._conduct import LocalHands, RemoteHands, Run
from ..module_utils._docker import Docker, DockerError
from ..module_utils._hub import Agent, Hub, HubError
from ..module_utils._netfault import delay_probe, node_containers
from ..module_utils._scenario import markdown


def delay_way(module: AnsibleModule, docker: Docker) -> tuple[str, str]:
    """How this host delays packets when the scenario or the topology has latency: (way, refusal)."""
    steps = module.params["scenario"]["steps"]
    latency = [step["fault"] for step in steps if isinstance(step.get("fault"), dict) and step["fault"].get("kind") == "latency"]
    if not latency and not _faults.latency(_faults.from_dicts(module.params["faults"])):
        return _faults.NETEM, ""
    images = [entry["Image"] for entry in node_containers(docker, module.params["network"]).values()]
    if not images:
        return _faults.NETEM, ""
    return delay_probe(docker, images[0], socket.gethostname())


def swarm_managers(docker: Docker) -> list[str]:
    """The addresses of the Swarm's managers as this host knows them (where a conductor listens)."""
    managers = ((docker.request("GET", "/info") or {}).get("Swarm") or {}).get("RemoteManagers") or []
    return [str(manager["Addr"]).rsplit(":", 1)[0] for manager in managers]


def agent(module: AnsibleModule, docker: Docker, local: list[dict[str, Any]]) -> None:
    """Act for the conductor on this host's nodes until the run is over."""
    hub = module.params["hub"]
    missing = resolve(docker, local)
    way, refusal = delay_way(module, docker)
    hello = {"nodes": {node["node"]: {"rpc_host": node["rpc_host"], "address": node.get("address", "")} for node in local},
             "missing": missing, "problems": [f"{module.params['host']}: {refusal}"] if refusal else [], "way": way}
    helper = Agent(swarm_managers(docker), hub["port"], hub["token"], module.params["host"])
    try:
        helper.hello(hello)
        hands = LocalHands(docker, module.params["network"], {node["node"]: node for node in local}, module.params["wallet"])
        done = helper.serve(hands.do)
    except HubError as error:
        module.fail_json(msg=f"scenario agent on {module.params['host']}: {error}")
    module.exit_json(changed=bool(done), agent=module.params["host"], conductor=helper.address, jobs=done)


def conduct(module: AnsibleModule, docker: Docker, local: list[dict[str, Any]]) -> tuple[dict[str, Any], Hub | None]:
    """Hands for every host of the network, with the agents' word: (hands, hub); fails the module on a refusal."""
    params, hub_params = module.params, module.params["hub"]
    hub = None
    missing = resolve(docker, local)
    problems: list[str] = []
    if hub_params["agents"]:
        address = ((docker.request("GET", "/info") or {}).get("Swarm") or {}).get("NodeAddr") or ""
        if not address:  # never every interface: the conductor listens on the Swarm's address only
            module.fail_json(msg=f"{params['host']} has no Swarm address to listen on for the scenario's agents (is it a Swarm manager?)")
        try:
            hub = Hub(address, hub_params["port"], hub_params["token"], hub_params["agents"])
        except OSError as error:
            module.fail_json(msg=f"the scenario's conductor cannot listen on {address}:{hub_params['port']} ({error.strerror or error}): "
                                 "set scenario_hub_port to a free port")
    way, refusal = delay_way(module, docker)
    problems += [refusal] if refusal else []
    hands: dict[str, Any] = {"": LocalHands(docker, params["network"], {node["node"]: node for node in local}, params["wallet"])}
    ways = {"": way}
    if hub is not None:
        try:
            hellos = hub.wait_hellos(90.0)
        except HubError as error:
            hellos = {}
            problems.append(str(error))
        for host, hello in hellos.items():
            missing += hello.get("missing") or []
            problems += hello.get("problems") or []
            ways[host] = str(hello.get("way") or _faults.NETEM)
            hands[host] = RemoteHands(hub, host)
            for node in params["nodes"]:
                if node["host"] == host and node["node"] in hello["nodes"]:
                    node.update({key: value for key, value in hello["nodes"][node["node"]].items() if value})
    if missing:
        problems.insert(0, "the scenario needs every node of its network running: " + "; ".join(missing))
    if problems:
        if hub is not None:
            hub.close()
        module.fail_json(msg="; ".join(problems))
    return {"hands": hands, "ways": ways}, hub


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                node=dict(type="str", required=True),
                name=dict(type="str", required=True),
                rpc_host=dict(type="str", default=""),
                host=dict(type="str", default=""),
                swarm=dict(type="bool", default=False),
                network=dict(type="str", default=""),
                rpc_port=dict(type="int", required=True),
                rpc_user=dict(type="str", default="peerlab"),
                rpc_password=dict(type="str", required=True, no_log=True),
                address=dict(type="str"),
                peers=dict(type="list", elements="str", default=[]),
            )),
            network=dict(type="str", required=True),
            p2p_port=dict(type="int", required=True),
            faults=dict(type="list", elements="dict", default=[]),
            shares=dict(type="dict", default={}),
            miners=dict(type="list", elements="str", default=[]),
            scenario=dict(type="dict", required=True),
            observer_url=dict(type="str", default=""),
            poll=dict(type="float", default=0.1),
            wallet=dict(type="str", default="peerlab"),
            docker_socket=dict(type="str", default="/var/run/docker.sock"),
            host=dict(type="str", default=""),
            hub=dict(type="dict", default={"role": "alone"}, options=dict(
                role=dict(type="str", default="alone", choices=["alone", "conductor", "agent"]),
                port=dict(type="int", default=0),
                token=dict(type="str", default="", no_log=True),
                agents=dict(type="list", elements="str", default=[]),
            )),
        ),
        supports_check_mode=False,
    )
    params = module.params
    docker = Docker(params["docker_socket"])
    for node in params["nodes"]:
        node["network"] = params["network"]
        node["host"] = "" if node["host"] == params["host"] else node["host"]  # '' is this host
    local = [node for node in params["nodes"] if not node["host"]]
    if params["hub"]["role"] == "agent":
        agent(module, docker, local)
        return
    acting, hub = conduct(module, docker, local)
    try:
        run = Run(params, acting["hands"], acting["ways"])
        report = run.execute()
    except (ValueError, DockerError) as error:
        module.fail_json(msg=str(error))
    finally:
        if hub is not None:
            hub.close()
    report["hosts"] = {node["node"]: node["host"] or params["host"] for node in params["nodes"]} if hub is not None else {}
    text = markdown(report)
    if not report["ok"]:
        module.fail_json(msg=f"scenario '{report['name']}' failed at {report['error']}", report=report, markdown=text, changed=True)
    module.exit_json(changed=True, report=report, markdown=text)


if __name__ == "__main__":
    main()
