"""Backends add their own options to ``amlstep run`` (``register_run_options``): another cloud needs no edit of cli.py."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from framework import BackendError, PipelineRunResult, get_plugin_manager, hookimpl
from framework.cli import make_cli

from conftest import REPO

TITANIC = REPO / "examples" / "titanic"


class OtherCloud:
    """A backend of another cloud, with options of its own; ``--dry-run`` it shares with the azure backend."""

    made: list[dict] = []

    @hookimpl
    def register_backends(self, register):
        def make(**options):
            OtherCloud.made.append(options)
            return Cloud(**options)

        register("othercloud", make)

    @hookimpl
    def register_run_options(self, register, plugins):
        def convert(values):
            if values["zones"] is not None and values["zones"] < 1:
                raise BackendError("--zones must be at least 1")
            return {"region": values["region"] or "north", **({"dry_run": True} if values["dry_run"] else {})}

        register("othercloud", [click.Option(["--region"], metavar="NAME", help="othercloud: the region [north]."),
                                click.Option(["--zones"], type=int, help="othercloud: zones to spread over."),
                                click.Option(["--dry-run"], is_flag=True, help="othercloud: print the plan.")], convert)


class Cloud:
    name = "othercloud"

    def __init__(self, workspace=None, echo=None, region="north", dry_run=False):
        self.region = region

    def plan(self, pipeline, *, plugins, params=None):
        return {"region": self.region, "steps": [s.name for s in pipeline.steps]}

    def format_plan(self, plan):
        return f"plan for {plan['region']}: {', '.join(plan['steps'])}"

    def run(self, pipeline, *, plugins, params=None, reuse=True):
        return PipelineRunResult(run_id="cloud-1", experiment=pipeline.experiment, status="Completed",
                                 backend=self.name, details={"region": self.region})


@pytest.fixture
def cli(tmp_path):
    OtherCloud.made.clear()
    plugins = get_plugin_manager(plugins=[OtherCloud()])

    def invoke(*args):
        return CliRunner().invoke(make_cli(plugins), ["--workspace", str(tmp_path / "ws"), *args])

    return invoke


def test_a_backend_brings_its_options_and_gets_their_values(cli):
    shown = cli("run", "--help").stdout
    assert "--region NAME" in shown and "othercloud: the region [north]." in shown
    assert shown.index("--sdk") < shown.index("--region") < shown.index("--help")  # after azure's, before --help
    done = cli("run", str(TITANIC), "--backend", "othercloud", "--region", "south", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["details"] == {"region": "south"}
    assert OtherCloud.made[-1]["region"] == "south" and "compute" not in OtherCloud.made[-1]


def test_a_shared_option_serves_both_backends(cli):
    planned = cli("run", str(TITANIC), "--backend", "othercloud", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert planned.stdout == "plan for north: dataprep, AutoML_Classification, register_model\n"
    refused = cli("run", str(TITANIC), "--dry-run")
    assert refused.exit_code == 2 and "Error: --dry-run applies to --backend azure or othercloud only" in refused.output


@pytest.mark.parametrize("args, message", [
    (["--region", "south"], "Error: --region applies to --backend othercloud only"),
    (["--backend", "azure", "--zones", "2"], "Error: --zones applies to --backend othercloud only"),
    (["--backend", "othercloud", "--compute", "c"], "Error: --compute applies to --backend azure only"),
    (["--backend", "othercloud", "--zones", "0"], "Error: --zones must be at least 1"),
])
def test_options_of_another_backend_and_bad_values_are_refused(cli, args, message):
    refused = cli("run", str(TITANIC), *args)
    assert refused.exit_code == 2 and message in refused.output, refused.output


def test_a_backend_registering_twice_gets_both_options():
    """The local backend registers --only/--from/--to/--sample; another plugin may add a local option of its own."""
    from framework.cli import BackendOptions

    class LocalExtra:
        @hookimpl
        def register_run_options(self, register):
            register("local", [click.Option(["--tag"])], lambda values: {"tag": values["tag"]} if values["tag"] else {})

    options = BackendOptions(get_plugin_manager(plugins=[LocalExtra()]))
    values = {"only": ("prep,train",), "from_step": None, "to_step": None, "sample": None, "tag": "t"}
    assert options.options("local", values) == {"only": ["prep", "train"], "tag": "t"}
    assert options.options("local", {**values, "only": (), "tag": None}) == {}
