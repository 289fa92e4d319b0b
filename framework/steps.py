"""How a step plugin declares itself: its ports, its parameters and the function that runs it."""

from __future__ import annotations

import enum
import inspect
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .errors import AmlStepError, StepDefinitionError
from .errors import did_you_mean

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTEXT_ARGUMENT = "context"


class DataType(str, enum.Enum):
    """The kinds of data that flow between steps."""

    TABULAR = "tabular"
    FOLDER = "folder"
    MODEL = "model"
    METRICS = "metrics"
    LEARNED = "learned"
    """What a step learned from its training rows (bins, fill values, encodings): a JSON object
    written as ``learned.json``. The step's run function also takes an argument of the output's
    name: None while it learns (a pipeline run), the recorded object when it applies what it
    learned to new rows (``amlstep predict``)."""

    def __str__(self) -> str:
        return self.value


def can_feed(source: DataType, target: DataType) -> bool:
    """Whether an output of type ``source`` may feed an input of type ``target``.

    Types must match, except that tabular data is also a folder of files.
    """
    return source == target or (source is DataType.TABULAR and target is DataType.FOLDER)


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise StepDefinitionError(
            f"{what} name {name!r} is not valid: use letters, digits and underscores, not starting with a digit"
        )
    return name


@dataclass(frozen=True)
class Input:
    """A named, typed input port."""

    name: str
    type: DataType = DataType.TABULAR
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Output:
    """A named, typed output port."""

    name: str
    type: DataType = DataType.TABULAR
    description: str = ""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
