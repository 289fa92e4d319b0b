"""Azure runs are first-class: followed through outages, re-attached, read back like local runs (issue 23).

Every scenario runs once per SDK (``v1``, ``v2``) on the executing fake service. The expensive runs
are shared by the tests that read them (module fixtures):

- ``disrupted``: Titanic on the fake, cut off for 30 s (HTTP 503) when the AutoML step starts and
  restarted (port closed 10 s, state kept) when the register step starts; the follower's clock is
  injected, so the outage costs about a second; a local run of the same pipeline in the same local
  workspace is the reference the read-back is compared with;
- ``one_workspace``: one fake workspace used by SDK v1, then v2, then v1 again, each run submitted with
  ``--no-wait`` by a command of its own and followed to its end by ``amlstep runs follow`` from another
  new process (the v2 one after an outage longer than the follower's window: exit code 3, then again).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from framework import LocalWorkspace, get_plugin_manager, hookimpl, load_pipeline, run_pipeline
from framework.backends.azure.follower import LAST_SEEN, RetryPolicy
from framework.cli import make_cli
from emulator.azure_service.testing import open_fake_azure

from .conftest import TITANIC

pytestmark = pytest.mark.slow
SDKS = ["v1", "v2"]
TITANIC_CSV = str(SHARED_DATA / "titanic.csv")
REAL_SLEEP = time.sleep


class Clock:
    """The follower's clock: it moves when the follower waits, a poll takes at most a quarter second of real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        REAL_SLEEP(min(seconds, 0.25))


class Disruptor:
    """When the AutoML step starts: the fake is cut off for 30 s (HTTP 503), then restarted (its port closed for 10 s,
    its state kept). The AutoML step waits for both to be over, so no step of the run talks to a service that is away
    (a step is Azure's business, not the follower's): what is tested is the client following the run."""

    def __init__(self, service, clock: Clock) -> None:
        self.service, self.clock = service, clock
        self.outage = self.restart = None
        self.seen: dict[str, float] = {}
        self.gate = threading.Event()
        held = service.engine.runners["automl"]

        def automl(*args):
            self.gate.wait(300)
            return held(*args)

        service.engine.runners["automl"] = automl

    @hookimpl
    def before_step_run(self, run_id, step, step_run_id):
        if step.name != "AutoML_Classification" or self.outage is not None:
            return
        self.seen["outage"] = self.clock.now
        self.outage = self.service.outage(30, clock=self.clock.time)
        threading.Thread(target=self._then_restart, daemon=True).start()

    def _then_restart(self) -> None:
        while self.outage.active:
            REAL_SLEEP(0.01)
        self.seen["restart"] = self.clock.now
        self.restart = self.service.restart(10, clock=self.clock.time)
        while self.restart.active:
            REAL_SLEEP(0.01)
        self.seen["back"] = self.clock.now
        self.gate.set()


def amlstep(workspace, plugins, *args: str):
    cli = make_cli(plugins)
    plugins.hook.register_commands(cli=cli)
    return CliRunner().invoke(cli, ["--workspace", str(workspace.path), *args])


@pytest.fixture(scope="module", params=SDKS)
def disrupted(request, tmp_path_factory, _fake_azure_cache):
    sdk = request.param
    folder = tmp_path_factory.mktemp(f"disrupted-{sdk}")
    with open_fake_azure(folder, _fake_azure_cache, sdk=sdk) as fake, pytest.MonkeyPatch.context() as patch:
        local = fake.local_workspace
        local.register_dataset("titanic_ds", [TITANIC_CSV])
        clock = Clock()
        patch.setattr(time, "sleep", lambda seconds: REAL_SLEEP(min(seconds, 0.01)))  # the SDKs' own retries: no wait
        disruptor = Disruptor(fake.service, clock)
        plugins = get_plugin_manager(plugins=[disruptor])
        echo = _Echo()
        result = fake.backend(retry=RetryPolicy(window=600, clock=clock.time, sleep=clock.sleep), echo=echo,
                              download_dir=None).run(load_pipeline(TITANIC).validate(plugins), plugins=plugins)
        patch.undo()
        reference = run_pipeline(load_pipeline(TITANIC), workspace=local, plugins=get_plugin_manager())
        yield SimpleNamespace(sdk=sdk, fake=fake, local=local, result=result, reference=reference, echo=echo.text,
                              disruptor=disruptor, clock=clock, folder=folder)


class _Echo:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _completed_with_outputs(run) -> None:
    result, local = run.result, run.local
    assert result.status == "Completed", result.error
    assert local.get_run(result.run_id).status == "Completed"
    assert set(result.outputs) == {"metrics_output", "model_output"}
    assert all(Path(p).exists() for p in result.outputs.values()), result.outputs


