"""The Azure SDKs by name: every :class:`~.compiled.Compiler` the plugins register (``register_azure_sdks``).

amlstep's own (``v1``: azureml-core, the default; ``v2``: azure-ai-ml) are plugins like any other,
registered through their entry points (``sdk_v1``, ``sdk_v2``); a third SDK is a plugin that
registers its compiler, with no edit here or in the command line (``--sdk`` lists what is
registered). The backend asks for its SDK by name once the plugins are known.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ...errors import BackendError, PluginLoadError
from .compiled import Compiler

if TYPE_CHECKING:
    from ...manager import Plugins

DEFAULT = "v1"
_FOUND: weakref.WeakKeyDictionary[Any, dict[str, Compiler]] = weakref.WeakKeyDictionary()


def registered(plugins: Plugins) -> dict[str, Compiler]:
    """The compilers the plugins register, by name: amlstep's own first, then the others, as registered."""
    known = _FOUND.get(plugins.pm)
    if known is not None:
        return known
    found: dict[str, Compiler] = {}
    owners: dict[str, str] = {}
    for impl in plugins.pm.hook.register_azure_sdks.get_hookimpls():  # in the order the plugins were registered
        def register(compiler: Compiler, _owner: str = impl.plugin_name) -> None:
            if not isinstance(compiler, Compiler) or not compiler.name:
                raise PluginLoadError(f"plugin {_owner!r} registered {compiler!r}; register_azure_sdks expects a "
                                      f"named framework.backends.azure.Compiler")
            if compiler.name in found:
                raise PluginLoadError(f"Azure SDK {compiler.name!r} is registered twice: by plugin "
                                      f"{owners[compiler.name]!r} and by plugin {_owner!r}")
            found[compiler.name], owners[compiler.name] = compiler, _owner

        try:
            impl.function(register=register)
        except PluginLoadError:
            raise
        except Exception as exc:
            raise PluginLoadError(f"plugin {impl.plugin_name!r} raised while registering Azure SDKs: "
                                  f"{type(exc).__name__}: {exc}") from exc
    # amlstep's own first (the default leads), then the plugins', each in the order they were registered
    own = [name for name in found if plugins.distributions.get(owners[name]) == "amlstep"]
    found = {name: found[name] for name in [*own, *(name for name in found if name not in own)]}
    _FOUND[plugins.pm] = found
    return found


def names(plugins: Plugins) -> tuple[str, ...]:
    """The ``--sdk`` values."""
    return tuple(registered(plugins))


def get(plugins: Plugins, sdk: str | None = None) -> Compiler:
    """The compiler of ``sdk`` (None: the default, ``v1``); an unknown name lists the registered ones."""
    found = registered(plugins)
    name = sdk or DEFAULT
    if name not in found:
        raise BackendError(f"unknown Azure SDK {name!r}; choose one of: "
                           + ", ".join(f"{k} ({v.label})" for k, v in found.items()))
    return found[name]
