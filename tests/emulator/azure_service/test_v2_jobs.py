"""Pipeline jobs as Microsoft's examples write them, submitted with azure-ai-ml to the fake, which runs them.

Small re-creations of the shapes of Azure/azureml-examples' CLI pipelines (written here, not copied):
a local folder uploaded as an input, datastore URIs, a public URL, pipeline outputs downloaded both
ways, output paths, pipeline components nested with their compute given as an input, optional
``$[[...]]`` command parts, shell commands and single-file code, registered components without a
version, reuse. Each test is one gap the corpus runner (benchmarks/azure_corpus.py) found, or one
refusal, with Azure's error shape. One fake serves the module.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from emulator.azure_service.testing import open_fake_azure

pytest.importorskip("azure.ai.ml")

WEB_CSV = "https://example.invalid/demo/people.csv"
PYTHON_ENV = "environment:\n  image: python\n"   # a public image: the job runs on the fake's own Python


@pytest.fixture(scope="module")
def fake(tmp_path_factory, _fake_azure_cache):
    folder = tmp_path_factory.mktemp("v2-jobs")
    web = folder / "people.csv"
    web.write_text("name,age\nada,36\nalan,41\n")
    with open_fake_azure(folder, _fake_azure_cache, sdk="v2", web_files={WEB_CSV: web}) as opened:
        yield SimpleNamespace(fake=opened, ml=opened.ml_client, service=opened.service)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip())
    return folder


def run(env, folder: Path, pipeline: str = "pipeline.yml", status: str = "Completed"):
    from azure.ai.ml import load_job

    job = env.ml.jobs.create_or_update(load_job(folder / pipeline))
    assert env.service.wait(job.name, 300) == status, env.service.engine.run(job.name).error
    return job


def steps(env, job) -> dict[str, object]:
    return {r.name: r for r in env.service.engine.runs.values() if r.root_id == job.name}


def log(env, job, step: str) -> str:
    """The step's own output (the fake's fidelity notes about the environment left out)."""
    text = env.service.step_log(steps(env, job)[step])
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith("[fake Azure ML] fidelity note:"))


COPY_STEP = """
    $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
    type: command
    name: copy_files
    version: 1
    inputs:
      data:
        type: uri_folder
    outputs:
      out:
        type: uri_folder
    code: ./src
    {env}
    command: >-
      python copy.py --data ${{{{inputs.data}}}} --out ${{{{outputs.out}}}}
""".format(env=PYTHON_ENV.replace("\n", "\n    "))
COPY_PY = """
    import argparse, os, shutil
    p = argparse.ArgumentParser(); p.add_argument("--data"); p.add_argument("--out"); a = p.parse_args()
    names = sorted(os.listdir(a.data)) if os.path.isdir(a.data) else [os.path.basename(a.data)]
    print("input files:", names)
    for name in names:
        source = os.path.join(a.data, name) if os.path.isdir(a.data) else a.data
        shutil.copyfile(source, os.path.join(a.out, "copied-" + name))
