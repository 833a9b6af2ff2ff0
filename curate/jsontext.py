"""JSON text <-> Python values for input records, with the edges of JSON made explicit.

Python's json accepts what JSON does not and refuses what JSON allows:
  - an integer of more than 4,300 digits raises ValueError (the int-from-string limit). It is read
    as a `BigInt` holding its digits, so an id of 5,000 digits is still an id;
  - NaN, Infinity, -Infinity and overflowing numbers (1e400) become float nan/inf, which json.dumps
    would write back as invalid JSON. Output goes through `dumps`, which writes them as strings;
  - a key repeated in one object silently keeps the last value. `loads` refuses it instead, so no
    value of the input is dropped without a word.
"""

from __future__ import annotations

import json
import math
import sys


class BigInt:
    """An integer too long for Python's int-from-string limit, kept as its digits."""

    __slots__ = ("digits",)

    def __init__(self, digits: str):
        self.digits = digits

    def __repr__(self) -> str:
        return f"BigInt({self.digits[:20]}...{len(self.digits)} digits)"


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} repeated in one object")
            seen.add(key)
    return obj


def _int(text: str) -> int | BigInt:
    return int(text) if len(text) <= sys.get_int_max_str_digits() else BigInt(text)


_DECODER = json.JSONDecoder(object_pairs_hook=_object)
# Only used once the plain decoder hit the int limit: a Python call per integer costs time.
_BIG_INT_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_int)


def loads(text: str) -> object:
    """Parse one JSON value. Raises json.JSONDecodeError (syntax), ValueError (a repeated key) or
    RecursionError (nesting deeper than the interpreter's stack)."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError as e:
        if "int" not in str(e) or "digits" not in str(e):
            raise
        return _BIG_INT_DECODER.decode(text)


def raw_decode(text: str, pos: int) -> tuple[object, int]:
    """`loads` for the value starting at text[pos]: (value, end)."""
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError:
        raise
    except ValueError as e:
        if "int" not in str(e) or "digits" not in str(e):
            raise
        return _BIG_INT_DECODER.raw_decode(text, pos)


def _finite(value: object) -> object:
    """`value` with NaN/inf floats replaced by "NaN", "Infinity", "-Infinity" (the JSON5 spelling)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _default(value: object) -> object:
    if isinstance(value, BigInt):
        return value.digits
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: object) -> str:
    """Valid JSON, always: a BigInt is written as a string of its digits, NaN and infinities as
    strings (strict JSON has no spelling for them)."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_default)
    except ValueError:  # a NaN or infinity somewhere: rare, so only then walk the value
        return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, default=_default)
