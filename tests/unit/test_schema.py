"""docs/topology.schema.json agrees with the validator: same keys, and valid examples pass both."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml

from ansible_collections.peerlab.bitcoin.plugins.module_utils._conf import CHAINS
from ansible_collections.peerlab.bitcoin.plugins.module_utils._generators import GENERATOR_COMMON, GENERATOR_PARAMS
from ansible_collections.peerlab.bitcoin.plugins.module_utils._topology import (
    IMPLEMENTATIONS,
    NETWORK_KEYS,
    NODE_KEYS,
    RESOURCE_KEYS,
    SETTING_KEYS,
    parse,
)

with open("docs/topology.schema.json", encoding="utf-8") as handle:
    SCHEMA: dict[str, Any] = json.load(handle)
DEFS = SCHEMA["$defs"]


def test_schema_keys_match_the_validator() -> None:
    assert set(DEFS["network"]["properties"]) == NETWORK_KEYS
    assert set(DEFS["settings"]["properties"]) == SETTING_KEYS
    assert set(DEFS["node"]["properties"]) == NODE_KEYS
    assert set(DEFS["settings"]["properties"]["resources"]["properties"]) == RESOURCE_KEYS
    assert set(DEFS["network"]["properties"]["chain"]["enum"]) == set(CHAINS)
    assert set(DEFS["settings"]["properties"]["implementation"]["enum"]) == set(IMPLEMENTATIONS)
    assert set(DEFS["generator"]["properties"]["type"]["enum"]) == set(GENERATOR_PARAMS)
    every_param = set().union(*(required | optional for required, optional in GENERATOR_PARAMS.values()))
    assert set(DEFS["generator"]["properties"]) == GENERATOR_COMMON | every_param


def test_shipped_topologies_pass_schema_and_validator() -> None:
    for path in ("inventories/local/02-topology.peerlab.yml",):
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        jsonschema.validate(document, SCHEMA)
        assert parse(document["networks"], path)


def test_schema_refuses_an_unknown_key() -> None:
    document = {"plugin": "peerlab.bitcoin.topology", "networks": {"lab": {"chain": "regtest", "edgez": []}}}
    try:
        jsonschema.validate(document, SCHEMA)
    except jsonschema.ValidationError as error:
        assert "edgez" in error.message
    else:
        raise AssertionError("the schema accepted an unknown key")