PARAM_TYPES: tuple[type, ...] = (str, int, float, bool)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    """A typed parameter with a default (``REQUIRED`` when it has none)."""

    name: str
    type: type = str
    default: Any = REQUIRED
    description: str = ""
    choices: tuple[Any, ...] | None = None
    validator: Callable[[Any], Any] | None = field(default=None, compare=False)
    """Called with the value; raises ValueError (or an AmlStepError) with a message when it is wrong."""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` as this parameter's type, or raise naming ``where``."""
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            as_text = (f"; text in quotes ('{value}') if that is what you meant"
                       if self.type is str and isinstance(value, (int, float)) and not isinstance(value, bool) else "")
            raise StepDefinitionError(
                f"{where}: parameter {self.name!r} expects {self.type.__name__}, "
                f"got {type(value).__name__} {value!r}{as_text}"
            )
        if self.choices is not None and value not in self.choices:
            raise StepDefinitionError(
                f"{where}: parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}"
            )
        if self.validator is not None:
            try:
                self.validator(value)
            except (ValueError, AmlStepError) as exc:
                raise StepDefinitionError(f"{where}: parameter {self.name!r}: {exc}") from None
        return value

    def parse(self, text: str, where: str) -> Any:
        """Parse a command-line string into this parameter's type."""
        try:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(text)
                value: Any = lowered in _TRUE
            else:
                value = self.type(text)
        except ValueError:
            raise StepDefinitionError(
                f"{where}: parameter {self.name!r} expects {self.type.__name__}, got {text!r}"
            ) from None
        return self.check(value, where)

    def format(self, value: Any) -> str:
        """The string form that ``parse`` reads back to ``value``."""
        return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class StepSpec:
    """The declaration of a step plugin.

    Args:
        name: unique plugin name, used in pipelines (``Step("dataprep_titanic")``).
        run: plain function called with one keyword per input and parameter, plus ``context``
            if it accepts it; returns a dict ``{output_name: value}`` (or None).
        inputs, outputs, params: the declared ports and parameters.
        allow_reuse: whether an unchanged run may reuse earlier outputs by default.
        kind: ``"python"`` for plugin steps; ``"automl"`` for the built-in AutoML step.
    """

    name: str
    run: Callable[..., Any]
    inputs: Sequence[Input] = ()
    outputs: Sequence[Output] = ()
    params: Sequence[Param] = ()
    allow_reuse: bool = True
    description: str = ""
    kind: str = "python"
    source_modules: tuple[str, ...] = ()
    settings_validator: Callable[[dict[str, Any], str], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "params", tuple(self.params))
        self.validate()

    def validate(self) -> None:
        where = f"step plugin {self.name!r}"
        check_name(self.name, "step plugin")
        if not callable(self.run):
            raise StepDefinitionError(f"{where}: run must be a function, got {type(self.run).__name__}")
        seen: dict[str, str] = {}
        for kind, items, cls in (("input", self.inputs, Input), ("output", self.outputs, Output),
                                 ("parameter", self.params, Param)):
            for item in items:
                if not isinstance(item, cls):
                    raise StepDefinitionError(
                        f"{where}: {kind}s must be {cls.__name__}(...) objects, got {item!r}"
                    )
                check_name(item.name, f"{where}: {kind}")
                if item.name == CONTEXT_ARGUMENT:
                    raise StepDefinitionError(f"{where}: {kind} name 'context' is reserved for the run context")
                if item.name in seen:
                    raise StepDefinitionError(
                        f"{where}: {kind} {item.name!r} clashes with the {seen[item.name]} of the same name"
                    )
                seen[item.name] = kind
                if cls is not Param and not isinstance(item.type, DataType):
                    try:
                        object.__setattr__(item, "type", DataType(item.type))
                    except ValueError:
                        raise StepDefinitionError(
                            f"{where}: {kind} {item.name!r} has type {item.type!r}; "
                            f"expected one of {[t.value for t in DataType]}"
                        ) from None
        for param in self.params:
            if param.type not in PARAM_TYPES:
                raise StepDefinitionError(
                    f"{where}: parameter {param.name!r} has type {param.type!r}; "
                    f"expected one of {[t.__name__ for t in PARAM_TYPES]}"
                )
            if not param.required:
                param.check(param.default, f"{where} default")
        if self.kind == "python":
            self._check_signature(where)

    def _check_signature(self, where: str) -> None:
        try:
            signature = inspect.signature(self.run)
        except (TypeError, ValueError):
            return
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        names = [i.name for i in self.inputs] + [p.name for p in self.params]
        for name in names:
            if name not in signature.parameters and not accepts_any:
                raise StepDefinitionError(
                    f"{where}: run function {self.run.__name__}() has no argument {name!r}; "
                    f"it must accept every input and parameter by keyword"
                )
        for output in self.learned_outputs:
            if output.name not in signature.parameters and not accepts_any:
                raise StepDefinitionError(
                    f"{where}: run function {self.run.__name__}() has no argument {output.name!r}; a step with "
                    f"learned output {output.name!r} receives it back: None while it learns from its rows, "
                    f"what it learned when it prepares new rows (e.g. `def {self.run.__name__}(..., "
                    f"{output.name}=None)`)"
                )
        names += [o.name for o in self.learned_outputs]
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            if parameter.name not in names and parameter.name != CONTEXT_ARGUMENT \
                    and parameter.default is parameter.empty:
                raise StepDefinitionError(
                    f"{where}: run function {self.run.__name__}() requires argument {parameter.name!r}, "
                    f"which is neither a declared input, a parameter nor 'context'"
                )

    @property
    def wants_context(self) -> bool:
        try:
            return CONTEXT_ARGUMENT in inspect.signature(self.run).parameters
        except (TypeError, ValueError):
            return False

    @property
    def learned_outputs(self) -> tuple[Output, ...]:
        """The outputs of type ``learned``: what the step learns from its rows and applies to new ones."""
        return tuple(o for o in self.outputs if o.type is DataType.LEARNED)

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def build_params(self, values: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
        """Merge ``values`` over the defaults, checking names and types."""
        where = where or f"step plugin {self.name!r}"
        if self.settings_validator is not None:
            return self.settings_validator(dict(values), where)
        valid = [p.name for p in self.params]
        for name in values:
            if name not in valid:
                raise StepDefinitionError(
                    f"{where}: unknown parameter {name!r}{did_you_mean(name, valid)}; valid parameters: "
                    f"{', '.join(valid) or '(none)'}"
                )
        built: dict[str, Any] = {}
        for param in self.params:
            if param.name in values:
                built[param.name] = param.check(values[param.name], where)
            elif param.required:
                raise StepDefinitionError(f"{where}: parameter {param.name!r} is required")
            else:
                built[param.name] = param.default
        return built

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (used by ``amlstep plugins --json``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "allow_reuse": self.allow_reuse,
            "inputs": [{"name": i.name, "type": i.type.value, "optional": i.optional,
                        "description": i.description} for i in self.inputs],
            "outputs": [{"name": o.name, "type": o.type.value, "description": o.description}
                        for o in self.outputs],
            "params": [{"name": p.name, "type": p.type.__name__,
                        "default": None if p.required else p.default, "required": p.required,
                        "choices": list(p.choices) if p.choices else None,
                        "description": p.description} for p in self.params],
        }
