"""Bounds on what comes from outside (the API, the message bus, the config file): strategy names, nesting
depth, number magnitudes, and text made safe to write into a log line."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

#: what a strategy name may be (the API's path segment, the config's key, the cache's hash field)
STRATEGY_NAME_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
STRATEGY_NAME_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_', '.' and '-'"
_STRATEGY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: how deeply a request body or a strategy config may nest objects and arrays
MAX_DEPTH = 32
#: numbers in an algo's settings are 0 or of magnitude 10**-MAX_EXPONENT to 10**MAX_EXPONENT (exclusive)
MAX_EXPONENT = 100

#: characters written as escapes by `printable`: C0/C1 controls, DEL, line/paragraph separators, bidi controls
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def valid_strategy_name(name: object) -> bool:
    """True when `name` is a string matching STRATEGY_NAME_PATTERN (a trailing newline does not match)."""
    return isinstance(name, str) and _STRATEGY_NAME.fullmatch(name) is not None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when `value` nests dicts/lists/tuples more than `limit` levels (a flat dict is one level).
    Iterative, so any depth is measured without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def number_problems(value: Any, path: str) -> Iterator[str]:
    """`path: problem` for each number in `value` (a model, dict, list, ...) that is not finite, or not 0
    and outside 1e-100 .. 1e100 in magnitude (an integer: outside the signed 64-bit range): such values
    would overflow (or raise) in the arithmetic that uses them, or in the shared cache's encoder."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(item, BaseModel):
            stack.extend((v, f"{where}.{k}", depth + 1) for k, v in reversed(list(item)))
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}", depth + 1) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in reversed(list(enumerate(item))))
        else:
            problem = _number_problem(item)
            if problem is not None:
                yield f"{where}: {problem}"


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "must be a finite number"
        if value and not -MAX_EXPONENT <= value.adjusted() < MAX_EXPONENT:
            return f"number out of range (magnitude 1e-{MAX_EXPONENT} to 1e{MAX_EXPONENT})"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "must be a finite number"
        if value and not 10.0**-MAX_EXPONENT <= abs(value) < 10.0**MAX_EXPONENT:
            return f"number out of range (magnitude 1e-{MAX_EXPONENT} to 1e{MAX_EXPONENT})"
    elif isinstance(value, int) and not -(2**63) <= value < 2**63:
        return "integer out of range (64-bit)"  # nor could the shared cache's JSON encode it
    return None


def printable(value: object, limit: int = 200) -> str:
    """`value` as text for a log line: control, line-separator and bidi characters as `\\xNN`/`\\uNNNN`
    escapes (so input cannot forge or hide log lines), cut to `limit` characters with a `...` mark."""
    text = str(value)
    cut = len(text) > limit
    text = _UNPRINTABLE.sub(_escape, text[:limit])
    return text + "..." if cut else text


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