"""


def test_a_local_folder_is_uploaded_and_read_without_the_fakes_files_and_outputs_come_back_both_ways(fake, tmp_path):
    folder = write(tmp_path, {
        "data/a.csv": "x\n1\n", "data/b.csv": "x\n2\n", "copy.yml": COPY_STEP, "src/copy.py": COPY_PY,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            outputs:
              final:
                mode: upload
            jobs:
              first:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: uri_folder
                    path: ./data
                outputs:
                  out:
                    mode: upload
              second:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data: ${{parent.jobs.first.outputs.out}}
                outputs:
                  out: ${{parent.outputs.final}}
        """})
    job = run(fake, folder)
    # the step saw exactly the uploaded files: no .<blob>.metadata.json beside them
    assert "input files: ['a.csv', 'b.csv']" in log(fake, job, "first")
    assert "input files: ['copied-a.csv', 'copied-b.csv']" in log(fake, job, "second")
    # the pipeline's output, typed as azure-ai-ml expects it, back with jobs.download(all=True) and by name
    metadata = fake.ml.jobs._runs_operations.get_run_data(job.name).run_metadata
    assert metadata.outputs["final"].type == "uri_folder"
    fake.ml.jobs.download(job.name, all=True, download_path=tmp_path / "all")
    fake.ml.jobs.download(job.name, output_name="final", download_path=tmp_path / "named")
    for where in ("all", "named"):
        got = sorted(p.name for p in (tmp_path / where / "named-outputs" / "final").rglob("*.csv"))
        assert got == ["copied-copied-a.csv", "copied-copied-b.csv"], where
    # and a step's own output, from its step job
    first = next(c for c in fake.ml.jobs.list(parent_job_name=job.name) if c.display_name == "first")
    fake.ml.jobs.download(first.name, output_name="out", download_path=tmp_path / "step")
    assert (tmp_path / "step" / "named-outputs" / "out" / "copied-a.csv").read_text() == "x\n1\n"


def test_datastore_uris_in_every_mode_and_an_output_written_where_its_path_says(fake, tmp_path):
    datastore = fake.service.engine.datastores["workspaceblobstore"]
    fake.service.blob.put(datastore, "shared/in/one.txt", b"one")
    folder = write(tmp_path, {
        "copy.yml": COPY_STEP, "src/copy.py": COPY_PY,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            settings:
              default_compute: azureml:cpu-cluster
            outputs:
              kept:
                path: azureml://datastores/workspaceblobstore/paths/shared/out
            jobs:
              folder:
                type: command
                component: ./copy.yml
                inputs:
                  data:
                    type: uri_folder
                    path: azureml://datastores/workspaceblobstore/paths/shared/in
                    mode: ro_mount
                outputs:
                  out: ${{parent.outputs.kept}}
              file:
                type: command
                component: ./copy.yml
                inputs:
                  data:
                    type: uri_file
                    path: azureml://datastores/workspaceblobstore/paths/shared/in/one.txt
                    mode: download
              direct:
                type: command
                component: ./echo.yml
                inputs:
                  data:
                    type: uri_folder
                    path: azureml://datastores/workspaceblobstore/paths/shared/in
                    mode: direct
        """,
        "echo.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
            type: command
            name: echo_input
            version: 1
            inputs:
              data:
                type: uri_folder
            {PYTHON_ENV.replace(chr(10), chr(10) + '            ')}
            command: echo "given ${{{{inputs.data}}}}"
        """})
    job = run(fake, folder)
    assert fake.service.blob.get(datastore, "shared/out/copied-one.txt") == b"one"   # path: honoured
    assert "input files: ['one.txt']" in log(fake, job, "file")                      # a uri_file is the file
    # direct: the URI itself, for the step to read with its own client
    assert log(fake, job, "direct").strip() == "given azureml://datastores/workspaceblobstore/paths/shared/in"


def test_an_mltable_folder_in_eval_download_mode_and_an_mltable_output_typed_as_the_sdk_reads_it(fake, tmp_path):
    folder = write(tmp_path, {
        "table/MLTable": "paths:\n  - file: ./rows.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n",
        "table/rows.csv": "a\n1\n", "src/copy.py": COPY_PY,
        "copy.yml": COPY_STEP.replace("type: uri_folder\n    outputs:\n      out:\n        type: uri_folder",
                                      "type: mltable\n    outputs:\n      out:\n        type: mltable"),
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              table:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: mltable
                    path: ./table
                    mode: eval_download
        """})
    job = run(fake, folder)
    assert "input files: ['MLTable', 'rows.csv']" in log(fake, job, "table")
    child = next(iter(fake.ml.jobs.list(parent_job_name=job.name)))
    metadata = fake.ml.jobs._runs_operations.get_run_data(child.name).run_metadata
    assert metadata.outputs["out"].type == "mltable"
    assert fake.ml.jobs.get(child.name).outputs["out"].type == "mltable"


def test_a_public_url_input_is_fetched_when_the_step_starts(fake, tmp_path):
    folder = write(tmp_path, {
        "copy.yml": COPY_STEP, "src/copy.py": COPY_PY,
        "pipeline.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              web:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: uri_file
                    path: {WEB_CSV}
        """})
    job = run(fake, folder)
    assert "input files: ['people.csv']" in log(fake, job, "web")


