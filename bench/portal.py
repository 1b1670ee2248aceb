"""How fast the portal draws a big network in headless Chromium (Debian's chromium and its driver).

Runs the portal's own image (built by `make deploy`) against a 200-node topology that is never
deployed (BENCH_NODES, random-regular degree 4: 400 links), logs in, and loads the network's page
BENCH_LOADS times (default 6). For each load: milliseconds from the navigation to the graph drawn
(layout computed and shown: the page's `renderedAt`), and the layout's own share. The first load
includes the portal reading the inventory (ansible-inventory); the others are warm. Prints one JSON
line; docs/benchmarks.md records it. `make bench-portal`; a screenshot goes to bench/results/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.peerlab.bitcoin.plugins.module_utils._login import hash_password

NODES = int(os.environ.get("BENCH_NODES", "200"))
LOADS = int(os.environ.get("BENCH_LOADS", "6"))
LISTEN = "127.0.0.1:18490"
NAME = "peerlab-bench-portal"


def portal_image(client: docker.DockerClient) -> str:
    images = sorted(client.images.list(name="peerlab/portal"), key=lambda image: image.attrs["Created"], reverse=True)
    tags = [tag for image in images for tag in image.tags]
    if not tags:
        raise SystemExit("no peerlab/portal image: run `make deploy` first (the local inventory builds it)")
    return str(tags[0])


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    client = docker.from_env()
    image = portal_image(client)
    work = Path(tempfile.mkdtemp(prefix="peerlab-bench-portal-"))
    inventory = work / "inventory"
    inventory.mkdir()
    shutil.copy(ROOT / "inventories" / "local" / "01-hosts.yml", inventory / "01-hosts.yml")
    (inventory / "02-topology.peerlab.yml").write_text(yaml.safe_dump({"plugin": "peerlab.bitcoin.topology", "networks": {"big": {
        "chain": "regtest", "generators": [{"type": "random-regular", "nodes": NODES, "degree": 4, "seed": 1, "prefix": "n"}]}}}))
    password = secrets.token_urlsafe(16)
    config = {"listen": LISTEN, "root": str(ROOT), "collections": str(ROOT / "collections"), "inventory": [str(inventory)],
              "user": "admin", "login": hash_password(password, secrets.token_hex(8)), "observer": "", "feed": "",
              "graphite": "", "grafana": "", "playbook_args": []}
    (work / "portal.json").write_text(json.dumps(config))
    for old in client.containers.list(all=True, filters={"name": f"^{NAME}$"}):
        old.remove(force=True)
    volumes = {str(ROOT): {"bind": str(ROOT), "mode": "ro"}, str(work): {"bind": str(work), "mode": "rw"}}
    container = client.containers.run(image, name=NAME, detach=True, network_mode="host", labels={"peerlab.role": "portal-bench"},
                                      environment={"PORTAL_CONFIG": str(work / "portal.json")}, volumes=volumes)
    driver = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://{LISTEN}/healthz", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the portal did not answer: {container.logs()[-2000:].decode()}") from None
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(f"http://{LISTEN}/login")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.ID, "login").click()
        loads: list[dict[str, Any]] = []
        for _load in range(LOADS):
            driver.get(f"http://{LISTEN}/network/big")
            deadline = time.monotonic() + 120
            while not driver.execute_script("return window.peerlab && window.peerlab.graph.renderedAt"):
                if time.monotonic() > deadline:
                    shown = driver.find_element(By.TAG_NAME, "body").text[:1500]
                    raise SystemExit(f"the graph was not drawn within 120 s; the page says:\n{shown}\n"
                                     f"the portal's log ends:\n{container.logs()[-2000:].decode()}")
                time.sleep(0.05)
            loads.append(dict(driver.execute_script(
                "const g = window.peerlab.graph; return {rendered_ms: g.renderedAt, layout_ms: g.layoutMs,"
                " vertices: document.querySelectorAll('#canvas g[data-id]').length,"
                " links: document.querySelectorAll('#canvas line').length};")))
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / f"portal-{NODES}.png"))
        warm = [load["rendered_ms"] for load in loads[1:]] or [loads[0]["rendered_ms"]]
        print(json.dumps({
            "nodes": NODES, "vertices": loads[-1]["vertices"], "links": loads[-1]["links"], "loads": len(loads),
            "first_load_ms": round(loads[0]["rendered_ms"]), "warm_median_ms": round(statistics.median(warm)),
            "warm_max_ms": round(max(warm)),
            "layout_median_ms": round(statistics.median(load["layout_ms"] for load in loads)), "image": image,
            "chromium": driver.capabilities.get("browserVersion"),
        }))
    finally:
        if driver is not None:
            driver.quit()
        container.remove(force=True)
        shutil.rmtree(work, ignore_errors=True)
        client.close()


if __name__ == "__main__":
    main()
