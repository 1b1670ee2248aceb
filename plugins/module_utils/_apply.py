# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make one Docker host what its desired state says, on its own engine: the engine module runs
this on each Docker host, the portal's quick apply in its own process.

converge: read the engine, plan (`_plan.py`), refuse before any change, then Docker networks, files
(peers files before the nodes that read them), containers and Swarm services, the monitoring
stack's health, fault holders and pauses, links (through RPC, verified at both ends), and on a
network whose nodes all run here, the chain (the first blocks mined once every link is up, every
node at one tip). teardown, scale (start/stop), status, mine and wait_tip act on the same spec.
Every change is reported against the node (or the stack's container) it concerns.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from . import _faults, _names, _netfault
from ._atomic import replace_file
from ._chain import best_tip, mine
from ._docker import Docker, DockerError
from ._explain import crash_loop, down_reasons
from ._facts import ContainerFact, EngineFacts, address, read
from ._linking import link
from ._plan import HostPlan, Step, owner_problem, plan
from ._reconcile import converge as converge_container
from ._reconcile import remove, remove_node, service_apply, service_remove, service_scale, stop, wait_healthy
from ._rpc import Rpc, RpcError
from ._spec import ContainerSpec, FileSpec, HostSpec, NetworkPart, NodePart

Secrets = dict[str, Any]     # {"rpc": {node container: password}, "grafana": password}


@dataclass
class Report:
    changes: dict[str, list[str]] = field(default_factory=dict)   # node container (or stack container) -> what changed
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # node container -> its state (chain, peers)
    addresses: dict[str, str] = field(default_factory=dict)         # node container -> the address its peers see
    container_states: dict[str, str] = field(default_factory=dict)  # node container -> running, paused, exited, ...
    tips: dict[str, str] = field(default_factory=dict)              # network -> the tip its nodes here agree on
    missing_images: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # phase -> seconds since the run began (the benchmark reads them)
    started: float = field(default_factory=lambda: __import__("time").monotonic())

    def mark(self, phase: str) -> None:
        import time

        self.timings[phase] = round(time.monotonic() - self.started, 3)

    def change(self, name: str, what: str, before: str = "", after: str = "") -> None:
        if what in self.changes.get(name, []):
            return  # a second pass (the links step after the tip wait) reports nothing twice
        self.changes.setdefault(name, []).append(what)
        if before:
            self.before.append(f"{name}: {before}")
        if after:
            self.after.append(f"{name}: {after}")

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def rows(self, spec: HostSpec) -> list[dict[str, Any]]:
        """One row per node of this run here, for the table a run prints (module_utils/_chain.summary_table)."""
        return [{"node": node.container, "host": spec.host, "implementation": _names.build_label(node.implementation, node.version),
                 "address": self.addresses.get(node.container, ""), "container_state": self.container_states.get(node.container, ""),
                 "state": {key: value for key, value in (self.nodes.get(node.container) or {}).items() if key != "peers"}}
                for node in spec.nodes]


def _each(items: list[Any], work: Any, threads: int = 8) -> list[tuple[Any, Any, Exception | None]]:
    """Run `work(item)` on every item at once: (item, result, error) in order."""
    if not items:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [(item, pool.submit(work, item)) for item in items]
        done: list[tuple[Any, Any, Exception | None]] = []
        for item, future in futures:
            try:
                done.append((item, future.result(), None))
            except Exception as error:
                done.append((item, None, error))
        return done


# ---------------------------------------------------------------------------------------------
# converge

def converge(docker: Docker, spec: HostSpec, secrets: Secrets, check: bool, remote: dict[str, str] | None = None,
             facts: EngineFacts | None = None) -> Report:
    report = Report()
    facts = facts or read(docker)
    host_plan = plan(spec, facts)
    report.mark("plan")
    report.refusals = list(host_plan.refusals)
    delay_way = _faults.NETEM
    if spec.latency and not report.refusals:
        delay_way, refusal = _netfault.delay_probe(docker, _probe_image(spec, facts), spec.host)
        if refusal:
            report.refusals.append(refusal)
    if not report.refusals:
        report.refusals += checked_files(docker, spec.files, facts, secrets)
    if report.refusals:
        return report
    report.missing_images = list(host_plan.missing_images)
    if report.missing_images and not check:
        return report  # the images role builds or carries them, then the engine runs again
    for network, subnet in host_plan.networks:
        report.change(network.name, f"created ({network.driver}{', ' + subnet if subnet else ''})", "absent", "present")
        if not check:
            body: dict[str, Any] = {"Name": network.name, "Driver": network.driver, "Attachable": network.attachable,
                                    "Labels": dict(network.labels), "CheckDuplicate": True}
            if subnet:
                body["IPAM"] = {"Config": [{"Subnet": subnet}]}
            docker.request("POST", "/networks/create", body)
    written = write_files(spec.files, secrets, report, check)
    for step in host_plan.removals:
        report.change(step.node or step.name, f"removed: {step.why}", "present", "removed (volume kept)")
        if not check:
            if step.name in facts.services:
                service_remove(docker, step.name)
            else:
                remove_node(docker, step.name)
    _containers(docker, spec, host_plan, facts, secrets, report, check, written)
    _services(docker, spec, host_plan, facts, report, check)
    report.mark("containers")
    if check:
        current = read(docker)
        _faults_step(docker, spec, current, report, check, delay_way)
        _links(docker, spec, secrets, report, check, remote or {}, current)
        return report
    _wait_swarm_tasks(docker, spec, report)
    if report.failures:
        return report
    current = read(docker)
    _faults_step(docker, spec, current, report, check, delay_way)
    report.mark("faults")
    _links(docker, spec, secrets, report, check, remote or {}, current)
    if spec.kill:
        _kill(docker, spec, report)
    report.mark("done")
    return report


def _probe_image(spec: HostSpec, facts: EngineFacts) -> str:
    """An image with tc, iptables and python3 for the delay probe: one of the node images this host runs."""
    nodes = [image for image in spec.images if image in facts.images and "bitcoin-node" in image]
    return nodes[0] if nodes else (spec.images[0] if spec.images else "")


def _differs(entry: FileSpec, content: bytes) -> bool:
    try:
        with open(entry.path, "rb") as handle:
            return handle.read() != content
    except FileNotFoundError:
        return True


def checked_files(docker: Docker, files: tuple[FileSpec, ...], facts: EngineFacts, secrets: Secrets) -> list[str]:
    """The refusals of the programs that check a file before it is written (Alertmanager's amtool
    its configuration), for the files that would change. Run in a throwaway container of their
    image with no network, the content put into it (never on the host); an image not built yet is
    checked on the run after the images role builds it (the engine stops for missing images)."""
    refusals = []
    for entry in files:
        if not entry.checked_by or entry.checked_by[0] not in facts.images:
            continue
        content = entry.data(secrets)
        if not _differs(entry, content):
            continue
        image, program, *args = entry.checked_by
        inside = f"/tmp/{os.path.basename(entry.path)}"
        body = {"Image": image, "User": str(max(entry.owner, 0)), "Entrypoint": [program],
                "Cmd": [arg.replace("{file}", inside) for arg in args], "Labels": {_names.ROLE: "probe"},
                "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "no"}}}
        ok, output = docker.run_once(body, {inside: (content, entry.owner)})
        if not ok:
            answer = " ".join(line.strip() for line in output.splitlines() if line.strip())
            for value in entry.hidden:
                answer = answer.replace(value, "(hidden)")
            refusals.append(f"{os.path.basename(entry.path)}: {program.rsplit('/', 1)[-1]} refuses it, nothing was changed: "
                            f"{answer or 'no answer'}")
    return refusals


def write_files(files: tuple[FileSpec, ...], secrets: Secrets, report: Report, check: bool) -> set[str]:
    """Write the files that differ (content, mode, owner); the paths written. A peers file's change
    is reported against its node."""
    written = set()
    for entry in files:
        content = entry.data(secrets)
        mode = int(entry.mode, 8)
        try:
            with open(entry.path, "rb") as handle:
                old: bytes | None = handle.read()
            info = os.stat(entry.path)
            same = old == content and stat.S_IMODE(info.st_mode) == mode and entry.owner in (-1, info.st_uid)
        except FileNotFoundError:
            old, same = None, False
        if same:
            continue
        written.add(entry.path)
        name = os.path.basename(entry.path) if "/peers/" in entry.path else entry.path
        shown = "(secret)" if entry.secret else None
        report.change(name, f"wrote {entry.path}" if "/peers/" not in entry.path else "peers file rewritten",
                      "absent" if old is None else (shown or "other content"), shown or "written")
        if check:
            continue
        directory = os.path.dirname(entry.path)
        os.makedirs(directory, mode=int(entry.directory_mode, 8), exist_ok=True)
        if entry.owner != -1:
            os.chown(directory, entry.owner, -1)
            os.chmod(directory, int(entry.directory_mode, 8))
        replace_file(entry.path, content, mode)
        if entry.owner != -1:
            os.chown(entry.path, entry.owner, -1)
    return written


def _containers(docker: Docker, spec: HostSpec, host_plan: HostPlan, facts: EngineFacts, secrets: Secrets, report: Report,
                check: bool, written: set[str]) -> None:
    todo: list[tuple[ContainerSpec, Step]] = []
    for container, step in host_plan.containers:
        if container.role == "grafana" and container.image not in facts.images and not _grafana_image(docker, spec, report, check, written):
            continue
        if step.action == "none":
            continue
        todo.append((container, step))
    if not todo:
        return
    before = {container.name: facts.containers.get(container.name) for container, _step in todo}
    for container, step in todo:
        found = before[container.name]
        state = f"{found.state} ({found.labels.get(_names.SPEC, '-')})" if found else "missing"
        what = {"create": "created", "recreate": "made again", "start": "started", "compare": "compared"}[step.action]
        if step.action != "compare":
            report.change(container.node or container.name, f"{what}: {step.why}", state, f"running ({container.spec})")
    if check:
        return

    def work(item: tuple[ContainerSpec, Step]) -> str:
        container, step = item
        done = converge_container(docker, container, step.action, facts.root_dir)
        if done and container.wait_healthy:
            wait_healthy(docker, container.name, container.wait_healthy, container.health_url)
        return done

    for (container, step), done, error in _each(todo, work):
        if error is not None:
            report.failures.append(f"{container.name}: {error}")
        elif step.action == "compare" and done:
            report.change(container.node or container.name, f"{done}: compare: full found differences", "differs", "running")


def _grafana_image(docker: Docker, spec: HostSpec, report: Report, check: bool, written: set[str]) -> bool:
    """Whether Grafana's image is here now: loaded from its tarball, or pulled where a registry
    answers (tried when asked, or when its provisioning changed); else Grafana is skipped, loudly."""
    grafana = spec.grafana
    image = str(grafana.get("image", ""))
    provisioning = any("/grafana/" in path for path in written)
    error = "no pull tried: provisioning unchanged, -e grafana_pull=true tries"
    if not check and grafana.get("tarball"):
        try:
            with open(str(grafana["tarball"]), "rb") as handle:
                docker.request("POST", "/images/load?quiet=1", data=handle, timeout=600)
            return True
        except (OSError, DockerError) as failure:
            error = f"loading {grafana['tarball']} failed: {failure}"
    elif not check and (grafana.get("pull") or provisioning):
        repository, _colon, tag = image.rpartition(":") if ":" in image.rsplit("/", maxsplit=1)[-1] else (image, "", "latest")
        try:
            answer = docker.request("POST", f"/images/create?fromImage={quote(repository, safe='')}&tag={quote(tag, safe='')}",
                                    timeout=120, raw=True)
            if b'"error"' not in answer:
                return True
            error = answer.decode(errors="replace").strip().splitlines()[-1][:200]
        except DockerError as failure:
            error = str(failure)[:200]
    if error.startswith("no pull tried"):
        report.notes.append(f"Grafana skipped: its image {image} is not on {spec.host} ({error}; roles/grafana/README.md says how "
                            "to load it)")
        return False
    report.notes.append(
        f"Grafana skipped: the image {image} is not on {spec.host} and no registry answered ({error}). The dashboards and "
        "alert rules are rendered and validated in the state directory's grafana/. To run Grafana: on a machine with a "
        f"registry, `docker pull {image} && docker save {image} -o grafana.tar`, copy grafana.tar here and "
        "`docker load -i grafana.tar` (or set grafana_image_tarball to its path), then run deploy again.")
    return False


def _services(docker: Docker, spec: HostSpec, host_plan: HostPlan, facts: EngineFacts, report: Report, check: bool) -> None:
    todo = [(service, step) for service, step in host_plan.services if step.action != "none"]
    for service, step in todo:
        found = facts.services.get(service.name)
        report.change(service.node or service.name, f"service {step.action}d: {step.why}" if step.action != "create"
                      else "service created", f"{found.spec if found else 'missing'}", f"running ({service.spec})")
    if check or not spec.manager:
        return
    # Not waited for here: each node's host waits for its own task (whose image it may be carrying
    # over at this moment; Swarm starts the task once the image is there).
    for (service, _step), _done, error in _each(todo, lambda item: service_apply(docker, item[0], item[1].action, facts.root_dir), 4):
        if error is not None:
            report.failures.append(f"service {service.name}: {error}")


def _wait_swarm_tasks(docker: Docker, spec: HostSpec, report: Report) -> None:
    """On a Swarm host: each of its Swarm nodes runs a task with its current settings (the manager
    makes the services, maybe at this very moment)."""
    import time

    wanted = {node.container: node for node in spec.nodes if node.swarm}
    if not wanted:
        return
    deadline = time.monotonic() + spec.engine.rpc_timeout
    while True:
        facts = read(docker)
        pending = [name for name, node in wanted.items() if not _task_current(facts.node_container(name), node)]
        if not pending:
            return
        if time.monotonic() > deadline:
            report.failures += [f"{name} on {spec.host}: no task with its current settings after {spec.engine.rpc_timeout:g} s "
                                "(see `docker service ps` on the manager)" for name in pending]
            return
        time.sleep(1)


def _task_current(found: ContainerFact | None, node: NodePart) -> bool:
    return bool(found and found.running and (not node.spec or found.labels.get(_names.SPEC) == node.spec))


# ---------------------------------------------------------------------------------------------
# faults, links, chain

def _node_faults(part: NetworkPart) -> list[_faults.Fault]:
    return _faults.from_dicts(list(part.faults))


def _faults_step(docker: Docker, spec: HostSpec, facts: EngineFacts, report: Report, check: bool, delay_way: str) -> None:
    """Each node's network faults held by its fault holder, and its pause, as the topology (and a
    fault.yml run) declare; holders and pauses nobody declares any more are undone."""
    parts = {part.name: part for part in spec.networks}
    found = _netfault.node_containers(docker)
    held = _netfault.holders(docker)
    todo = []
    for node in spec.nodes:
        part = parts[node.network]
        faults = _node_faults(part)
        has = node.container in held or (found.get(node.container) or {}).get("State") == "paused"
        if not faults and not has and not spec.sweep:
            continue
        addresses = _addresses(facts, part)
        plan = _faults.node_plan(faults, node.node, addresses.get(node.node, ""), addresses, part.p2p_port, delay_way)
        todo.append({"network": node.network, "node": node.node, "commands": plan.commands, "spec": plan.spec,
                     "faults": list(plan.faults), "pause": node.node in _faults.paused(faults), "sweep": spec.sweep})

    def work(entry: dict[str, Any]) -> dict[str, Any]:
        name = _names.container(entry["network"], entry["node"])
        return _netfault.reconcile(docker, entry, found.get(name), held.get(name), check)

    for entry, result, error in _each(todo, work):
        name = _names.container(entry["network"], entry["node"])
        if error is not None:
            report.failures.append(f"{name}: faults: {error}")
            continue
        if result["actions"]:
            before = "; ".join(result["before"]["faults"] + (["paused"] if result["before"]["paused"] else [])) or "no fault"
            after = "; ".join(result["faults"] + (["paused"] if result["paused"] else [])) or "no fault"
            report.change(name, f"faults: {', '.join(result['actions'])}", before, after)


def _addresses(facts: EngineFacts, part: NetworkPart) -> dict[str, str]:
    """Node name -> the address its peers see, for a network's nodes: this host's from its engine;
    the others' (on other Swarm hosts) by name, which the node's own namespace resolves."""
    addresses = {}
    for container, node in part.nodes.items():
        found = facts.node_container(container)
        seen = address(facts, found, _names.docker_network(part.name), part.swarm)[0] if found else ""
        addresses[node] = seen or container
    return addresses


def _links(docker: Docker, spec: HostSpec, secrets: Secrets, report: Report, check: bool, remote: dict[str, str],
           facts: EngineFacts | None) -> None:
    """Every network's links on this host, made and verified through RPC; then, on a network whose
    nodes all run here, its chain: the first blocks (regtest), then every node at one tip."""
    facts = facts or read(docker)
    for part in spec.networks:
        here = [node for node in spec.nodes if node.network == part.name]
        if not here:
            continue
        specs = _link_specs(facts, part, here, secrets, check, remote)
        for node in here:
            found = facts.node_container(node.container)
            report.container_states[node.container] = found.state if found else "missing"
            if found:
                report.addresses[node.container] = address(facts, found, _names.docker_network(part.name), part.swarm)[0]
        if not specs:
            continue
        settings = spec.engine
        params = {"ready_timeout": settings.rpc_timeout, "link_timeout": settings.link_timeout, "tip_timeout": settings.tip_timeout}
        linked, failures, problems = link(specs, params, check)
        _report_links(linked, report)
        report.mark("links")
        if check:
            problems = []  # links a real run would make are not there yet
        if failures or problems:
            report.failures += failures + problems
            _explain(docker, spec, facts, report, here)
            continue
        states = {node.spec["name"]: node.result for node in linked}
        faults = _node_faults(part)
        alone = part.hosts == (spec.host,)
        if part.chain != "regtest" or _faults.split(faults) or not alone or check:
            report.nodes.update(states)
            tip, _height = best_tip(states)
            if tip and part.chain == "regtest" and not _faults.split(faults):
                report.tips[part.name] = tip
            if check and alone and part.miner and part.chain == "regtest":
                height = int((states.get(part.miner) or {}).get("blocks", -1))
                if 0 <= height < settings.initial_height:
                    report.change(part.miner, f"would mine {settings.initial_height - height} blocks")
            continue
        rpc_hosts = {entry["name"]: entry["rpc_host"] for entry in specs}
        tip = _first_blocks(part, states, rpc_hosts, secrets, settings, report)
        report.mark("mined")
        if not tip:
            tip, _height = best_tip(states)
        if any(state.get("bestblockhash") != tip for state in states.values()):
            linked, failures, problems = link(specs, {**params, "wait_for_tip": tip}, check)
            _report_links(linked, report)
            if failures or problems:
                report.failures += failures + problems
                _explain(docker, spec, facts, report, here)
                continue
            states = {node.spec["name"]: node.result for node in linked}
        report.nodes.update(states)
        report.tips[part.name] = tip
        report.mark("chain")


def _link_specs(facts: EngineFacts, part: NetworkPart, here: list[NodePart], secrets: Secrets, check: bool,
                remote: dict[str, str]) -> list[dict[str, Any]]:
    """The links step's input for one network's nodes on this host: a paused node is left out; a
    link across a partition is `cut` (kept as an added node, closed while the partition holds, and
    its far end closes it too: the source's address is `unheard` there), one to a paused node
    `frozen` (kept, neither closed nor waited for)."""
    faults = _node_faults(part)
    paused = _faults.paused(faults)
    port = part.p2p_port
    network = _names.docker_network(part.name)
    specs = []
    for node in here:
        if node.node in paused:
            continue
        found = facts.node_container(node.container)
        seen, rpc_host = address(facts, found, network, part.swarm) if found and found.state in ("running", "paused") else ("", "")
        if check and found is not None and found.state == "paused":
            rpc_host = ""  # paused now, unpaused by this run: planned as new
        entry: dict[str, Any] = {"name": node.container, "rpc_host": rpc_host, "rpc_port": part.rpc_port,
                                 "rpc_password": str((secrets.get("rpc") or {}).get(node.container, "")),
                                 "peers": [f"{peer}:{port}" for peer in node.peers]}
        if seen and seen != rpc_host:
            entry["address"] = seen
        if faults:
            for key, test in (("cut", _faults.cut), ("frozen", _faults.frozen)):
                peers = [f"{peer}:{port}" for peer in node.peers if test(faults, node.node, part.nodes.get(peer, peer))]
                if peers:
                    entry[key] = peers
            sources = [container for container, name in part.nodes.items()
                       if _faults.cut(faults, name, node.node) and _links_to(part, container, node.container, here)]
            unheard = []
            for source in sources:
                source_found = facts.node_container(source)
                where = address(facts, source_found, network, part.swarm)[0] if source_found else remote.get(source, "")
                if where:
                    unheard.append(where)
            if unheard:
                entry["unheard"] = sorted(unheard)
        specs.append(entry)
    return specs


def _links_to(part: NetworkPart, source: str, target: str, here: list[NodePart]) -> bool:
    """Whether `source` has an edge to `target` (known for nodes here; assumed for the others)."""
    node = next((item for item in here if item.container == source), None)
    return target in node.peers if node else True


def _report_links(linked: list[Any], report: Report) -> None:
    for node in linked:
        name = node.spec["name"]
        # A container made in this run read its links from its peers file at its start: they are
        # this run's too (check mode plans them as links to add).
        made = any(what.startswith(("created", "made again")) for what in report.changes.get(name, []))
        for peer in node.plan.add + ([peer for peer in node.reachable if peer not in node.plan.add] if made else []):
            report.change(name, f"+{peer}", "", f"{peer} (connected)")
        for peer in [] if made else node.plan.reconnect:
            report.change(name, f"reconnected {peer}", f"{peer} (not connected)", f"{peer} (connected)")
        for peer in node.plan.remove:
            report.change(name, f"-{peer}", f"{peer}", "")
        for peer in node.deduplicated:
            report.change(name, f"closed a duplicate connection to {peer}")
        for peer in node.closed:
            report.change(name, f"closed {peer} (cut by a partition)")


def _first_blocks(part: NetworkPart, states: dict[str, dict[str, Any]], rpc_hosts: dict[str, str], secrets: Secrets,
                  settings: Any, report: Report) -> str:
    """Mine a regtest network's first blocks on its first miner, once every link is verified (a
    block mined before a link is up may not cross it until the next block); the new tip, or ''."""
    state = states.get(part.miner)
    if not part.miner or state is None or int(state.get("blocks", 0)) >= settings.initial_height:
        return ""
    return mine_on(part, part.miner, rpc_hosts[part.miner], secrets, settings.initial_height - int(state["blocks"]),
                   settings.rpc_timeout, report)


def mine_on(part: NetworkPart, miner: str, rpc_host: str, secrets: Secrets, count: int, timeout: float, report: Report) -> str:
    password = str((secrets.get("rpc") or {}).get(miner, ""))
    rpc = Rpc(rpc_host, part.rpc_port, "peerlab", password, 30.0)
    wallet = Rpc(rpc_host, part.rpc_port, "peerlab", password, 30.0, wallet="peerlab")
    mined = mine(rpc, wallet, count, timeout * 4)
    report.change(miner, f"mined {mined['mined']} blocks (height {mined['height']})", "", f"height {mined['height']}")
    return str(mined["tip"])


def _explain(docker: Docker, spec: HostSpec, facts: EngineFacts, report: Report, here: list[NodePart]) -> None:
    """After a failed link or chain step: which node containers are not running, and why."""
    current = read(docker)
    down = {}
    for node in here:
        found = current.node_container(node.container)
        if found is None or not found.running:
            down[node.container] = (found.id if found else node.container, found.status if found else "missing")
        elif looping := crash_loop(docker.inspect(found.id) or {}, spec.engine.rpc_timeout):
            down[node.container] = (found.id, looping)  # seen between two of its crashes
    report.failures += down_reasons(docker, spec.host, down, spec.engine.explain_lines)


def _kill(docker: Docker, spec: HostSpec, report: Report) -> None:
    found = _netfault.node_containers(docker)
    for name in spec.kill:
        node = found.get(name)
        if node is None:
            report.failures.append(f"{name}: no such node container on {spec.host}")
        elif _netfault.kill(docker, node):
            import time

            deadline = time.monotonic() + 10  # the run ends with the node down
            while ((docker.inspect(name) or {}).get("State") or {}).get("Running") and time.monotonic() < deadline:
                time.sleep(0.05)
            report.change(name, "killed (SIGKILL; stays down until start.yml or the next deploy)", "running", "killed")


# ---------------------------------------------------------------------------------------------
# teardown, start and stop, status, mining

def teardown(docker: Docker, spec: HostSpec, check: bool) -> Report:
    """Remove this run's nodes here (their volumes only with purge), their services on the manager,
    their peers files; with the whole inventory, the monitoring stack it made (Graphite's history
    only with purge) and the portal; then the Docker networks left without nodes, unless something
    peerlab does not manage still uses one (said, and kept). Nothing of another owner is touched."""
    import time

    report = Report()
    facts = read(docker)
    owner = spec.owner.id
    going = []
    for container in spec.containers:
        if container.role not in ("node", "activity"):
            continue
        found = facts.containers.get(container.name)
        if found is None:
            continue
        if _keep(found.labels, container.name, "container", spec, report):
            continue
        report.change(container.name, "removed", found.state, "removed")
        going.append(container.name)
    # Each bitcoind flushes its chainstate as it stops: all at once, not one after the other.
    for name, _done, error in [] if check else _each(going, lambda name: remove_node(docker, name)):
        if error is not None:
            report.failures.append(f"{name}: {error}")
    for service in spec.services:
        found_service = facts.services.get(service.name)
        if found_service is None or service.role != "node" or _keep(found_service.labels, service.name, "Swarm service", spec, report):
            continue
        report.change(service.name, "service removed", "running", "removed")
        if not check:
            service_remove(docker, service.name)
    swarm_here = [node.container for node in spec.nodes if node.swarm]
    if swarm_here and not check:
        deadline = time.monotonic() + spec.engine.rpc_timeout
        while any(read(docker).node_container(name) for name in swarm_here) and time.monotonic() < deadline:
            time.sleep(1)
    for node in spec.nodes:
        path = _peers_path(spec, node.container)
        if path and os.path.exists(path) and not check:
            os.unlink(path)
        name = _names.data_volume(node.container)
        if spec.engine.purge and not _keep_volume(facts, name, spec, report):
            report.change(node.container, f"volume {name} removed (purge)", "present", "removed")
            if not check:
                _remove_volume(docker, name, report)
    if spec.whole:
        _teardown_stack(docker, spec, facts, report, check)
    remaining = read(docker) if not check else facts
    for network in spec.docker_networks:
        if network.name in spec.stack_networks:
            continue
        there = remaining.networks.get(network.name)
        if there is None or owner_problem("Docker network", network.name, there.labels, owner, spec.host):
            continue
        part = network.labels.get(_names.NETWORK)
        if part and remaining.node_containers(part) and not check:
            continue
        inspected = docker.request("GET", f"/networks/{quote(network.name, safe='')}") or {}
        strangers = sorted(entry.get("Name", "") for entry in (inspected.get("Containers") or {}).values()
                           if entry.get("Name") not in spec.stack)
        if strangers:
            report.notes.append(f"{network.name} kept: {', '.join(strangers)} still uses it")
            continue
        report.change(network.name, "removed", "present", "removed")
        if not check:
            try:
                # A collector that stays (a limited teardown) lets go of it first.
                for entry in (inspected.get("Containers") or {}).values():
                    docker.request("POST", f"/networks/{quote(network.name, safe='')}/disconnect",
                                   {"Container": entry.get("Name"), "Force": True})
                docker.request("DELETE", f"/networks/{quote(network.name, safe='')}")
            except DockerError as error:
                # Docker 20.10 can keep a stale endpoint on a network after many containers were
                # removed at once (seen at 200 nodes): it refuses although nothing is attached.
                if "active endpoints" not in str(error):
                    raise
                report.notes.append(f"{network.name} kept: Docker still counts an endpoint on it although no container is "
                                    "attached (a Docker 20.10 fault after many removals at once); harmless: a deploy uses it "
                                    "again, and restarting the Docker daemon clears it")
    return report


def _peers_path(spec: HostSpec, container: str) -> str:
    return next((entry.path for entry in spec.files if entry.path.endswith(f"/peers/{container}")), "")


def _keep(labels: dict[str, str], name: str, kind: str, spec: HostSpec, report: Report) -> bool:
    """Whether teardown leaves an object: another's, or nobody's that peerlab knows of. Removal is
    stricter than reuse: an object made before owners were recorded is this inventory's to remove
    only once a deploy of it has made it again (a volume: when this inventory's containers use it)."""
    problem = owner_problem(kind, name, labels, spec.owner.id, spec.host)
    if not problem and labels.get(_names.OWNER) != spec.owner.id:
        problem = (f"{kind} {name} on {spec.host} was made before peerlab recorded owners: deploy from its inventory first "
                   "(which takes it), or remove it yourself")
    if problem:
        report.notes.append(f"kept {kind} {name}: {problem}")
    return bool(problem)


def _keep_volume(facts: EngineFacts, name: str, spec: HostSpec, report: Report) -> bool:
    """A volume (its labels cannot change): this inventory's when it carries its owner, or, made
    before owners were recorded, when only this inventory's containers use it."""
    volume = facts.volumes.get(name)
    if volume is None:
        return True
    if _names.OWNER not in volume.labels and owner_problem("volume", name, volume.labels, spec.owner.id, spec.host) == "":
        users = [found for found in facts.containers.values() if name in found.volumes]
        if users and all(found.labels.get(_names.OWNER) == spec.owner.id for found in users):
            return False
        shown = ", ".join(sorted(found.name for found in users)) or "no container"
        report.notes.append(f"kept volume {name}: it was made before peerlab recorded owners and {shown} uses it, not only "
                            "this inventory's containers; remove it yourself if it is this lab's")
        return True
    return _keep(volume.labels, name, "volume", spec, report)


def _remove_volume(docker: Docker, name: str, report: Report) -> None:
    """A volume that cannot go (a container still uses it) is a failure the run ends with, after the
    rest of the teardown: one stuck removal does not leave everything after it in place."""
    try:
        docker.request("DELETE", f"/volumes/{quote(name, safe='')}")
    except DockerError as error:
        if error.status != 404:
            report.failures.append(f"volume {name}: {error}")


def _teardown_stack(docker: Docker, spec: HostSpec, facts: EngineFacts, report: Report, check: bool) -> None:
    going = []
    for name in spec.stack:
        found = facts.containers.get(name)
        service = facts.services.get(name)
        if found is not None and not _keep(found.labels, name, "container", spec, report):
            report.change(name, "removed", found.state, "removed")
            going.append(name)
        if service is not None and spec.manager and not _keep(service.labels, name, "Swarm service", spec, report):
            report.change(name, "service removed", "running", "removed")
            if not check:
                service_remove(docker, name)

    def gone(name: str) -> None:
        stop(docker, name)
        remove(docker, name)

    for name, _done, error in [] if check else _each(going, gone):
        if error is not None:
            report.failures.append(f"{name}: {error}")
    for entry in spec.files:
        if entry.path.endswith(("/collector.json", "/observer.json")) and os.path.exists(entry.path):
            report.change(entry.path, "removed", "present", "removed")
            if not check:
                os.unlink(entry.path)
    if spec.engine.purge:
        for name in spec.stack_volumes:
            if not _keep_volume(facts, name, spec, report):
                report.change(name, "volume removed (purge)", "present", "removed")
                if not check:
                    _remove_volume(docker, name, report)
    for name in spec.stack_networks:
        found_network = facts.networks.get(name)
        if found_network is not None and not _keep(found_network.labels, name, "Docker network", spec, report):
            report.change(name, "removed", "present", "removed")
            if not check:
                try:
                    docker.request("DELETE", f"/networks/{quote(name, safe='')}")
                except DockerError as error:
                    if error.status != 404 and "active endpoints" not in str(error):
                        raise


def scale(docker: Docker, spec: HostSpec, secrets: Secrets, state: str, check: bool) -> Report:
    """Start (`started`) or stop (`stopped`) this run's nodes, keeping their containers (Swarm: their
    services, scaled to one task or none) and data; started nodes get their links back."""
    report = Report()
    facts = read(docker)
    for container in spec.containers:
        if container.role != "node":
            continue
        found = facts.containers.get(container.name)
        if found is None:
            if state == "started":
                report.failures.append(f"{container.name}: no such container (deploy.yml makes it)")
            continue
        if _keep(found.labels, container.name, "container", spec, report):
            continue
        if state == "started" and found.state in ("exited", "created", "dead"):
            report.change(container.name, "started", found.state, "running")
            if not check:
                docker.request("POST", f"/containers/{found.id}/start")
        elif state == "stopped" and found.state in ("running", "paused", "restarting"):
            report.change(container.name, "stopped", found.state, "exited")
            if not check:
                stop(docker, container.name)
    if spec.manager:
        for service in spec.services:
            if service.role != "node":
                continue
            if service.name not in facts.services:
                if state == "started":
                    report.failures.append(f"{service.name}: no Swarm service (deploy.yml makes it)")
                continue
            wanted = 1 if state == "started" else 0
            if facts.services[service.name].replicas != wanted:
                report.change(service.name, f"scaled to {wanted} task{'s' if wanted != 1 else ''}")
                if not check:
                    service_scale(docker, service.name, wanted)
    if state == "started" and not report.failures:
        if not check:
            _wait_swarm_tasks(docker, spec, report)
        if not report.failures:
            _links(docker, spec, secrets, report, check, {}, None)
    return report


def status(docker: Docker, spec: HostSpec, secrets: Secrets, wait_for: dict[str, str] | None = None,
           timeout: float = 60.0) -> Report:
    """Each of this run's nodes here: its container's state, its address, and (running) its chain
    and peers; with `wait_for` (network -> tip), after it reached that tip."""
    from ._status import chain_and_peers, wait_for_tip

    report = Report()
    facts = read(docker)
    parts = {part.name: part for part in spec.networks}
    todo = []
    for node in spec.nodes:
        part = parts[node.network]
        found = facts.node_container(node.container)
        report.container_states[node.container] = found.state if found else "missing"
        if found is None or found.state != "running":
            continue
        seen, rpc_host = address(facts, found, _names.docker_network(part.name), part.swarm)
        report.addresses[node.container] = seen
        todo.append((node, part, rpc_host))

    def work(item: tuple[NodePart, NetworkPart, str]) -> dict[str, Any]:
        node, part, rpc_host = item
        rpc = Rpc(rpc_host, part.rpc_port, "peerlab", str((secrets.get("rpc") or {}).get(node.container, "")), 30.0)
        chain = rpc.wait_ready(timeout)
        tip = (wait_for or {}).get(part.name)
        if tip:
            chain = wait_for_tip(rpc, tip, timeout)
            if chain["bestblockhash"] != tip:
                raise RpcError(f"tip not reached after {timeout:g}s: at height {chain['blocks']} ({chain['bestblockhash']}), "
                               f"expected {tip}")
        state = chain_and_peers(chain, rpc.call("getpeerinfo"))
        state["rpc_host"] = rpc_host
        return state

    for (node, _part, _host), state, error in _each(todo, work, 16):
        if error is not None:
            report.failures.append(f"{node.container}: {error}")
        else:
            report.nodes[node.container] = state
    return report


def mine_here(docker: Docker, spec: HostSpec, secrets: Secrets, miners: list[str], blocks: int, check: bool) -> Report:
    """Mine `blocks` blocks on each of `miners` (nodes of this host, one per network); each network's
    new tip in `tips`."""
    report = Report()
    facts = read(docker)
    for miner in miners:
        node = next((item for item in spec.nodes if item.container == miner), None)
        part = next((item for item in spec.networks if node and item.name == node.network), None)
        found = facts.node_container(miner)
        if node is None or part is None or found is None:
            report.failures.append(f"{miner}: no such node on {spec.host}")
            continue
        if found.state != "running":
            report.failures.append(f"{miner} is {found.state}: it cannot mine (" + (
                "clear its fault: playbooks/fault.yml -e clear=true" if found.state == "paused" else "start it: playbooks/start.yml")
                + ")")
            continue
        if check:
            report.change(miner, f"would mine {blocks} blocks")
            continue
        rpc_host = address(facts, found, _names.docker_network(part.name), part.swarm)[1]
        try:
            report.tips[part.name] = mine_on(part, miner, rpc_host, secrets, blocks, 30.0, report)
        except (RpcError, ValueError) as error:
            report.failures.append(f"{miner}: {error}")
    return report