def test_a_url_the_offline_fake_cannot_fetch_fails_the_step_naming_it(fake, tmp_path):
    folder = write(tmp_path, {
        "copy.yml": COPY_STEP, "src/copy.py": COPY_PY,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              web:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: uri_file
                    path: https://example.invalid/not-given.csv
        """})
    job = run(fake, folder, status="Failed")
    assert fake.service.engine.run(job.name).error["message"] == (
        "Step 'web' failed: input 'data': cannot download https://example.invalid/not-given.csv: this fake service "
        "does not reach the network (give it a local copy: FakeAzureML(web_files={url: path}))")


PIPELINE_COMPONENT = """
    $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
    type: pipeline
    name: inner_pipeline
    inputs:
      raw:
        type: uri_folder
        optional: true
      where:
        type: string
    outputs:
      result:
        type: uri_folder
    jobs:
      prep:
        type: command
        component: ./prep.yml
        compute: ${{parent.inputs.where}}
        inputs:
          raw: ${{parent.inputs.raw}}
      copy:
        type: command
        component: ./copy.yml
        inputs:
          data: ${{parent.jobs.prep.outputs.prepped}}
        outputs:
          out: ${{parent.outputs.result}}
"""
PREP_STEP = """
    $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
    type: command
    name: prep
    inputs:
      raw:
        type: uri_folder
        optional: true
    outputs:
      prepped:
        type: uri_folder
    code: ./prep.py
    {env}
    command: >-
      python prep.py $[[--raw ${{{{inputs.raw}}}}]] --out ${{{{outputs.prepped}}}}
""".format(env=PYTHON_ENV.replace("\n", "\n    "))
PREP_PY = """
    import argparse, os
    p = argparse.ArgumentParser(); p.add_argument("--raw"); p.add_argument("--out"); a = p.parse_args()
    print("raw given:", a.raw is not None)
    with open(os.path.join(a.out, "prepped.txt"), "w") as f:
        f.write(",".join(sorted(os.listdir(a.raw))) if a.raw else "nothing")
"""


def test_pipeline_components_nest_bind_their_outputs_and_take_their_compute_as_an_input(fake, tmp_path):
    folder = write(tmp_path, {
        "data/raw.csv": "x\n1\n", "inner.yml": PIPELINE_COMPONENT, "prep.yml": PREP_STEP, "prep.py": PREP_PY,
        "copy.yml": COPY_STEP, "src/copy.py": COPY_PY,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            settings:
              default_compute: azureml:cpu-cluster
            inputs:
              raw:
                type: uri_folder
                path: ./data
              compute_name: cpu-cluster
            outputs:
              with_data:
                type: uri_folder
            jobs:
              given:
                type: pipeline
                component: ./inner.yml
                inputs:
                  raw: ${{parent.inputs.raw}}
                  where: ${{parent.inputs.compute_name}}
                outputs:
                  result: ${{parent.outputs.with_data}}
              without:
                type: pipeline
                component: ./inner.yml
                inputs:
                  where: ${{parent.inputs.compute_name}}
              after_both:
                type: command
                component: ./copy.yml
                inputs:
                  data: ${{parent.jobs.without.outputs.result}}
        """})
    job = run(fake, folder)
    # each pipeline node is a job of its own, parent of its steps' jobs
    children = {c.display_name: c for c in fake.ml.jobs.list(parent_job_name=job.name)}
    assert sorted(children) == ["after_both", "given", "without"]
    assert fake.ml.jobs.get(children["given"].name).type == "pipeline"
    inner = {c.display_name for c in fake.ml.jobs.list(parent_job_name=children["given"].name)}
    assert inner == {"prep", "copy"}
    runs = [r for r in fake.service.engine.runs.values() if r.root_id == job.name]
    assert len(runs) == 7 and all(r.status == "Completed" for r in runs)   # 2 pipeline nodes, 5 steps
    # $[[--raw ...]] dropped when the optional input is not given
    prep_logs = [fake.service.step_log(r) for r in runs if r.name == "prep"]
    assert sorted(line for text in prep_logs for line in text.splitlines() if "raw given" in line) == [
        "raw given: False", "raw given: True"]
    fake.ml.jobs.download(job.name, output_name="with_data", download_path=tmp_path / "named")
    assert (tmp_path / "named" / "named-outputs" / "with_data" / "copied-prepped.txt").read_text() == "raw.csv"


