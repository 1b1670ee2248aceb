# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dataclasses to plain JSON values and back, so a typed plan can travel as a module's argument
and come back typed on the Docker host (standard library only; Python 3.9 and later)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


def dump(value: Any) -> Any:
    """Plain JSON values: dataclasses become mappings, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: dump(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {str(key): dump(item) for key, item in value.items()}
    return value


def load(kind: type[T], data: Any) -> T:
    """The dataclass `kind` from what `dump` made (missing fields take their defaults)."""
    return typing.cast(T, _load(kind, data))


def _hints(kind: type) -> dict[str, Any]:
    if kind not in _HINTS:
        _HINTS[kind] = typing.get_type_hints(kind)
    return _HINTS[kind]


def _load(kind: Any, data: Any) -> Any:
    if kind is Any:
        return data
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise TypeError(f"{kind.__name__}: expected a mapping, got {type(data).__name__}")
        hints = _hints(kind)
        values = {item.name: _load(hints[item.name], data[item.name]) for item in dataclasses.fields(kind) if item.name in data}
        return kind(**values)
    origin = typing.get_origin(kind)
    arguments = typing.get_args(kind)
    if origin is tuple:
        return tuple(_load(arguments[0], item) for item in data or ())
    if origin is list:
        return [_load(arguments[0], item) for item in data or ()]
    if origin is dict:
        return {key: _load(arguments[1], item) for key, item in (data or {}).items()}
    if origin is typing.Union:  # Optional[X]
        if data is None:
            return None
        return _load(next(argument for argument in arguments if argument is not type(None)), data)
    if kind is float and isinstance(data, int):
        return float(data)
    return data
