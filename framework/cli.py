"""The ``amlstep`` command line. Plugins add commands through the ``register_commands`` hook.

Exit codes: 0 success; 1 a run that failed or was canceled; 2 bad input (usage, validation,
unknown names), reported before anything runs; 3 a run submitted to Azure that amlstep could not
follow to its end (still running there, as far as anyone knows: ``amlstep runs follow RUN_ID``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click

from .commands.common import (  # noqa: F401 (re-exported: commands and tests read them here)
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_UNKNOWN,
    PROG,
    State,
    emit_json,
    fail,
    handle_errors,
    invoked_as,
    pass_state,
    seconds,
    suggested,
    table,
    when,
)
from .errors import AmlStepError, RunCanceled
from .manager import Plugins, get_plugin_manager
from .workspace.names import short_id


def make_cli(plugins: Plugins | None = None) -> click.Group:
    """A fresh ``amlstep`` command group; ``plugins`` replaces entry-point discovery (for tests)."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--workspace", "-w", envvar="AMLSTEP_WORKSPACE", type=click.Path(file_okay=False),
                  help="Local workspace directory [env AMLSTEP_WORKSPACE; default ~/.amlstep].")
    @click.version_option(package_name="amlstep")
    @click.pass_context
    def cli(ctx: click.Context, workspace: str | None) -> None:
        """amlstep: plugin-based Azure ML pipeline steps, runnable offline."""
        ctx.obj = State(workspace, plugins)

    for command in COMMANDS:
        cli.add_command(command)
    return cli


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the steps (ports, parameters) and backends.")
@pass_state
@handle_errors
def plugins_command(state: State, as_json: bool) -> None:
    """List step plugins: inputs, outputs, parameters."""
    found = state.plugins
    described = [{**spec.describe(), "plugin": found.owner(name)} for name, spec in sorted(found.steps.items())]
    if as_json:
        emit_json({"steps": described, "backends": sorted(found.backends)})
        return
    for step in described:
        click.echo(f"{step['name']}  [{step['plugin']}]" + ("" if step["allow_reuse"] else "  (allow_reuse=False)"))
        if step["description"]:
            click.echo(f"  {step['description']}")
        for port in step["inputs"]:
            optional = " (optional)" if port["optional"] else ""
            click.echo(f"  in   {port['name']}: {port['type']}{optional}{_explained(port)}")
        for port in step["outputs"]:
            click.echo(f"  out  {port['name']}: {port['type']}{_explained(port)}")
        for param in step["params"]:
            default = "required" if param["required"] else f"default {param['default']!r}"
            click.echo(f"  param {param['name']}: {param['type']} ({default}){_explained(param)}")
        click.echo()
    click.echo(f"backends: {', '.join(sorted(found.backends))}")


def _explained(declared: dict[str, Any]) -> str:
    return f" - {declared['description']}" if declared.get("description") else ""


def parse_params(values: Iterable[str]) -> dict[str, str]:
    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--param expects NAME=VALUE, got {item!r}")
        params[name.strip()] = value
    return params


class BackendOptions:
    """What the backends add to ``amlstep run`` (``register_run_options``): their options, and how each
    backend turns their values into its options. Two backends may declare the same option: they share it."""

    def __init__(self, plugins: Plugins) -> None:
        self.params: list[click.Parameter] = []
        self.owners: dict[str, list[str]] = {}        # parameter name -> backends that declared it
        self.flags: dict[str, str] = {}                # parameter name -> its option ("--dry-run")
        self.converters: dict[str, list[tuple[list[str], Callable[..., dict[str, Any]]]]] = {}
        hook = plugins.hook.register_run_options
        for impl in hook.get_hookimpls():  # in the order the plugins were registered
            arguments = {"register": self._register, "plugins": plugins}
            impl.function(**{name: arguments[name] for name in impl.argnames})

    def _register(self, backend: str, options: Iterable[click.Parameter],
                  convert: Callable[..., dict[str, Any]]) -> None:
        names = []
        for option in options:
            name = str(option.name)
            if name not in self.owners:
                self.params.append(option)
                self.flags[name] = option.opts[0]
            self.owners.setdefault(name, []).append(backend)
            names.append(name)
        self.converters.setdefault(backend, []).append((names, convert))  # a backend may register more than once

    def options(self, backend: str, values: dict[str, Any]) -> dict[str, Any]:
        """The options of ``backend`` from the values given; an option of another backend is an error."""
        given = [name for name, value in values.items() if value is not None and value is not False and value != ()]
        foreign = sorted((self.flags[name].lstrip("-").replace("-", "_"), name) for name in given
                         if backend not in self.owners[name])
        if foreign:
            name = foreign[0][1]
            fail(f"{self.flags[name]} applies to --backend {' or '.join(self.owners[name])} only")
        options: dict[str, Any] = {}
        for names, convert in self.converters.get(backend, []):
            options.update(convert({name: values.get(name) for name in names}))
        return options


