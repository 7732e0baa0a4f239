"""Deterministic JSON for everything slsa-dist signs or writes.

Keys are sorted, separators are compact, text is UTF-8 (ADR 0001). An integer is
written as the integer it is, never as a float. A float is written in the one
form RFC 8785 (JCS) gives every IEEE 754 double: ECMAScript's shortest
round-trip form (``0.01``, ``1e-7``, ``1e+21``; a whole float such as ``2.0`` is
``2`` and ``-0.0`` is ``0``, as JSON has one number type), so the same values
always give the same bytes. NaN and the infinities are not JSON: refused here
(the rank agent records such a parameter as a string, and says so).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JSONValue", "dumps", "dumps_bytes", "number"]

JSONValue = Any  # JSON trees are recursive; checked at run time by _check.


def number(value: float) -> str:
    """A float as RFC 8785 writes it (ECMAScript's ``Number.prototype.toString``):
    the shortest digits that read back as the same double (Python's ``repr`` finds
    them), laid out as ECMAScript lays them out.

    Raises:
        ValueError: NaN or an infinity (not JSON numbers).
    """
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, found {value!r} (not JSON)")
    if value == 0:
        return "0"  # and -0.0
    text = repr(float(value))
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    # value = 0.<stripped> x 10^point: ECMAScript's n is ``point``
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(stripped))
    digits = stripped.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    return (sign + digits[0] + ("." + digits[1:] if count > 1 else "")
            + ("e+" if power > 0 else "e-") + str(abs(power)))


def _check(value: object, path: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: expected a finite number, found {value!r} (NaN and "
                            "the infinities are not JSON; pass a string)")
        return
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


def _with_floats(value: object) -> set[int]:
    """The ids of the containers in ``value`` that hold a float, however deep."""
    found: set[int] = set()

    def walk(item: object) -> bool:
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            return False
        holds = False
        for child in children:
            holds = walk(child) or holds  # every child: a deeper container is marked too
        if holds:
            found.add(id(item))
        return holds

    walk(value)
    return found


def _key(key: object) -> str:
    """An object key as the C encoder writes it (it turns a few scalar kinds to text)."""
    if isinstance(key, float):
        return json.dumps(number(key))
    return json.dumps(key if isinstance(key, str) else json.loads(json.dumps({key: 0}))
                      .popitem()[0], ensure_ascii=False)


def _dumps_with_floats(value: object) -> str:
    """Canonical JSON of a value that holds floats: what holds none is written by the
    C encoder, as without floats; each float by :func:`number`."""
    holding = _with_floats(value)

    def write(item: object) -> str:
        if isinstance(item, float):
            return number(item)
        if id(item) not in holding:
            return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
        if isinstance(item, dict):
            return "{" + ",".join(_key(k) + ":" + write(v)
                                  for k, v in sorted(item.items(), key=_first)) + "}"
        assert isinstance(item, (list, tuple))
        return "[" + ",".join(write(v) for v in item) + "]"

    return write(value)


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _discard(pairs: object) -> None:
    del pairs


class _FloatFoundError(Exception):
    pass


def dumps(value: JSONValue) -> str:
    """Serialize ``value`` as canonical JSON text.

    The C encoder does the work; parsing its output back (also in C) finds
    any float, since only floats print with a point or an exponent. Only
    then are the floats written in their RFC 8785 form (:func:`number`), by a
    walk down to them.

    Raises:
        TypeError: ``value`` holds NaN, an infinity or a non-JSON type.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (ValueError, TypeError):
        _check(value, "$")
        raise  # _check found nothing more specific: the original error stands
    try:
        # object_pairs_hook drops each object as soon as it is parsed: the check
        # costs time linear in the text and almost no memory.
        json.loads(text, parse_float=_no_float, object_pairs_hook=_discard)
    except _FloatFoundError:
        return _dumps_with_floats(value)
    return text


def dumps_bytes(value: JSONValue) -> bytes:
    """Serialize ``value`` as canonical JSON, UTF-8 encoded."""
    return dumps(value).encode("utf-8")
