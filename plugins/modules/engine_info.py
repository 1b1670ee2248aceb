#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_info
short_description: Read what a Docker engine holds for peerlab, in one run
version_added: 0.5.0
description:
  - One read of a Docker host at the start of a deploy, giving its image tags, its networks (with
    their subnets), peerlab's containers (label C(peerlab.role)) and volumes (label
    C(peerlab.network)), its data directory.
  - The roles use it to skip work that is already done (an image whose content-hash tag exists,
    a network that exists, a container whose settings hash matches) without one module run per
    check. Anything it reports missing is then made by the task that owns it, which checks again.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Never changes anything.
options:
  docker_socket:
    description: The engine's Unix socket on the host that runs the module.
    type: str
    default: /var/run/docker.sock
requirements:
  - Python 3.9 or later on the Docker host (standard library only)
"""

EXAMPLES = r"""
- name: Read each Docker host's engine
  peerlab.bitcoin.engine_info:
  delegate_to: "{{ item }}"
  loop: [localhost]
  register: images_engines
"""

RETURN = r"""
images:
  description: Every image tag the engine holds.
  returned: always
  type: list
  elements: str
networks:
  description: Network name -> driver, subnets and labels.
  returned: always
  type: dict
containers:
  description:
    - peerlab's containers as the engine lists them, trimmed to Id, Names, Labels, State, Status,
      Created and each network's IPAddress.
  returned: always
  type: list
  elements: dict
volumes:
  description: peerlab's volumes (Name, Labels).
  returned: always
  type: list
  elements: dict
root_dir:
  description: The engine's data directory (DockerRootDir).
  returned: always
  type: str
swarm:
  description: The engine's Swarm state (inactive, active, ...).
  returned: always
  type: str
"""

import json
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._docker import Docker, DockerError


def main() -> None:
    module = AnsibleModule(argument_spec=dict(docker_socket=dict(type="str", default="/var/run/docker.sock")),
                           supports_check_mode=True)
    docker = Docker(module.params["docker_socket"])
    try:
        info = docker.request("GET", "/info")
        images = docker.request("GET", "/images/json")
        networks = docker.request("GET", "/networks")
        containers = docker.request("GET", "/containers/json?all=1&filters=" + quote(json.dumps({"label": ["peerlab.role"]})))
        volumes = docker.request("GET", "/volumes?filters=" + quote(json.dumps({"label": ["peerlab.network"]})))
    except DockerError as error:
        module.fail_json(msg=str(error))
    module.exit_json(
        changed=False,
        images=sorted({tag for image in images for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"}),
        networks={network["Name"]: {"driver": network.get("Driver"), "labels": network.get("Labels") or {},
                                    "subnets": [config.get("Subnet") for config in (network.get("IPAM") or {}).get("Config") or []
                                                if config.get("Subnet")]}
                  for network in networks},
        # Trimmed to what the roles read: every later task templates this result.
        containers=[{"Id": container.get("Id"), "Names": container.get("Names") or [], "Labels": container.get("Labels") or {},
                     "State": container.get("State"), "Status": container.get("Status"), "Created": container.get("Created"),
                     "NetworkSettings": {"Networks": {name: {"IPAddress": network.get("IPAddress", "")} for name, network
                                                      in ((container.get("NetworkSettings") or {}).get("Networks") or {}).items()}}}
                    for container in containers],
        volumes=[{"Name": volume.get("Name"), "Labels": volume.get("Labels") or {}} for volume in (volumes or {}).get("Volumes") or []],
        root_dir=info.get("DockerRootDir", "/var/lib/docker"),
        swarm=(info.get("Swarm") or {}).get("LocalNodeState", ""),
    )


if __name__ == "__main__":
    main()
