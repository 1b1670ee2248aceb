# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the engine's reports (the peerlab_engine fact each Docker host's engine run sets)."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerlab.bitcoin.plugins.module_utils._chain import summary_table
from ansible_collections.peerlab.bitcoin.plugins.module_utils._faults import SETTINGS, from_settings
from ansible_collections.peerlab.bitcoin.plugins.module_utils._images import base_tag
from ansible_collections.peerlab.bitcoin.plugins.module_utils._settings import ImageSettings

DOCUMENTATION_TEXT = """
node_table(reports): the table a run prints, one row per node, from every Docker host's peerlab_engine fact.
base_image(repository, suite, packages): the base image's tag (module_utils/_images.base_tag).
fault_entry(kind, vars): the fault of `-e fault=KIND` from the run's other -e settings (module_utils/_faults.from_settings).
"""


def node_table(reports: list[Any]) -> list[str]:
    rows = [row for report in reports or [] if isinstance(report, dict) for row in report.get("rows") or []]
    return summary_table(rows).split("\n") if rows else ["(no node in this run)"]


def base_image(repository: str, suite: str, packages: list[str]) -> str:
    return base_tag(ImageSettings(base_repository=repository, base_suite=suite, base_packages=tuple(packages)))


def fault_entry(kind: str, settings: Any) -> dict[str, Any]:
    return from_settings(kind, {key: settings[key] for key in settings if key in ("node", "from", "to", "sides", *SETTINGS)})


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"node_table": node_table, "base_image": base_image, "fault_entry": fault_entry}