def test_a_30_second_outage_mid_run_is_ridden_out(disrupted):
    _completed_with_outputs(disrupted)
    outage = disrupted.disruptor.outage
    assert outage is not None and outage.refused > 0 and not outage.active
    assert disrupted.disruptor.seen["restart"] - disrupted.disruptor.seen["outage"] >= 30
    notices = [line for line in disrupted.echo.splitlines() if "Azure ML service" in line]
    assert len(notices) == 2, disrupted.echo  # one notice, then the service answers again
    assert re.search(r"did not answer while waiting for pipeline (run|job) \S+ \(HTTP 503: .*\); retrying for up to "
                     r"10 min", notices[0]), notices
    assert _outage_seconds(notices[1]) >= 40, notices  # 30 s of 503, then 10 s of a closed port


def _outage_seconds(notice: str) -> float:
    back = re.fullmatch(r"amlstep: the Azure ML service answers again \(after (\d+) (s|min)\)", notice)
    assert back, notice
    return int(back.group(1)) * (60 if back.group(2) == "min" else 1)


def test_a_restart_of_the_service_mid_run_is_ridden_out(disrupted):
    _completed_with_outputs(disrupted)
    restart = disrupted.disruptor.restart
    assert disrupted.fake.service.restarts == 1 and not restart.active  # its port refused connections for 10 s
    assert disrupted.disruptor.seen["back"] - disrupted.disruptor.seen["restart"] >= 10
    # the follower was away from the first 503 to the end of the restart, and carried on
    notices = [line for line in disrupted.echo.splitlines() if "answers again" in line]
    assert _outage_seconds(notices[0]) >= disrupted.disruptor.seen["back"] - disrupted.disruptor.seen["outage"] - 2
    assert [s.status for s in disrupted.result.steps] == ["Completed"] * 3


