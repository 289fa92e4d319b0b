"""While `amlstep run` drives a remote backend, its SDK's warnings and progress bars go to logs/sdk.log."""

from __future__ import annotations

import sys
import warnings

import pytest
from click.testing import CliRunner

from framework import PipelineRunResult, get_plugin_manager, hookimpl
from framework.cli import make_cli

from tests.toy_steps import ToySteps

from .conftest import invoke


class NoisyBackend:
    """Warns and draws a progress bar on stderr as the Azure ML SDKs do; says its own things on ``echo``."""

    name = "noisy"

    def __init__(self, workspace=None, *, echo=None):
        self.echo = echo

    def run(self, pipeline, *, plugins, params=None, reuse=True, resume=None):
        warnings.warn("FileType Enum is Deprecated in > 1.0.39. Use strings instead.", DeprecationWarning, stacklevel=2)
        sys.stderr.write("Uploading code (0.0 MBs): 100%|##########| 334/334\r\n")
        print(f"submitted pipeline run r1 to experiment {pipeline.experiment!r}", file=self.echo)
        return PipelineRunResult(run_id="r1", experiment=pipeline.experiment, status="Completed", backend="noisy")


class Noisy:
    @hookimpl
    def register_backends(self, register):
        register("noisy", NoisyBackend)


def test_sdk_warnings_and_progress_bars_go_to_the_log(workspace, tmp_path):
    (tmp_path / "toy.py").write_text("from framework import Pipeline, Step\n"
                                     "pipeline = Pipeline([Step('make_table')], experiment='toys')\n")
    app = make_cli(get_plugin_manager(plugins=[ToySteps(), Noisy()]))
    ran = CliRunner().invoke(app, ["--workspace", str(workspace.path), "run", str(tmp_path / "toy.py"), "-b", "noisy"])
    assert ran.exit_code == 0, ran.output
    assert "submitted pipeline run r1 to experiment 'toys'" in ran.stderr  # amlstep's own words stay
    assert "Deprecated" not in ran.output and "Uploading" not in ran.output
    log = (workspace.path / "logs" / "sdk.log").read_text()
    assert "DeprecationWarning: FileType Enum is Deprecated" in log and "Uploading code" in log


@pytest.mark.slow
@pytest.mark.fake_azure(execute=False)
def test_sdk_v2_upload_progress_stays_out_of_the_output(fake_azure_v2, titanic_csv, tmp_path):
    from tests.framework.backends.azure.conftest import TITANIC

    workspace = fake_azure_v2.local_workspace
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    config = fake_azure_v2.config(tmp_path)
    ran = invoke(workspace, "run", str(TITANIC), "--backend", "azure", "--sdk", "v2", "--config", str(config), "--json")
    assert ran.exit_code == 0, ran.output
    assert "Uploading" not in ran.stderr and "it/s" not in ran.stderr, ran.stderr
    assert "Uploading amlstep" in (workspace.path / "logs" / "sdk.log").read_text()