_BACKEND_OPTIONS: weakref.WeakKeyDictionary[Any, BackendOptions] = weakref.WeakKeyDictionary()


def backend_options(plugins: Plugins) -> BackendOptions:
    """The backends' ``run`` options of one plugin manager (asked once)."""
    found = _BACKEND_OPTIONS.get(plugins.pm)
    if found is None:
        found = _BACKEND_OPTIONS[plugins.pm] = BackendOptions(plugins)
    return found


class RunCommand(click.Command):
    """``amlstep run``: its own options, then those of every backend (``register_run_options``), before ``--help``."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        state = ctx.find_object(State)
        if state is None:
            return params
        own, help_option = params[:len(self.params)], params[len(self.params):]
        return [*own, *backend_options(state.plugins).params, *help_option]


@click.command("run", cls=RunCommand)
@click.argument("pipeline")
@click.option("--backend", "-b", default="local", show_default=True, help="Where to run: local or azure.")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Override a pipeline parameter.")
@click.option("--params", "params_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Pipeline parameters from a YAML or JSON file (name: value); --param wins over it.")
@click.option("--no-reuse", is_flag=True, help="Re-run every step, whatever the reuse rule says.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result (with --dry-run: the plan).")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the result: no live progress, no step output (live progress shows when stderr is a terminal).")
@click.option("--resume", metavar="RUN_ID",
              help="Continue a Failed or Canceled run: its completed steps are not repeated.")
@pass_state
def run_command(state: State, pipeline: str, backend: str, params: tuple[str, ...], params_file: str | None,
                no_reuse: bool, as_json: bool, quiet: bool, resume: str | None, **backend_values: Any) -> None:
    """Run a pipeline, locally or on Azure.

    PIPELINE is a folder with pipeline.py, a .py file or a module name.
    """
    from .api import load_pipeline, run_pipeline
    from .progress import progress_for_run

    overrides = parse_params(params)
    options: dict[str, Any] = {"resume": resume} if resume else {}
    try:
        options.update(backend_options(state.plugins).options(backend, backend_values))
    except AmlStepError as exc:
        fail(str(exc))
        return
    try:
        definition = load_pipeline(pipeline)
        if params_file:
            overrides = {**checked_params_file(state, definition, params_file), **overrides}
        if options.pop("dry_run", False):
            with sdk_quiet(state, backend):
                compiled = compiled_plan(state, backend, definition, overrides, options)
            print_plan(compiled, as_json)
            return
        # live progress on stderr when it is a terminal; plain step output otherwise; nothing with --quiet
        with cancel_on_sigterm(), progress_for_run(quiet=quiet, workspace=state.workspace) as echo, \
                sdk_quiet(state, backend):
            result = run_pipeline(definition, backend=backend, params=overrides, reuse=not no_reuse,
                                  workspace=state.workspace, plugins=state.plugins, echo=echo, **options)
    except RunCanceled as exc:
        if as_json and exc.result is not None:
            emit_json(exc.result.to_dict())
        fail(str(exc), EXIT_FAILED)
        return
    except AmlStepError as exc:
        fail(str(exc))
        return
    if as_json:
        emit_json(result.to_dict())
    else:
        table(f"Run {result.run_id} ({result.experiment}): {result.status}",
              ["step", "status", "reused", "duration", "why"],
              [(s.name, s.status, "yes" if s.reused else "no", seconds(s.duration),
                s.error or "; ".join(s.reasons)) for s in result.steps])
        for name, path in result.outputs.items():
            click.echo(f"output {name}: {path}")
        for problem in result.details.get("download_errors", {}).values():
            click.echo(f"warning: {problem}", err=True)
        if result.details.get("portal_url"):
            click.echo(f"portal: {result.details['portal_url']}")
        for line in local_run_notes(result):
            click.echo(line)
        if result.backend == "local" and "report" in click.get_current_context().find_root().command.commands:  # type: ignore[attr-defined]
            click.echo(f"report: {PROG[0]} report {short_id(result.run_id)} --out report.html")
        if result.error:
            click.echo(f"Error: {result.error}", err=True)
        for step in result.steps:
            if step.status == "Failed" and (step.traceback or step.log_path):
                click.echo(f"step {step.name!r} failed:", err=True)
                if step.traceback:
                    click.echo(step.traceback.rstrip(), err=True)
                if step.log_path:
                    click.echo(f"  full log: {step.log_path}  ({PROG[0]} runs logs {short_id(result.run_id)} {step.name})",
                               err=True)
    if result.status == "Running" and result.details.get("wait") is False:
        if not as_json and result.details.get("follow"):
            click.echo(f"follow it: {suggested('`' + result.details['follow'] + '`').strip('`')}", err=True)
        return
    if result.details.get("state_unknown"):
        sys.exit(EXIT_UNKNOWN)
    if not result.succeeded:
        sys.exit(EXIT_FAILED)


def checked_params_file(state: State, definition: Any, path: str) -> dict[str, Any]:
    """The parameters of a ``--params`` file, checked against the pipeline's (unknown names, types), naming the file."""
    from .commands.run_options import read_params_file
    from .errors import PipelineValidationError

    values = read_params_file(path)
    try:
        definition.validate(state.plugins).resolve_parameters(values)
    except PipelineValidationError as exc:
        raise PipelineValidationError(f"--params {path}: {exc}") from None
    return values


