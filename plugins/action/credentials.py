# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side RPC credentials: generate once, keep in a 0600 file, vault-compatible."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.parsing.vault import is_encrypted
from ansible.plugins.action import ActionBase

from ..module_utils._atomic import replace_file
from ..module_utils._rpcauth import USER, dump, fill, rpcauth_line


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "nodes", "users"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        result["_ansible_no_log"] = True  # whatever the task says, this result holds passwords
        path = os.path.expanduser(str(self._task.args.get("path", "")))
        nodes = [str(node) for node in self._task.args.get("nodes") or []]
        users = [str(user) for user in self._task.args.get("users") or ["peerlab"]]
        if not path:
            raise AnsibleActionFail("credentials: 'path' is required")
        bad = [user for user in users if not USER.match(user)]
        if bad:
            raise AnsibleActionFail(f"credentials: invalid RPC user name(s): {', '.join(bad)}")

        stored, vaulted = self._load(path)
        created = fill(stored, nodes, users)
        if created and not self._task.check_mode:
            self._save(path, stored, vaulted)
        result["changed"] = bool(created)
        result["created"] = created
        result["path"] = path
        result["credentials"] = {
            node: {user: {"password": stored[node][user]["password"], "salt": stored[node][user]["salt"],
                          "rpcauth": rpcauth_line(user, stored[node][user]["salt"], stored[node][user]["password"])}
                   for user in users}
            for node in nodes
        }
        return result

    def _load(self, path: str) -> tuple[dict[str, Any], bool]:
        if not os.path.exists(path):
            return {}, False
        mode = os.stat(path).st_mode & 0o077
        if mode:
            raise AnsibleActionFail(f"credentials: {path} is readable by group or others "
                                    f"(mode {oct(os.stat(path).st_mode & 0o777)}); run: chmod 600 {path}")
        with open(path, "rb") as handle:
            raw = handle.read()
        vaulted = is_encrypted(raw)
        try:
            data = self._loader.load_from_file(path, cache="none")
        except Exception as error:  # vault password missing, bad YAML: say which file
            raise AnsibleActionFail(f"credentials: cannot read {path}: {to_text(error)}") from None
        if data is None:
            return {}, vaulted
        if not isinstance(data, dict):
            raise AnsibleActionFail(f"credentials: {path} must hold a mapping of node -> user -> password")
        # Plain dict/str copies: the loader returns tagged values we must not write back as-is.
        return _plain(data), vaulted

    def _save(self, path: str, data: dict[str, Any], vaulted: bool) -> None:
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        content = to_bytes(dump(data))
        if vaulted:
            content = self._loader._vault.encrypt(content)  # pylint: disable=protected-access
        replace_file(path, content, 0o600, prefix=".credentials-")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, str) else value
