"""What runs on the cluster, whatever the SDK: the entry script hands over here, and here to the step's SDK.

``script/amlstep_entry.py`` is the script every compiled step runs (shipped as the step's code;
amlstep and the plugin's distribution are installed from the wheels shipped with it). Its first
arguments name the SDK the step was compiled with (``--amlstep-sdk NAME``; none: ``v1``), whose
compiler runs the step (``Compiler.entry``: ``sdk_v1.entry``, ``sdk_v2.entry``). Every SDK's
arguments start alike (:func:`parse_arguments`)::

    [--amlstep-sdk NAME] --amlstep-step NAME --amlstep-plugin PLUGIN --amlstep-code HASH
    [--param NAME VALUE]...        parameters as text (pipeline parameters arrive resolved)
    [--dataset PORT INPUT_NAME]... (SDK v1) registered datasets, by their name among the run's inputs
    [--input PORT PATH]...         data from upstream steps (mounted or downloaded paths)
    [--output PORT PATH]...        folders to write the step's outputs into

and every SDK checks the plugin's code (:func:`check_code`) and reads its parameters
(:func:`step_params`) the same way before the step runs through ``framework.execution``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import StepExecutionError
from ...steps import StepSpec

DEFAULT_SDK = "v1"  # a step compiled by SDK v1 names no SDK (its arguments predate the others)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the step the arguments describe, with the SDK they name."""
    from ...manager import get_plugin_manager
    from .compilers import get

    argv = list(sys.argv[1:] if argv is None else argv)
    sdk = argv[1] if argv[:1] == ["--amlstep-sdk"] and len(argv) > 1 else DEFAULT_SDK
    plugins = get_plugin_manager()
    get(plugins, sdk).entry(argv, plugins=plugins)


def parse_arguments(argv: Sequence[str], *, sdk: str, ports: Sequence[str], description: str) -> argparse.Namespace:
    """The step's arguments: ``--amlstep-*`` (``.sdk``, ``.step``, ``.plugin``, ``.code``), then ``--PORT NAME VALUE``
    pairs for each of ``ports`` (``param``, ``input``, ...), as lists."""
    parser = argparse.ArgumentParser(prog="amlstep_entry.py", description=description)
    parser.add_argument("--amlstep-sdk", dest="sdk", default=sdk)
    parser.add_argument("--amlstep-step", dest="step", required=True)
    parser.add_argument("--amlstep-plugin", dest="plugin", required=True)
    parser.add_argument("--amlstep-code", dest="code", default="")
    for flag in ports:
        parser.add_argument(f"--{flag}", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    return parser.parse_args(list(argv))


def step_params(spec: StepSpec, texts: Mapping[str, str], step: str) -> Any:
    """The step's parameters from their texts on the command line (Azure passes every value as a string)."""
    where = f"step {step!r}"
    if spec.settings_validator is not None:
        return spec.build_params(dict(texts), where)
    values = {}
    for name, text in texts.items():
        declared = spec.param(name)
        if declared is None:
            raise StepExecutionError(f"{where}: plugin {spec.name!r} has no parameter {name!r}", step=step)
        values[name] = declared.parse(text, where)
    return spec.build_params(values, where)


def output_folders(outputs: Sequence[tuple[str, str]]) -> dict[str, Path]:
    """``--output PORT PATH`` pairs as folders, created."""
    folders = {}
    for port, path in outputs:
        folders[port] = Path(path)
        folders[port].mkdir(parents=True, exist_ok=True)
    return folders


def check_code(args: argparse.Namespace, spec: StepSpec, plugins: Any) -> None:
    """Refuse to run plugin code other than the code the submission was compiled from."""
    if not args.code:
        return
    from ...reuse import code_hash

    actual = code_hash(spec)
    if actual.startswith(args.code) or args.code.startswith(actual):
        return
    owner = plugins.step_owners.get(args.plugin)
    dist = plugins.distributions.get(owner or "") or "its distribution"
    raise StepExecutionError(
        f"step {args.step!r}: the code of plugin {args.plugin!r} here has source hash {actual[:16]}, but the "
        f"submission was compiled from source hash {args.code[:16]}: the wheel of {dist} shipped with the step "
        f"was not built from the code amlstep loaded when it compiled the pipeline (another copy of the plugin "
        f"shadows the installed distribution, or the plugin changed in between). Make the installed distribution "
        f"the only copy of the plugin (pip install -e its project), then submit again", step=args.step)
