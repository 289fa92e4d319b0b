"""Request bodies of the public ARM API (Microsoft.MachineLearningServices) checked against its published schema.

The schema is the one ``azure-ai-ml`` ships: the REST models it generates from the service's
TypeSpec/OpenAPI definition (``azure/ai/ml/_restclient/arm_ml_service/models``). Each model class
declares its fields (``rest_field``: JSON name, visibility), their types (annotations: ``str``,
``Optional[...]``, nested models, ``dict``/``list`` of them, enums, ``datetime``/``timedelta``) and
polymorphism (``__mapping__`` keyed by a discriminator such as ``jobType`` or ``dataType``).
:func:`check` walks a JSON body against a model and lists what the real service would refuse:
a required field missing, a value of a type that cannot be read as the declared one, an unknown
discriminator value. Fields the service fills in (``visibility=["read"]``) are never required;
unknown fields are ignored. Scalars are read the way the service's JSON reader (Json.NET) reads
them: a number or boolean where a string is declared becomes its text (the SDK itself sends
``hash_version: 202208`` in a ``dict[str, str]``), a numeric string where a number is declared its
value; an object or array where a scalar is declared, or text that is no number, is refused.
"""

from __future__ import annotations

import datetime
import enum
import functools
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

# ISO 8601 durations as the service writes them (PT10M, P1DT2H, PT0.5S)
DURATION = re.compile(r"^-?P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                      r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")


TIMESPAN = re.compile(r"^-?(\d+\.)?\d{1,2}:\d{2}:\d{2}(\.\d+)?$")  # .NET TimeSpan text, also accepted


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing the service refuses: where (a JSON path such as ``properties.command``), what, why."""

    target: str
    code: str
    message: str


def models() -> Any:
    from azure.ai.ml._restclient.arm_ml_service import models as arm_models

    return arm_models


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[tuple[str, Any, bool, bool], ...]:
    """(JSON name, type, required, is_discriminator) of each field a model declares (its bases' too)."""
    module = __import__(cls.__module__, fromlist=["_"])
    hints = typing.get_type_hints(cls, globalns={**vars(module), "_models": models()})
    found: list[tuple[str, Any, bool, bool]] = []
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if attr.startswith("_") or not hasattr(value, "_rest_name_input") or not hasattr(value, "_visibility"):
                continue
            hint = hints.get(attr, Any)
            name = value._rest_name_input or attr
            visibility = value._visibility or []
            writable = not visibility or any(v in visibility for v in ("create", "update"))
            required = writable and not _optional(hint)
            found = [f for f in found if f[0] != name] + [(name, hint, required, bool(value._is_discriminator))]
    return tuple(found)


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and hasattr(hint, "_attr_to_rest_field") or (
        isinstance(hint, type) and any(hasattr(v, "_rest_name_input") for v in vars(hint).values()))


def check(body: Any, model: type, target: str = "") -> list[Problem]:
    """What the service would refuse in ``body`` read as ``model`` (an empty list: nothing)."""
    problems: list[Problem] = []
    _check_value(body, model, target, problems)
    return problems


def _check_value(value: Any, hint: Any, target: str, problems: list[Problem]) -> None:
    where = target or "(body)"
    if hint is Any or hint is object:
        return
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return
        if len(options) == 1:
            _check_value(value, options[0], target, problems)
            return
        # str | Enum (an extensible enum): any string; otherwise the first option that fits
        if all(a is str or (isinstance(a, type) and issubclass(a, enum.Enum)) for a in options):
            if not isinstance(value, str):
                problems.append(Problem(where, "InvalidType", f"{where}: expected a string, got "
                                                              f"{_json_type(value)} {value!r}"))
            return
        for option in options:
            trial: list[Problem] = []
            _check_value(value, option, target, trial)
            if not trial:
                return
        problems.append(Problem(where, "InvalidType", f"{where}: {value!r} matches none of its allowed types"))
        return
    if origin is typing.Literal:
        allowed = [a.value if isinstance(a, enum.Enum) else a for a in typing.get_args(hint)]
        if value not in allowed:
            problems.append(Problem(where, "InvalidValue", f"{where}: expected {' or '.join(map(repr, allowed))}, "
                                                           f"got {value!r}"))
        return
    if origin in (dict, typing.Dict) or hint is dict:
        if not isinstance(value, dict):
            problems.append(Problem(where, "InvalidType", f"{where}: expected an object, got {_json_type(value)}"))
            return
        args = typing.get_args(hint)
        if len(args) == 2:
            for key, item in value.items():
                _check_value(item, args[1], f"{target}.{key}" if target else key, problems)
        return
    if origin in (list, typing.List) or hint is list:
        if not isinstance(value, list):
            problems.append(Problem(where, "InvalidType", f"{where}: expected an array, got {_json_type(value)}"))
            return
        args = typing.get_args(hint)
        if args:
            for index, item in enumerate(value):
                _check_value(item, args[0], f"{target}[{index}]", problems)
        return
    if hint is str:
        if not isinstance(value, (str, int, float, bool)):
            problems.append(Problem(where, "InvalidType", f"{where}: expected a string, got {_json_type(value)} "
                                                          f"{_short(value)}"))
        return
    if hint is bool:
        if not (isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))):
            problems.append(Problem(where, "InvalidType", f"{where}: expected a boolean, got {_json_type(value)} "
                                                          f"{_short(value)}"))
        return
    if hint in (int, float):
        number = _number(value)
        if number is None or (hint is int and not float(number).is_integer()):
            kind = "an integer" if hint is int else "a number"
            problems.append(Problem(where, "InvalidType", f"{where}: expected {kind}, got {_json_type(value)} "
                                                          f"{_short(value)}"))
        return
    if hint is datetime.datetime:
        try:
            datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append(Problem(where, "InvalidType", f"{where}: expected an ISO 8601 date-time, got {value!r}"))
        return
    if hint is datetime.timedelta:
        if not isinstance(value, str) or not (DURATION.match(value) or TIMESPAN.match(value)):
            problems.append(Problem(where, "InvalidType", f"{where}: expected an ISO 8601 duration such as PT10M, "
                                                          f"got {_short(value)}"))
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if not isinstance(value, str):
            problems.append(Problem(where, "InvalidType", f"{where}: expected a string, got {_json_type(value)}"))
        return
    if isinstance(hint, type) and _is_model(hint):
        _check_model(value, hint, target, problems)


