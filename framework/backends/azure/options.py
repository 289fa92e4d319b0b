"""The azure backend's options of ``amlstep run`` (through ``register_run_options``), and its backend options.

``--sdk`` offers the registered SDKs (``compilers``); each SDK may add options of its own
(``Compiler.run_options``, e.g. ``--yaml`` of ``v2``) and check how they combine
(``Compiler.backend_options``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

import click

from . import compilers
from .backend import Provisioning

if TYPE_CHECKING:
    from ...manager import Plugins


def run_options(plugins: Plugins) -> tuple[list[click.Parameter], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    """(the click options ``amlstep run`` gains, their values -> the azure backend's options)."""
    sdks = compilers.registered(plugins)
    named = [f"{name} ({sdk.packages})" if sdk.packages else name for name, sdk in sdks.items()]
    choices = " or ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    params: list[click.Parameter] = [
        click.Option(["--dry-run"], is_flag=True,
                     help="azure: build every SDK object offline and print the compiled plan; contacts nothing."),
        click.Option(["--compute"], metavar="NAME",
                     help="azure: compute target for steps that name none [default: the pipeline's, cpu-cluster]."),
        click.Option(["--no-wait"], is_flag=True, help="azure: return once submitted, without waiting or downloading "
                                                       "(`amlstep runs follow RUN_ID` follows it later)."),
        click.Option(["--outage-timeout"], type=float, default=None, metavar="SECONDS",
                     help="azure: how long following rides out a service that does not answer (5xx, 429, refused "
                          "or reset connections) before it stops, the run still running on Azure [900]."),
        click.Option(["--config", "config"], metavar="PATH", type=click.Path(),
                     help="azure: the workspace config.json (file or folder) [default: found from the current folder "
                          "up]."),
        click.Option(["--vm-size"], default=None, metavar="SIZE",
                     help="azure: VM size of a compute cluster created when missing [STANDARD_D2_V2]."),
        click.Option(["--min-nodes"], type=int, default=None, help="azure: minimum nodes of a created cluster [0]."),
        click.Option(["--max-nodes"], type=int, default=None, help="azure: maximum nodes of a created cluster [1]."),
        click.Option(["--sdk"], type=click.Choice(list(sdks)), default=None,
                     help=f"azure: the Azure ML SDK to compile to: {choices} [{compilers.DEFAULT}]."),
    ]
    for sdk in sdks.values():
        params += sdk.run_options()

    def convert(values: Mapping[str, Any]) -> dict[str, Any]:
        chosen = values.get("sdk")
        options: dict[str, Any] = {}
        for sdk in sdks.values():  # an SDK's own options first: a combination that cannot work is refused
            options.update(sdk.backend_options(values, chosen))
        if values.get("dry_run"):
            options["dry_run"] = True
        options.update({"compute": values.get("compute"), "wait": not values.get("no_wait"),
                        "config": values.get("config")})
        if values.get("outage_timeout") is not None:
            options["outage_timeout"] = values["outage_timeout"]
        provisioning = {k: values[k] for k in ("vm_size", "min_nodes", "max_nodes") if values.get(k) is not None}
        if provisioning:
            options["provisioning"] = Provisioning(**provisioning)
        if chosen:
            options["sdk"] = chosen
        return options

    return params, convert