def _show(run, run_id):
    shown = amlstep(run.local, get_plugin_manager(), "runs", "show", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_runs_show_and_logs_read_an_azure_run_as_a_local_one(disrupted):
    azure, local = _show(disrupted, disrupted.result.run_id), _show(disrupted, disrupted.reference.run_id)
    for detail in (azure, local):
        steps = {s["name"]: s for s in detail["steps"]}
        assert [s["status"] for s in steps.values()] == ["Completed"] * 3
        assert all(s["log"] and Path(s["log"]).read_text() for s in steps.values()), detail
        automl = steps["AutoML_Classification"]
        assert len(automl["children"]) == 2 and all("AUC_weighted" in c["metrics"] for c in automl["children"])
        assert automl["properties"]["primary_metric"] == "AUC_weighted" and automl["properties"]["best_child_run_id"]
        assert automl["params"]["label_column_name"] == "Survived" and automl["metrics"]["AUC_weighted"] > 0.5
        assert steps["register_model"]["metrics"]["registered_version"] == 1  # SDK v2: logged through MLflow's "?" URI
    azure_steps = {s["name"]: s for s in azure["steps"]}
    assert set(azure_steps["dataprep"]["outputs"]) == {"prepped_data", "learned"}
    # run --json gives the Azure step run ids; the local history answers to them
    for step in disrupted.result.steps:
        assert step.run_id == azure_steps[step.name]["properties"]["azure_step_run_id"] != step.local_run_id
        assert disrupted.local.get_run(step.run_id).id == step.local_run_id
    for run_id in (disrupted.result.run_id, disrupted.reference.run_id):
        logs = amlstep(disrupted.local, get_plugin_manager(), "runs", "logs", run_id, "dataprep")
        assert logs.exit_code == 0 and "Prepared 891 rows" in logs.stdout, logs.output


def test_download_report_and_best_metric_read_an_azure_run_as_a_local_one(disrupted, tmp_path):
    plugins = get_plugin_manager()
    listed = {r["id"]: r for r in json.loads(amlstep(disrupted.local, plugins, "runs", "list", "--json").stdout)}
    for run_id in (disrupted.result.run_id, disrupted.reference.run_id):
        assert listed[run_id]["best_metric"]["name"] == "AUC_weighted"
        got = amlstep(disrupted.local, plugins, "download", run_id, "metrics_output", str(tmp_path / run_id))
        assert got.exit_code == 0, got.output
        metrics = pd.DataFrame(json.loads(Path(got.stdout.strip()).read_text()))
        assert len(metrics.columns) == 2 and "AUC_weighted" in metrics.index
        made = amlstep(disrupted.local, plugins, "report", run_id, "--out", str(tmp_path / f"{run_id}.html"), "--no-plots")
        assert made.exit_code == 0, made.output
        page = (tmp_path / f"{run_id}.html").read_text()
        assert "label <b>Survived</b> · 2 iterations" in page
        leaderboard = page.split("id='leaderboard'", 1)[1].split("</table>", 1)[0]
        assert leaderboard.count("<tr") == 3 and "MaxAbsScaler" in leaderboard  # header + the 2 children


def test_predict_uses_the_model_the_azure_run_registered_checked_by_hash(disrupted, titanic_test_csv, tmp_path):
    plugins = get_plugin_manager()
    local_out, azure_out = tmp_path / "local.csv", tmp_path / "azure.csv"
    by_local = amlstep(disrupted.local, plugins, "predict", "TitanicSurvivalInitial", str(titanic_test_csv), "--out",
                       str(local_out))
    by_azure = amlstep(disrupted.local, plugins, "predict", "azure:TitanicSurvivalInitial:1", str(titanic_test_csv),
                       "--out", str(azure_out))
    assert by_local.exit_code == 0 and by_azure.exit_code == 0, (by_local.output, by_azure.output)
    local, azure = pd.read_csv(local_out), pd.read_csv(azure_out)
    assert list(local.columns) == list(azure.columns) and len(azure) == 418
    assert azure["proba_1"].between(0, 1).all()
    # the registry's copy was hashed at read back; a model file changed on disk is refused before unpickling
    register = next(s for s in disrupted.local.get_children(disrupted.result.run_id) if s.name == "register_model")
    model = register.properties["azure_registered_models"][0]
    assert (model["name"], model["version"], len(model["sha256"])) == ("TitanicSurvivalInitial", 1, 64)
    shown = amlstep(disrupted.local, plugins, "models", "show", "azure:TitanicSurvivalInitial", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["training"]["automl_step"] == "AutoML_Classification"
    automl = next(s for s in disrupted.local.get_children(disrupted.result.run_id) if s.name == "AutoML_Classification")
    folder = disrupted.local.path / automl.outputs["model"]["path"]
    victim = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    saved = victim.read_bytes()
    try:
        victim.write_bytes(saved + b"\0")
        refused = amlstep(disrupted.local, plugins, "predict", "azure:TitanicSurvivalInitial", str(titanic_test_csv))
        assert refused.exit_code == 2 and "changed since they were downloaded from Azure" in refused.output
    finally:
        victim.write_bytes(saved)


def _as_the_service_timed_it(fake, local, run_id) -> list[str]:
    """The local records of a pipeline run and its (not reused) steps start and end when the service says they did."""
    engine, wrong = fake.service.engine, []
    records = [(local.get_run(run_id), run_id)] + [(s, s.properties["azure_step_run_id"])
                                                     for s in local.get_children(run_id) if not s.reused_from]
    for record, azure_id in records:
        service = engine.run(azure_id)
        if (record.started_at, record.ended_at) != pytest.approx((service.started, service.ended), abs=0.01):
            wrong.append(f"{record.name}: {record.started_at}-{record.ended_at} here, {service.started}-{service.ended} "
                         f"on the service")
    return wrong


def test_durations_are_the_service_s_when_followed_at_submit(disrupted):
    """The follower saw the steps late (the service away 40 s): the durations are still the service's."""
    assert _as_the_service_timed_it(disrupted.fake, disrupted.local, disrupted.result.run_id) == []
    automl = next(s for s in disrupted.result.steps if s.name == "AutoML_Classification")
    service = disrupted.fake.service.engine.run(automl.run_id)
    assert automl.duration == pytest.approx(service.ended - service.started, abs=0.01)


def test_each_trial_is_read_once_while_following(disrupted):
    """Polling reads what can change; an ended child's properties and metrics are read once."""
    automl = disrupted.fake.step_runs(disrupted.result.run_id)["AutoML_Classification"]
    children = [c.id for c in disrupted.fake.service.engine.children(automl.id)]
    requests = disrupted.fake.service.requests
    engine = disrupted.fake.service.engine
    for child in children:
        about = [r for r in requests if child in r["path"] and "metric" in r["path"].lower()]
        # v1: one Run.get_metrics() (a request per metric name), v2: none of its own (one MLflow search lists them)
        assert len(about) <= len(engine.run(child).metric_values()) + 2, len(about)


# -- one workspace, both SDKs, commands from new processes -----------------------------------------------
def _command(env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "framework.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)
    if check:
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def one_workspace(tmp_path_factory, _fake_azure_cache):
    """SDK v1, then v2, then v1 on one fake workspace; each run submitted with --no-wait by a command, and followed to
    its end from another: the first two by `runs logs --follow` (their AutoML steps held until it follows; then read
    back by `runs follow`), the third by `runs follow`; the v2 one first while the service is away longer than the
    window.
    (Reading the run history needs no new process: `runs list/show/refresh` run in this one.)"""

    folder = tmp_path_factory.mktemp("one-workspace")
    with open_fake_azure(folder, _fake_azure_cache) as fake:
        config = fake.config(folder)
        env = _user_env(folder / "user")
        local = LocalWorkspace(env["AMLSTEP_WORKSPACE"])
        local.register_dataset("titanic_ds", [TITANIC_CSV])
        plugins = get_plugin_manager()
        runs = []
        for sdk in ("v1", "v2", "v1"):
            with held_automl(fake.service) as gate:  # the first two runs' AutoML steps wait for the gate
                if len(runs) == 2:
                    gate.set()
                submitted = json.loads(_command(env, "run", str(TITANIC), "--backend", "azure", "--sdk", sdk,
                                                "--config", str(config), "--no-wait", "--json").stdout)
                run = SimpleNamespace(sdk=sdk, submitted=submitted, lost=None, listed=None)
                if sdk == "v2":  # cut off while `runs follow` follows, longer than its window: it stops, exit code 3
                    run.lost = _follow_through_an_outage(fake.service, env, submitted["run_id"])
                    run.listed = amlstep(local, plugins, "runs", "list").stdout
                    run.refreshed = amlstep(local, plugins, "runs", "refresh").stdout  # one look: still running
                if len(runs) < 2:  # followed by `runs logs --follow` (each step's log as it ends), then read back
                    run.logs = _logs_following(env, submitted["run_id"], gate)
            run.followed = _command(env, "runs", "follow", submitted["run_id"][:8], "--json")
            run.shown = json.loads(amlstep(local, plugins, "runs", "show", submitted["run_id"], "--json").stdout)
            runs.append(run)
        yield SimpleNamespace(fake=fake, env=env, config=config, runs=runs)


@contextlib.contextmanager
def held_automl(service):
    """The fake's AutoML steps wait (in state Running) until the gate opens: no step of the run talks to the service
    meanwhile, so an outage then is the follower's business only."""
    gate = threading.Event()
    automl = service.engine.runners["automl"]
    service.engine.runners["automl"] = lambda *args: (gate.wait(300), automl(*args))[1]
    try:
        yield gate
    finally:
        gate.set()
        service.engine.runners["automl"] = automl


def _logs_following(env, run_id, gate) -> subprocess.CompletedProcess:
    """`runs logs --follow` in a new process; the held AutoML step goes on once it follows the run (so that it has a
    run to follow however slow the machine)."""
    process = subprocess.Popen([sys.executable, "-m", "framework.cli", "runs", "logs", run_id, "--follow"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    assert process.stderr is not None
    try:
        for line in process.stderr:
            seen.append(line)
            if line.startswith("following pipeline"):
                break
    finally:
        gate.set()
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, (out[-2000:], "".join(seen)[-1500:], err[-3000:])
    return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(seen) + err)


def _follow_through_an_outage(service, env, run_id) -> subprocess.CompletedProcess:
    """`runs follow` in a new process, cut off while it follows the held AutoML step, longer than its window."""
    process = subprocess.Popen([sys.executable, "-m", "framework.cli", "runs", "follow", run_id,
                                "--outage-timeout", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen = []
    assert process.stderr is not None
    for line in process.stderr:  # it reached the workspace and follows the job
        seen.append(line)
        if line.startswith("following pipeline job"):
            break
    deadline = time.monotonic() + 300
    while not any(r.status == "Running" and "automl" in r.name.lower() for r in service.engine.children(run_id)):
        assert time.monotonic() < deadline, "the AutoML step never started"
        REAL_SLEEP(0.05)
    outage = service.outage(refuse=True)
    try:
        out, err = process.communicate(timeout=300)
    finally:
        outage.end()
    return subprocess.CompletedProcess(process.args, process.returncode, out, "".join(seen) + err)


def test_a_no_wait_run_is_followed_to_its_end_from_a_new_process(one_workspace):
    for run in one_workspace.runs:
        assert run.submitted["status"] == "Running" and run.submitted["details"]["wait"] is False
        result = json.loads(run.followed.stdout)
        assert (result["status"], result["details"]["sdk"]) == ("Completed", run.sdk), run.followed.stderr[-2000:]
        assert set(result["outputs"]) == {"metrics_output", "model_output"}
        assert all(Path(p).exists() for p in result["outputs"].values())
        assert run.shown["status"] == "Completed" and run.shown["properties"][LAST_SEEN] >= run.shown["created_at"]


def test_a_run_whose_service_stays_away_is_left_running_then_re_attached(one_workspace):
    second = one_workspace.runs[1]
    run_id = second.submitted["run_id"]
    assert second.lost.returncode == 3, second.lost.stderr[-2000:]
    assert "did not answer for" in second.lost.stderr
    assert f"Re-attach with `amlstep runs follow {run_id}`" in second.lost.stderr
    line = next(line for line in second.listed.splitlines() if run_id[:20] in line)
    assert re.search(r"Running \(last seen \d{4}-\d\d-\d\d", line), line
    refreshed = next(line for line in second.refreshed.splitlines() if run_id[:20] in line)
    assert "Running on Azure" in refreshed, second.refreshed  # its AutoML step is held until `runs logs --follow`
    assert json.loads(second.followed.stdout)["status"] == "Completed"


def test_v1_then_v2_then_v1_on_one_workspace_complete_three_times(one_workspace):
    assert [json.loads(r.followed.stdout)["status"] for r in one_workspace.runs] == ["Completed"] * 3
    # one content: one dataset version per SDK's registry, the third submission read the first's
    versions = one_workspace.fake.service.engine.datasets["titanic_ds"]
    assert len(versions) == 2, [(v.version, v.tags) for v in versions]
    third = {s["name"]: s for s in one_workspace.runs[2].shown["steps"]}
    assert third["dataprep"]["reused_from"] is not None  # the same dataset version as the first v1 run: reused


def test_durations_are_the_service_s_when_followed_from_a_new_process(one_workspace):
    """Runs submitted with --no-wait, followed by `runs follow` (one after losing the service first): the pipeline run
    and every step run start and end when the service says, not when this process saw them."""
    local = LocalWorkspace(one_workspace.env["AMLSTEP_WORKSPACE"])
    for run in one_workspace.runs:
        assert _as_the_service_timed_it(one_workspace.fake, local, run.submitted["run_id"]) == [], run.sdk
        steps = json.loads(run.followed.stdout)["steps"]
        assert all(s["duration"] for s in steps if not s["reused"]), run.followed.stdout


@pytest.mark.parametrize("sdk", SDKS)
def test_four_concurrent_first_submissions_all_complete(sdk, tmp_path, _fake_azure_cache):
    """Four users, each with a process and a local workspace of their own, submit the same pipeline to a fresh
    workspace at once: all complete, and the data is registered once."""

    with open_fake_azure(tmp_path, _fake_azure_cache, sdk=sdk, execute=False) as fake:
        config = fake.config(tmp_path)
        users = []
        for user in range(4):
            env = _user_env(tmp_path / f"user-{user}")
            LocalWorkspace(env["AMLSTEP_WORKSPACE"]).register_dataset("titanic_ds", [TITANIC_CSV])
            users.append(env)
        started = [subprocess.Popen([sys.executable, "-m", "framework.cli", "run", str(TITANIC), "--backend", "azure",
                                     "--sdk", sdk, "--config", str(config), "--json"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for env in users]
        finished = [process.communicate(timeout=600) for process in started]
        statuses = [json.loads(out)["status"] if process.returncode == 0 else err[-1500:]
                    for process, (out, err) in zip(started, finished)]
        assert statuses == ["Completed"] * 4
        # the same content by four users: one version, the one every submission read
        assert len(fake.service.engine.datasets["titanic_ds"]) == 1


def _user_env(folder: Path) -> dict[str, str]:
    """A new process's environment: its own home and local workspace; what it knows of the fake is config.json."""
    home = folder / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "AMLSTEP_WORKSPACE": str(folder / "workspace")}
    for name in ("HTTPS_PROXY", "https_proxy", "REQUESTS_CA_BUNDLE", "AZUREML_DISCOVERY_SERVICE_ENDPOINT",
                 "ARM_CLOUD_METADATA_URL", "AZUREML_CURRENT_CLOUD"):
        env.pop(name, None)
    return env


def test_runs_logs_follow_follows_an_azure_run_nobody_follows(one_workspace):
    """`runs logs --follow` of a --no-wait run follows it on the service: each step's log as it ends, then the end."""
    for run in one_workspace.runs[:2]:
        logs, run_id = run.logs, run.submitted["run_id"]
        assert "Prepared 891 rows" in logs.stdout and "Registered version" in logs.stdout, (run.sdk, logs.stdout)
        assert f"following pipeline {'run' if run.sdk == 'v1' else 'job'} {run_id}" in logs.stderr
        assert "===" not in logs.stderr  # the log goes to stdout, whatever the SDK prints meanwhile
