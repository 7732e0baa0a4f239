"""Deterministic JSON for everything slsa-dist signs or writes.

Keys are sorted, separators are compact, text is UTF-8. Floats are refused:
a number that enters a provenance as an integer must leave it as one, and a
float has no single textual form, so two runs could not compare byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JSONValue", "dumps", "dumps_bytes"]

JSONValue = Any  # JSON trees are recursive; checked at run time by _check.


def _check(value: object, path: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        raise TypeError(
            f"{path}: expected an integer or a string, found the float {value!r} "
            "(floats have no canonical form; pass a string)"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: expected string keys, found {type(key).__name__}")
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    raise TypeError(f"{path}: expected a JSON value, found {type(value).__name__}")


def _no_float(text: str) -> float:
    raise _FloatFoundError(text)


def _discard(pairs: object) -> None:
    del pairs


class _FloatFoundError(Exception):
    pass


def dumps(value: JSONValue) -> str:
    """Serialize ``value`` as canonical JSON text.

    The C encoder does the work; parsing its output back (also in C) finds
    any float, since only floats print with a point or an exponent. Only
    then does the slow walk run, to name the float's path.

    Raises:
        TypeError: ``value`` holds a float or a non-JSON type.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        # object_pairs_hook drops each object as soon as it is parsed: the check
        # costs time linear in the text and almost no memory.
        json.loads(text, parse_float=_no_float, object_pairs_hook=_discard)
    except (_FloatFoundError, ValueError, TypeError):
        _check(value, "$")
        raise  # _check found nothing more specific: the original error stands
    return text


def dumps_bytes(value: JSONValue) -> bytes:
    """Serialize ``value`` as canonical JSON, UTF-8 encoded."""
    return dumps(value).encode("utf-8")
