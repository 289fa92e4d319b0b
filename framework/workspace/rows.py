"""The rows of the run history, decoded one way for everyone: the readers and ``workspace check`` agree.

A row that does not decode (a ``properties`` column that is not JSON, a ``created_at`` that is
text, a version that is not a whole number) is named by the reader that trips over it, found by
``workspace check``, and set right by ``workspace check --repair`` (which keeps the original in a
kept copy of the history).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

# column -> kind; a trailing "?" allows NULL. dict/list/json: JSON text (of that shape); number: REAL or
# INTEGER; integer: INTEGER.
SPECS: dict[str, dict[str, str]] = {
    "experiments": {"name": "text", "created_at": "number"},
    "runs": {"id": "text", "params": "dict", "properties": "dict", "outputs": "dict", "reuse_components": "dict?",
             "tags": "dict", "created_at": "number", "started_at": "number?", "ended_at": "number?",
             "pid": "integer?"},
    "metrics": {"run_id": "text", "name": "text", "value": "json", "seq": "integer", "logged_at": "number"},
    "datasets": {"name": "text", "version": "integer", "files": "list", "sources": "list", "created_at": "number"},
    "models": {"name": "text", "version": "integer", "files": "list", "properties": "dict", "tags": "dict",
               "created_at": "number"},
}
# What identifies a row across copies of the history (metrics have no key of their own).
KEYS: dict[str, tuple[str, ...]] = {
    "experiments": ("name",), "runs": ("id",), "metrics": ("run_id", "name", "seq", "logged_at"),
    "datasets": ("name", "version"), "models": ("name", "version"),
}
_EMPTY = {"dict": "{}", "list": "[]", "json": "null"}


class RowProblem(ValueError):
    """A row of the run history that does not decode: ``what`` names the row, ``column`` the column."""

    def __init__(self, table: str, what: str, column: str, why: str) -> None:
        super().__init__(f"{what}: column {column!r} {why}")
        self.table, self.what, self.column, self.why = table, what, column, why


def describe(table: str, row: Mapping[str, Any]) -> str:
    """The row in words: ``run 1f3c...``, ``model Titanic:3``, ``metric 'accuracy' of run 1f3c...``."""
    get = row.get
    if table == "runs":
        return f"run {get('id')}"
    if table == "metrics":
        return f"metric {get('name')!r} of run {get('run_id')}"
    if table in ("datasets", "models"):
        return f"{table[:-1]} {get('name')}:{get('version')}"
    return f"experiment {get('name')!r}"


def key(table: str, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in KEYS[table])


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(kind: str, value: Any) -> tuple[str | None, Any]:
    """(why it does not decode or None, the decoded value)."""
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        return (None, None) if nullable or kind == "json" else ("is empty (NULL)", None)
    if kind in ("dict", "list", "json"):
        if not isinstance(value, str):
            return f"holds {type(value).__name__} {_shown(value)}, not JSON text", None
        try:
            decoded = json.loads(value)
        except ValueError:
            return f"is not JSON ({_shown(value)})", None
        wanted = {"dict": dict, "list": list}.get(kind)
        if wanted is not None and not isinstance(decoded, wanted):
            noun = "an object" if wanted is dict else "a list"
            return f"is JSON but not {noun} ({_shown(value)})", None
        return None, decoded
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return f"is not a number ({_shown(value)})", None
        return None, value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"is not a whole number ({_shown(value)})", None
        return None, value
    if not isinstance(value, str):
        return f"is not text ({_shown(value)})", None
    return None, value


def decode(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as a dict with its JSON columns decoded; raises RowProblem naming the row and the column."""
    data = dict(row)
    for column, kind in SPECS[table].items():
        if column not in data:
            continue
        why, value = _check(kind, data[column])
        if why is not None:
            raise RowProblem(table, describe(table, data), column, why)
        if kind.rstrip("?") in ("dict", "list", "json"):
            data[column] = value
    return data


def problems(table: str, row: Mapping[str, Any]) -> list[RowProblem]:
    """Every column of ``row`` that does not decode."""
    found = []
    for column, kind in SPECS[table].items():
        if column in row:
            why, _ = _check(kind, row[column])
            if why is not None:
                found.append(RowProblem(table, describe(table, row), column, why))
    return found


def mended(table: str, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """``row`` (as stored) with undecodable values set to what readers can use, and what was changed.

    JSON columns become empty (``{}``, ``[]``, ``null``); numbers and whole numbers written as text are
    parsed when they can be, else a nullable column becomes NULL and a time becomes 0 (unknown). A
    row whose key cannot be mended (a version that is not a number) is ``None``: it is left out.
    """
    fixed = dict(row)
    changes = []
    for problem in problems(table, row):
        column, kind = problem.column, SPECS[table][problem.column].rstrip("?")
        nullable = SPECS[table][column].endswith("?")
        value: Any
        if kind in _EMPTY:
            value = _EMPTY[kind]
        else:
            value = _parse_number(row[column], kind)
            if value is None and not nullable:
                if column == "version":
                    return None, [f"{problem}: left out (the key cannot be mended)"]
                value = 0 if kind == "integer" or column.endswith("_at") else None
        fixed[column] = value
        changes.append(f"{problem}: set to {value if value is not None else 'NULL'}")
    return fixed, changes


def _parse_number(value: Any, kind: str) -> float | int | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if kind == "integer":
        return int(number) if number.is_integer() else None
    return number
