#!/usr/bin/python
# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Write many small files in one run, each only when its content or mode differs
version_added: 0.5.0
description:
  - Compares each file with the content it must hold and writes it (atomically, through a
    temporary file in the same directory) only when it differs; makes missing parent directories.
  - One run for a whole set of provisioning or configuration files, where M(ansible.builtin.copy)
    in a loop costs a module run per file even when nothing changes.
author: peerlab developers (@peerlab)
attributes:
  check_mode:
    support: full
    description: Reports the files that would be written.
  diff_mode:
    support: full
    description: The paths written, with their old and new content.
  idempotent:
    support: full
    description: Changed only when a file's content or mode had to change.
options:
  files:
    description: The files.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The whole content.
        type: str
        required: true
      mode:
        description: Octal permissions.
        type: str
        default: "0644"
  directory_mode:
    description: Permissions of directories it makes.
    type: str
    default: "0755"
requirements:
  - Python 3.9 or later (standard library only)
"""

EXAMPLES = r"""
- name: Write the provisioning files
  peerlab.bitcoin.files:
    files:
      - {path: /var/lib/peerlab/grafana/provisioning/datasources/peerlab.yml, content: "{{ datasource }}"}
"""

RETURN = r"""
written:
  description: Paths written (or that would be written in check mode).
  returned: always
  type: list
  elements: str
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.peerlab.bitcoin.plugins.module_utils._atomic import replace_file


def _current(path: str) -> tuple[bytes | None, int | None]:
    try:
        with open(path, "rb") as handle:
            return handle.read(), stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None, None


def _write(path: str, data: bytes, mode: int, directory_mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=directory_mode, exist_ok=True)
    replace_file(path, data, mode)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", required=True),
                mode=dict(type="str", default="0644"),
            )),
            directory_mode=dict(type="str", default="0755"),
        ),
        supports_check_mode=True,
    )
    written, before, after = [], [], []
    for entry in module.params["files"]:
        path = entry["path"]
        if not os.path.isabs(path):
            module.fail_json(msg=f"{path}: the path must be absolute")
        data = entry["content"].encode()
        mode = int(entry["mode"], 8)
        old, old_mode = _current(path)
        if old == data and old_mode == mode:
            continue
        written.append(path)
        before.append(f"--- {path}\n" + (old.decode(errors="replace") if old is not None else "(absent)\n"))
        after.append(f"+++ {path}\n" + entry["content"])
        if not module.check_mode:
            try:
                _write(path, data, mode, int(module.params["directory_mode"], 8))
            except OSError as error:
                module.fail_json(msg=f"{path}: cannot write ({error.strerror or error})", written=written)
    result = dict(changed=bool(written), written=written)
    if module._diff:
        result["diff"] = {"before": "".join(before), "after": "".join(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