def local_run_notes(result: Any) -> list[str]:
    """What the run output says besides the steps: a partial run, a sample (local backend)."""
    lines = []
    partial = result.details.get("partial")
    if partial:
        taken = ", ".join(partial.get("taken") or {})
        lines.append(f"partial run: ran {', '.join(partial.get('selected') or [])}"
                     + (f"; took the outputs of {taken} from the run history" if taken else ""))
    sample = result.details.get("sample")
    if sample:
        from .sampling import counts_text

        counts = counts_text(sample.get("datasets") or {})
        each = "" if ";by=" in str(sample.get("key")) else " of each dataset"
        lines.append(f"sample: {sample.get('text')}{each}{f' ({counts})' if counts else ''}; its outputs are not "
                     f"reused by or from runs on the full data")
    return lines


def compiled_plan(state: State, backend: str, definition: Any, overrides: dict[str, str],
                  options: dict[str, Any]) -> tuple[Any, Any]:
    """``run --dry-run``: the backend and its compiled plan, offline."""
    validated = definition.validate(state.plugins)
    chosen: Any = state.plugins.backend(backend, dry_run=True, **{k: v for k, v in options.items() if k != "resume"})
    return chosen, chosen.plan(validated, plugins=state.plugins, params=overrides)


def print_plan(compiled: tuple[Any, Any], as_json: bool) -> None:
    chosen, plan = compiled
    if as_json:
        emit_json(plan)
    else:
        click.echo(chosen.format_plan(plan))


def sdk_quiet(state: State, backend: str) -> Any:
    """While a backend other than the local one runs, its SDK's warnings and stderr go to <workspace>/logs/sdk.log."""
    if backend == "local":
        return contextlib.nullcontext()
    from .commands.quiet import sdk_output_to_log
    from .workspace import default_workspace_path

    return sdk_output_to_log(Path(state.workspace_path).expanduser() if state.workspace_path else default_workspace_path(),
                             f"amlstep run --backend {backend}")


@click.command("explain-reuse")
@click.argument("pipeline")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Override a pipeline parameter.")
@click.option("--params", "params_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Pipeline parameters from a YAML or JSON file (name: value); --param wins over it.")
@click.option("--sample", metavar="N|FRACTION", help="Explain a run with --sample (local).")
@click.option("--sample-by", "sample_by", metavar="COLUMN[,COLUMN]", help="Explain a run with --sample-by (local).")
@click.option("--no-reuse", is_flag=True, help="Explain a run with --no-reuse.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per step, with its reasons.")
@click.option("--backend", "-b", default="local", show_default=True,
              help="Whose reuse to explain: local, or azure (from the Azure runs in the run history; offline).")