def test_any_command_runs_in_a_shell_and_single_file_code_is_the_snapshot(fake, tmp_path):
    folder = write(tmp_path, {
        "hello.py": "import sys; print('hello from', sys.argv[1])\n",
        "shell.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
            type: command
            name: shell_step
            version: 1
            inputs:
              who:
                type: string
                default: the shell
            outputs:
              out:
                type: uri_folder
            code: ./hello.py
            {PYTHON_ENV.replace(chr(10), chr(10) + '            ')}
            command: >-
              echo "$GREETING" > ${{{{outputs.out}}}}/greeting.txt &&
              ls && python hello.py "${{{{inputs.who}}}}"
        """,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              shell:
                type: command
                component: ./shell.yml
                compute: azureml:cpu-cluster
                environment_variables:
                  GREETING: hi there
        """})
    job = run(fake, folder)
    text = log(fake, job, "shell")
    assert "hello.py" in text.splitlines() and "hello from the shell" in text
    where = steps(fake, job)["shell"].outputs["out"]
    assert fake.service.blob.get(fake.service.engine.datastores[where[0]], where[1] + "/greeting.txt") == \
        b"hi there\n"


def test_a_component_registered_without_a_version_reads_back_with_one_and_runs_as_latest(fake, tmp_path):
    from azure.ai.ml import load_component

    folder = write(tmp_path, {
        "copy.yml": COPY_STEP.replace("name: copy_files\n    version: 1\n", "name: unversioned_copy\n"),
        "src/copy.py": COPY_PY, "data/a.txt": "a",
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              copy:
                type: command
                component: azureml:unversioned_copy@latest
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: uri_folder
                    path: ./data
        """})
    created = fake.ml.components.create_or_update(load_component(folder / "copy.yml"))
    assert created.version == "1"
    assert fake.ml.components.get("unversioned_copy", version="1").version == "1"
    run(fake, folder)


def test_a_typed_input_given_a_value_of_another_type_is_refused_at_submission(fake, tmp_path):
    from azure.core.exceptions import HttpResponseError

    folder = write(tmp_path, {
        "src/copy.py": COPY_PY,
        "typed.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
            type: command
            name: typed_step
            version: 1
            inputs:
              epochs:
                type: integer
            code: ./src
            {PYTHON_ENV.replace(chr(10), chr(10) + '            ')}
            command: python copy.py --data . --out ${{{{inputs.epochs}}}}
        """,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            inputs:
              epochs: abc
            jobs:
              train:
                type: command
                component: ./typed.yml
                compute: azureml:cpu-cluster
                inputs:
                  epochs: ${{parent.inputs.epochs}}
        """})
    from azure.ai.ml import load_job

    with pytest.raises(HttpResponseError) as refused:
        fake.ml.jobs.create_or_update(load_job(folder / "pipeline.yml"))
    error = refused.value.response.json()["error"]
    assert refused.value.status_code == 400 and error["code"] == "UserError"
    assert error["target"] == "properties.jobs.train.inputs.epochs"
    assert error["message"] == ("The request is invalid: properties.jobs.train.inputs.epochs: The value 'abc' of "
                                "input 'epochs' is not a valid Integer; the component declares 'epochs' as type "
                                "'integer'")
    assert [i["type"] for i in error["additionalInfo"]][:1] == ["ComponentName"]


def test_a_resubmission_reuses_steps_flagged_isreused_and_download_follows_the_original(fake, tmp_path):
    folder = write(tmp_path, {
        "copy.yml": COPY_STEP, "src/copy.py": COPY_PY, "data/r.txt": "r",
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              copy:
                type: command
                component: ./copy.yml
                compute: azureml:cpu-cluster
                inputs:
                  data:
                    type: uri_folder
                    path: ./data
        """})
    first = run(fake, folder)
    second = run(fake, folder)
    reused = steps(fake, second)["copy"]
    assert reused.properties["azureml.isreused"] == "true"
    assert reused.reused_from == steps(fake, first)["copy"].id
    child = next(iter(fake.ml.jobs.list(parent_job_name=second.name)))
    fake.ml.jobs.download(child.name, output_name="out", download_path=tmp_path / "reused")
    assert (tmp_path / "reused" / "named-outputs" / "out" / "copied-r.txt").read_text() == "r"


