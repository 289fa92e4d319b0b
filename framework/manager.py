"""Plugin discovery: entry points of the group ``amlstep``, loaded into a fresh pluggy manager."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import AmlStepError, PluginLoadError
from .errors import did_you_mean
from .steps import StepSpec

if TYPE_CHECKING:
    from .backends import Backend

ENTRY_POINT_GROUP = hookspecs.PROJECT


@dataclass
class Plugins:
    """A plugin manager plus what its plugins registered (steps and backends)."""

    pm: pluggy.PluginManager
    steps: dict[str, StepSpec] = field(default_factory=dict)
    step_owners: dict[str, str] = field(default_factory=dict)
    backends: dict[str, Callable[..., Backend]] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def step(self, name: str, where: str = "") -> StepSpec:
        """The step plugin called ``name``; the error suggests close names."""
        try:
            return self.steps[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
            raise PluginLoadError(
                f"{prefix}unknown step plugin {name!r}{did_you_mean(name, self.steps)}; "
                f"installed step plugins: {', '.join(sorted(self.steps)) or '(none)'}"
            ) from None

    def backend(self, name: str, **options: Any) -> Backend:
        """Build the backend called ``name`` with ``options``; an option it does not take is a BackendError."""
        from .backends.options import accepted_options, check_options

        try:
            factory = self.backends[name]
        except KeyError:
            raise PluginLoadError(
                f"unknown backend {name!r}{did_you_mean(name, self.backends)}; "
                f"available backends: {', '.join(sorted(self.backends))}"
            ) from None
        accepted = accepted_options(factory)
        if accepted is not None:
            check_options(name, options, accepted)
        return factory(**options)

    def owner(self, step_name: str) -> str:
        """'plugin (distribution)' that registered a step, for messages and the plugin list."""
        plugin = self.step_owners.get(step_name, "?")
        dist = self.distributions.get(plugin)
        return f"{plugin} ({dist})" if dist else plugin


def get_plugin_manager(*, entry_points: bool = True, plugins: Iterable[object] = ()) -> Plugins:
    """A fresh plugin manager with the ``amlstep`` entry points and ``plugins`` registered.

    Raises PluginLoadError naming the entry point and its distribution when a plugin fails to
    import, and when a plugin implements a hook that does not exist (``check_pending``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    distributions: dict[str, str] = {}
    if entry_points:
        for ep in _entry_points():
            if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            dist = _dist_name(ep)
            try:
                with contextlib.redirect_stdout(sys.stderr):  # what a plugin prints must not land in --json output
                    module = ep.load()
            except SystemExit as exc:
                raise PluginLoadError(
                    f"plugin entry point {ep.name!r} = {ep.value!r} from distribution {dist!r} called "
                    f"sys.exit({exc.code!r}) while being imported; a plugin must not end the program"
                ) from exc
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin entry point {ep.name!r} = {ep.value!r} from distribution {dist!r} "
                    f"failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            _register(pm, module, ep.name, f"entry point {ep.name!r} from distribution {dist!r}")
            distributions[ep.name] = dist
    for plugin in plugins:
        _register(pm, plugin, None, f"plugin {plugin!r}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from exc
    result = Plugins(pm=pm, distributions=distributions)
    _collect(result)
    return result


def _entry_points() -> list[metadata.EntryPoint]:
    """The ``amlstep`` entry points, one per name; two distributions claiming one name is an error."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        first = found.setdefault(ep.name, ep)
        if first is not ep and (_dist_name(first), first.value) != (_dist_name(ep), ep.value):
            claims = " and ".join(f"{e.value!r} by distribution {_dist_name(e)!r}"
                                  for e in sorted((first, ep), key=_dist_name))
            raise PluginLoadError(f"plugin entry point {ep.name!r} is declared twice: {claims}; "
                                  f"uninstall one or rename its entry point and step")
    return list(found.values())


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "unknown distribution"


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None, what: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"{what} is not a valid amlstep plugin: {exc}") from exc
    except ValueError as exc:
        raise PluginLoadError(f"{what} could not be registered: {exc}") from exc


def _collect(plugins: Plugins) -> None:
    """Ask every plugin for its steps and backends, remembering who registered what."""
    pm = plugins.pm
    for impl in reversed(pm.hook.register_steps.get_hookimpls()):
        def register_step(spec: StepSpec, _owner: str = impl.plugin_name) -> None:
            if not isinstance(spec, StepSpec):
                raise PluginLoadError(
                    f"plugin {_owner!r} registered {spec!r}; register_steps expects StepSpec objects"
                )
            if spec.name in plugins.steps:
                raise PluginLoadError(
                    f"step plugin {spec.name!r} is registered twice: by {plugins.owner(spec.name)} "
                    f"and by {_owner}"
                )
            plugins.steps[spec.name] = spec
            plugins.step_owners[spec.name] = _owner

        _call_registration(impl, register_step)
    for impl in reversed(pm.hook.register_backends.get_hookimpls()):
        def register_backend(name: str, factory: Callable[..., Any], _owner: str = impl.plugin_name) -> None:
            if name in plugins.backends:
                raise PluginLoadError(f"backend {name!r} is registered twice (again by plugin {_owner!r})")
            plugins.backends[name] = factory

        _call_registration(impl, register_backend)


def _call_registration(impl: Any, register: Callable[..., None]) -> None:
    try:
        with contextlib.redirect_stdout(sys.stderr):
            impl.function(register=register)
    except SystemExit as exc:
        raise PluginLoadError(f"plugin {impl.plugin_name!r} called sys.exit({exc.code!r}) while registering; a "
                              f"plugin must not end the program") from exc
    except PluginLoadError:
        raise
    except AmlStepError as exc:
        raise PluginLoadError(f"plugin {impl.plugin_name!r} failed to register: {exc}") from exc
    except Exception as exc:
        raise PluginLoadError(
            f"plugin {impl.plugin_name!r} raised while registering: {type(exc).__name__}: {exc}"
        ) from exc