@click.option("--config", "config", metavar="PATH", type=click.Path(),
              help="azure: only count runs of the workspace this config.json names.")
@click.option("--sdk", metavar="NAME", help="azure: the SDK whose compiled steps to judge (v1, v2; default: the SDK "
                                            "of the latest Azure run in the run history, else v1).")
@pass_state
@handle_errors
def explain_reuse_command(state: State, pipeline: str, params: tuple[str, ...], params_file: str | None,
                          sample: str | None, sample_by: str | None, no_reuse: bool, as_json: bool, backend: str,
                          config: str | None, sdk: str | None) -> None:
    """Say which steps would be reused now, and why not.

    For each step of PIPELINE: would it be reused, and if not, what changed.

    The rule is the same on both backends: a step re-runs when its code, its parameters or its
    inputs changed (or allow_reuse is off, or an earlier output changed on disk). Azure applies it
    to the compiled step, whose arguments carry the code hash and the parameters. "maybe": the step
    re-runs unless the step upstream that re-runs writes the same output as before.
    """
    from .api import load_pipeline
    from .reuse import predict

    definition = load_pipeline(pipeline)
    validated = definition.validate(state.plugins)
    overrides = parse_params(params)
    if params_file:
        overrides = {**checked_params_file(state, definition, params_file), **overrides}
    sampled = None
    if sample is not None:
        from .sampling import Sample

        if backend != "local":
            fail("--sample applies to --backend local only")
        sampled = Sample.parse(sample, sample_by)
    elif sample_by is not None:
        fail("--sample-by needs --sample")
    if sdk is not None and backend == "local":
        fail("--sdk applies to --backend azure only")
    if backend != "local":
        chosen: Any = state.plugins.backend(backend, workspace=state.workspace, config=config,
                                            **({"sdk": sdk} if sdk is not None else {}))
        if not hasattr(chosen, "explain_reuse"):
            fail(f"backend {backend!r} cannot explain its reuse")
        found = chosen.explain_reuse(validated, plugins=state.plugins, params=overrides, reuse=not no_reuse)
    else:
        found = predict(validated, state.workspace, overrides, reuse=not no_reuse,
                        sample=sampled.key if sampled is not None else None)
    if as_json:
        emit_json(found)
        return
    shown = {True: "yes", False: "no", None: "maybe"}
    table(f"Reuse for {validated.experiment}", ["step", "plugin", "reused", "why"],
          [(f["step"], f["plugin"], shown[f["would_reuse"]], "; ".join(f["reasons"])) for f in found])


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so a terminated run is recorded as Canceled."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group("runs")
def runs_group() -> None:
    """Browse the run history and the logs; cancel a running run."""


@click.group("datasets")
def datasets_group() -> None:
    """Register, list and show datasets."""


@datasets_group.command("register")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True)
@click.option("--description", "-d", default="", help="What the data is (shown by datasets list and show).")
@click.option("--refresh", is_flag=True, help="Download URLs again instead of using the download cache.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the registered version.")
@pass_state
@handle_errors
def datasets_register(state: State, name: str, sources: tuple[str, ...], description: str, refresh: bool,
                      as_json: bool) -> None:
    """Register CSV files (paths or URLs) as dataset NAME.

    New content makes a new version; the same content again registers nothing.
    """
    from .workspace.sources import check_each_source_once, resolved_sources

    check_each_source_once(name, sources)  # naming the files as given, before they are resolved
    try:
        with cancel_on_sigterm():  # SIGTERM (kill, a container stopping) is Ctrl-C: staging removed, one line
            version, created = state.workspace.register_dataset(name, resolved_sources(sources),
                                                                description=description, refresh=refresh)
    except KeyboardInterrupt as exc:  # RegistrationInterrupted says whether anything was registered
        fail(str(exc) or "interrupted", EXIT_FAILED)
        return
    restored = ", ".join(map(str, version.restored))
    if as_json:
        emit_json({**version.to_dict(), "created": created, "restored_versions": list(version.restored)})
    elif created:
        click.echo(f"Registered version {version.version} of dataset {name} ({len(version.files)} file(s))"
                   + (f"; also put back the missing or changed files of version {restored}" if restored else ""))
    elif restored:
        click.echo(f"Dataset {name} version {restored} already has this content, but its files were missing or changed: "
                   f"put them back; nothing new registered")
    else:
        click.echo(f"Dataset {name} version {version.version} already has this content; nothing registered")