def test_models_list_and_compute_instances(fake, tmp_path):
    from azure.ai.ml.entities import ComputeInstance, Model

    (tmp_path / "model.pkl").write_bytes(b"model")
    fake.ml.models.create_or_update(Model(name="listed", path=tmp_path / "model.pkl", type="custom_model"))
    assert "listed" in [m.name for m in fake.ml.models.list()]
    instance = fake.ml.compute.begin_create_or_update(ComputeInstance(name="dev-box-1a", size="STANDARD_DS3_V2")
                                                      ).result()
    assert (instance.type, instance.state) == ("computeinstance", "Running")
    assert ("dev-box-1a", "computeinstance") in [(c.name, c.type) for c in fake.ml.compute.list()]


@pytest.mark.slow
def test_run_get_context_in_a_v2_step_trusts_the_fakes_certificate_authority(fake, tmp_path):
    folder = write(tmp_path, {
        "ctx.py": "from azureml.core import Run\nrun = Run.get_context()\nrun.log('seen', 1)\nrun.flush()\n"
                  "print('run', run.id)\n",
        "ctx.yml": f"""
            $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
            type: command
            name: ctx_step
            version: 1
            code: ./ctx.py
            {PYTHON_ENV.replace(chr(10), chr(10) + '            ')}
            command: python ctx.py
        """,
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            jobs:
              ctx:
                type: command
                component: ./ctx.yml
                compute: azureml:cpu-cluster
        """})
    job = run(fake, folder)
    record = steps(fake, job)["ctx"]
    assert re.search(rf"run {record.id}", log(fake, job, "ctx"))
    assert record.metric_values() == {"seen": 1}


def automl_pipeline(fake, tmp_path, rows=120):
    """A pipeline of one AutoML classification node on ``rows`` rows (another count: not a reuse), run; (the pipeline
    job, the node's job)."""
    rows = "\n".join(f"{i % 7},{(i * 13) % 5},{'yes' if (i % 7) + (i * 13) % 5 > 5 else 'no'}" for i in range(rows))
    folder = write(tmp_path, {
        "train/MLTable": "paths:\n  - file: ./rows.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n",
        "train/rows.csv": "a,b,y\n" + rows + "\n",
        "pipeline.yml": """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
            type: pipeline
            inputs:
              train:
                type: mltable
                path: ./train
            settings:
              default_compute: azureml:cpu-cluster
            jobs:
              classify:
                type: automl
                task: classification
                primary_metric: accuracy
                target_column_name: y
                training_data: ${{parent.inputs.train}}
                limits:
                  max_trials: 2
                  max_concurrent_trials: 1
                training:
                  enable_stack_ensemble: false
                  enable_vote_ensemble: false
                outputs:
                  best_model:
                    type: mlflow_model
        """})
    job = run(fake, folder)
    return job, next(iter(fake.ml.jobs.list(parent_job_name=job.name)))


@pytest.mark.slow
def test_an_automl_nodes_trials_are_jobs_the_client_can_get(fake, tmp_path):
    """azureml-examples' AutoML pipelines walk a job's children: an AutoML node's trials are listed as its
    children and read back by ``jobs.get`` (as command jobs running AutoML's driver), never a 404."""
    _, node = automl_pipeline(fake, tmp_path)
    trials = list(fake.ml.jobs.list(parent_job_name=node.name))
    assert trials, "the AutoML node lists its trials"
    for trial in trials:
        got = fake.ml.jobs.get(trial.name)
        assert got.type == "command" and got.status == "Completed" and "automl_driver.py" in got.command


def mlflow_client(env):
    """An MLflow client of the workspace's tracking API, as a job's azureml-mlflow reaches it (https, bearer)."""
    from mlflow.tracking import MlflowClient

    service = env.service
    os_env = {"MLFLOW_TRACKING_TOKEN": service.token, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(service.ca.ca_file)}
    return MlflowClient(tracking_uri=f"{service.tls_url}/mlflow/v2.0{service.api_v2.ws_id}"), os_env


@pytest.mark.slow
def test_the_best_model_names_its_trial_and_mlflow_registers_it_from_the_trials_artifacts(fake, tmp_path, monkeypatch):
    """As Azure's AutoML writes it: the best_model's MLmodel names the trial that trained it, the trial holds it under
    outputs/mlflow-model/ (listed by the run artifacts API azureml-mlflow reads), and MLflow's model registry makes a
    workspace model of it; a source without an MLmodel is refused as MLflow's server refuses it."""
    import requests
    import yaml
    from mlflow.exceptions import MlflowException

    _, node = automl_pipeline(fake, tmp_path, rows=150)
    trial = fake.service.engine.run(fake.service.engine.run(node.name).properties["best_child_run_id"])
    experiment = fake.service.engine.experiment(trial.experiment)["id"]
    artifacts = f"{fake.service.tls_url}/history/v1.0{fake.service.api_v2.ws_id}/experiments/{experiment}/runs/" \
                f"{trial.id}/artifacts"

    def get(url, **params):
        answer = requests.get(url, params=params, headers={"Authorization": f"Bearer {fake.service.token}"},
                              verify=str(fake.service.ca.ca_file), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer

    assert "outputs/mlflow-model/MLmodel" in [a["path"] for a in get(artifacts).json()["value"]]
    content = get(artifacts + "/contentinfo", path="outputs/mlflow-model/MLmodel").json()["contentUri"]
    assert yaml.safe_load(get(content).text)["run_id"] == trial.id

    client, variables = mlflow_client(fake)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    client.create_registered_model("bank-model")
    source = client.get_run(trial.id).info.artifact_uri + "/outputs/mlflow-model"
    version = client.create_model_version("bank-model", source=source, run_id=trial.id)
    assert (version.version, version.status) == ("1", "READY")
    registered = fake.ml.models.get("bank-model", version="1")
    assert registered.type == "mlflow_model"
    with pytest.raises(MlflowException, match="no MLmodel file in run"):
        client.create_model_version("bank-model", source=client.get_run(trial.id).info.artifact_uri + "/outputs/x",
                                    run_id=trial.id)
    with pytest.raises(MlflowException, match=r"Registered Model \(name=bank-model\) already exists"):
        client.create_registered_model("bank-model")
    # MLflow 3's logged models are not implemented by Azure's tracking server (Azure/azureml-examples#3885)
    with pytest.raises(MlflowException, match="logged-models API .* is not supported by the Azure ML tracking server"):
        client.search_logged_models(experiment_ids=[experiment])
