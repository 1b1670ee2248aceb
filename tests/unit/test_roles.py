"""Each role's meta/argument_specs.yml mirrors its defaults/main.yml, and names are prefixed."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES = sorted(name for name in os.listdir("roles") if os.path.isdir(os.path.join("roles", name)))
TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict, "float": (int, float)}


def load(role: str, path: str) -> dict:
    with open(os.path.join("roles", role, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_defaults(role: str) -> None:
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults), "options and defaults differ"
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], f"{name}: default differs"
        assert isinstance(defaults[name], TYPES[spec["type"]]), f"{name}: default is not {spec['type']}"
        assert spec.get("description"), f"{name}: no description"
        if "choices" in spec:
            assert defaults[name] in spec["choices"]


# The engine role also holds the deployment-wide switches every role reads (peerlab_monitoring, ...).
PREFIXES = {"engine": ("engine_", "peerlab_")}


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_are_prefixed_with_the_role_name(role: str) -> None:
    assert all(name.startswith(PREFIXES.get(role, (f"{role}_",))) for name in load(role, "defaults/main.yml"))


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_lists_every_variable(role: str) -> None:
    with open(os.path.join("roles", role, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    missing = [name for name in load(role, "defaults/main.yml") if f"`{name}`" not in readme]
    assert not missing