@datasets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per dataset version.")
@pass_state
@handle_errors
def datasets_list(state: State, as_json: bool) -> None:
    """List registered datasets and their versions."""
    found = state.workspace.list_datasets()
    if as_json:
        emit_json([d.to_dict() for d in found])
        return
    table(None, ["name", "version", "description", "files", "registered", "sources"],
          [(d.name, d.version, d.description, ", ".join(d.files), when(d.created_at), ", ".join(d.sources))
           for d in found])


@click.group("models")
def models_group() -> None:
    """List and show registered models."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per model version.")
@pass_state
@handle_errors
def models_list(state: State, as_json: bool) -> None:
    """List registered models, those of Azure runs too (azure:NAME).

    Name, version and source run; then the models the Azure runs of the run history registered in their Azure
    workspace, as predict and models show name them (azure:NAME).
    """
    from .commands.lineage import AZURE_PREFIX, azure_registrations

    found = state.workspace.list_models()
    on_azure = sorted({(f"{AZURE_PREFIX}{model.get('name')}", number, run.id, step.ended_at or step.created_at)
                       for number, _, run, step, model in azure_registrations(state.workspace)})
    if as_json:
        emit_json([m.to_dict() for m in found] + [{"name": name, "version": number, "run_id": run_id, "registry": "azure",
                                                   "created_at": created} for name, number, run_id, created in on_azure])
        return
    table(None, ["name", "version", "source run", "registered", "files"],
          [(m.name, m.version, m.run_id, when(m.created_at), ", ".join(m.files)) for m in found]
          + [(name, number, run_id, when(created), "(in the Azure workspace)") for name, number, run_id, created in on_azure])


@click.command("download")
@click.argument("run_id")
@click.argument("output_name")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--overwrite", is_flag=True, help="Replace an earlier download.")
@pass_state
@handle_errors
def download_command(state: State, run_id: str, output_name: str, directory: str, overwrite: bool) -> None:
    """Download a pipeline output of a run into DIRECTORY.

    Like run.get_pipeline_output(OUTPUT_NAME).download(DIRECTORY); DIRECTORY defaults to '.'.
    """
    from .runs import Run

    run = Run(state.workspace, state.workspace.get_run(run_id))
    reference = run.get_pipeline_output(output_name)
    target = Path(directory) / "azureml" / reference.step_run_id / reference.data_name
    if target.exists() and not overwrite:
        fail(f"{target} already exists; pass --overwrite to replace it")
    path = reference.download(Path(directory), overwrite=overwrite)
    click.echo(path)


def _browse_commands() -> None:
    """``runs list/show/logs``, ``experiments``, ``models show`` and ``datasets show`` live in commands/browse.py."""
    from .commands import browse, cancel

    runs_group.add_command(browse.runs_list)
    runs_group.add_command(browse.runs_show)
    runs_group.add_command(browse.runs_logs)
    runs_group.add_command(cancel.runs_cancel)
    models_group.add_command(browse.models_show)
    datasets_group.add_command(browse.datasets_show)
    COMMANDS.append(browse.experiments_group)


COMMANDS: list[click.Command] = [plugins_command, run_command, explain_reuse_command, runs_group, datasets_group,
                                 models_group, download_command]
_browse_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``amlstep`` console script."""
    try:
        plugins = get_plugin_manager()
    except AmlStepError as exc:
        fail(str(exc))
        return
    PROG[0] = invoked_as(sys.argv[0])
    cli = make_cli(plugins)
    plugins.hook.register_commands(cli=cli)
    cli.main(args=argv, prog_name="amlstep")


if __name__ == "__main__":  # python -m framework.cli: the commands' ``from ..cli import State`` must find this module
    sys.modules.setdefault("framework.cli", sys.modules[__name__])
    main()
