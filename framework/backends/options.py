"""A backend's options: the keyword parameters of its factory; an unknown one is refused with "did you mean"."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

from ..errors import BackendError, did_you_mean


def accepted_options(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword options ``factory`` takes, or None when it takes any (``**options``: it checks them itself)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return named_options(factory)


def named_options(factory: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword options ``factory`` names (a ``**options`` it also takes aside)."""
    parameters = inspect.signature(factory).parameters.values()
    return tuple(p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                          inspect.Parameter.KEYWORD_ONLY) and p.name != "self")


def check_options(backend: str, options: Iterable[str], accepted: Iterable[str]) -> None:
    """Refuse the ``options`` backend ``backend`` does not take, naming the close ones and the valid ones.

    Raises BackendError: ``backend 'local' does not take option 'dry_run'; its options: echo, workspace``.
    """
    valid = sorted(accepted)
    unknown = [name for name in options if name not in valid]
    if not unknown:
        return
    named = ", ".join(f"{name!r}{did_you_mean(name, valid)}" for name in unknown)
    raise BackendError(f"backend {backend!r} does not take option{'s' if len(unknown) > 1 else ''} {named}; "
                       f"its options: {', '.join(valid) or '(none)'}")
