#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_info
short_description: Read what a Docker engine holds, in one run
version_added: 0.5.0
description:
  - One read of a Docker host (module_utils/_facts.py) gives its image tags, networks (with their
    subnets and labels), every container (name, labels, state, addresses), every volume, and on a
    Swarm manager peerlab's services and their tasks, and the free disk of its data directory.
  - A deploy over several Docker hosts reads every host first, so that a refusal on one (an object
    of the same name that peerlab did not make, or that another inventory owns) stops every host
    before anything changes, and so that each host knows the addresses of the nodes on the others.
  - Sets the fact C(peerlab_engine_facts) (module_utils/_facts.EngineFacts as plain values).
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
"""

RETURN = r"""
ansible_facts:
  description:
    - C(peerlab_engine_facts), what the engine holds (images, networks, containers, volumes,
      services, tasks, root_dir, swarm, free_gib).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._docker import Docker, DockerError
from ..module_utils._facts import read
from ..module_utils._typed import dump


def main() -> None:
    module = AnsibleModule(argument_spec=dict(docker_socket=dict(type="str", default="/var/run/docker.sock")),
                           supports_check_mode=True)
    try:
        facts = read(Docker(module.params["docker_socket"]))
    except DockerError as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, ansible_facts={"peerlab_engine_facts": dump(facts)})


if __name__ == "__main__":
    main()