def _check_model(value: Any, cls: type, target: str, problems: list[Problem]) -> None:
    where = target or "(body)"
    if not isinstance(value, dict):
        problems.append(Problem(where, "InvalidType", f"{where}: expected an object, got {_json_type(value)}"))
        return
    mapping = getattr(cls, "__mapping__", None)
    if mapping:
        discriminator = next((name for name, _, _, is_disc in _fields(cls) if is_disc), None)
        if discriminator is not None:
            kind = value.get(discriminator)
            path = f"{target}.{discriminator}" if target else discriminator
            if kind is None:
                problems.append(Problem(path, "RequiredField", f"{path}: required property is missing; one of "
                                                               f"{', '.join(sorted(mapping))}"))
                return
            if kind not in mapping:
                problems.append(Problem(path, "InvalidValue", f"{path}: unknown value {kind!r}; one of "
                                                              f"{', '.join(sorted(mapping))}"))
                return
            sub = mapping[kind]
            if sub is not cls:
                _check_model(value, sub, target, problems)
                return
    for name, hint, required, _ in _fields(cls):
        path = f"{target}.{name}" if target else name
        if name not in value or value[name] is None:
            if required:
                problems.append(Problem(path, "RequiredField", f"{path}: required property is missing"))
            continue
        _check_value(value[name], hint, path, problems)


# -- which model a route's body is ---------------------------------------------------------------
BODY_MODELS = {
    "jobs": "JobBase",
    "components": "ComponentVersion",
    "codes": "CodeVersion",
    "environments": "EnvironmentVersion",
    "data": "DataVersionBase",
    "models": "ModelVersion",
    "computes": "ComputeResource",
}


def check_resource(kind: str, body: Any) -> list[Problem]:
    """Problems of the body of ``PUT .../<kind>/...`` (``kind`` a key of ``BODY_MODELS``)."""
    return check(body, getattr(models(), BODY_MODELS[kind]))
