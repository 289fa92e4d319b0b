"""SDK v1 pipelines and read-backs as Microsoft's notebooks write them, run by the fake (azureml-core, no amlstep).

Small re-creations of the shapes of Azure/MachineLearningNotebooks: ``DataReference`` and ``DataPath``
inputs, ``run_after``, a resubmission whose steps are reused, ``Experiment.get_runs()``,
``ws.experiments``, interactive runs, compute instances.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("azureml.pipeline.core")

SCRIPT = """
import os, sys
for argument in sys.argv[1:]:
    print(argument.rsplit("/", 1)[-1], "->", sorted(os.listdir(argument)))
print("DataReference env:", sorted(k for k in os.environ if k.startswith("AZUREML_DATAREFERENCE_")))
"""


def runconfig():
    from azureml.core.conda_dependencies import CondaDependencies
    from azureml.core.runconfig import RunConfiguration

    config = RunConfiguration()
    dependencies = CondaDependencies()
    dependencies.remove_pip_package("azureml-defaults")   # the default environment's: built from an index
    config.environment.python.conda_dependencies = dependencies
    return config


def test_data_references_data_paths_and_run_after(fake_azure, tmp_path):
    from azureml.core import Experiment
    from azureml.data.data_reference import DataReference
    from azureml.data.datapath import DataPath, DataPathComputeBinding
    from azureml.pipeline.core import Pipeline, PipelineParameter
    from azureml.pipeline.steps import PythonScriptStep

    service = fake_azure.service
    container = service.engine.datastores["workspaceblobstore"]
    service.blob.put(container, "raw/a/one.csv", b"x\n1\n")
    service.blob.put(container, "raw/b/two.csv", b"x\n2\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "show.py").write_text(SCRIPT)
    datastore = fake_azure.workspace.get_default_datastore()
    reference = DataReference(datastore, data_reference_name="raw_a", path_on_datastore="raw/a", mode="mount")
    path = PipelineParameter(name="raw_path", default_value=DataPath(datastore=datastore, path_on_datastore="raw/a"))
    binding = (path, DataPathComputeBinding(mode="mount"))
    first = PythonScriptStep("show.py", source_directory=str(tmp_path / "src"), compute_target="cpu-cluster",
                             runconfig=runconfig(), name="first", allow_reuse=False)
    second = PythonScriptStep("show.py", source_directory=str(tmp_path / "src"), compute_target="cpu-cluster",
                              runconfig=runconfig(), name="second", arguments=[reference, binding],
                              inputs=[reference, binding], allow_reuse=False)
    second.run_after(first)
    run = Experiment(fake_azure.workspace, "references").submit(
        Pipeline(fake_azure.workspace, [first, second]),
        pipeline_parameters={"raw_path": DataPath(datastore=datastore, path_on_datastore="raw/b")})
    assert run.wait_for_completion(show_output=False) == "Finished"
    steps = fake_azure.step_runs(run.id)
    assert steps["first"].ended <= steps["second"].started                  # run_after: an order
    text = fake_azure.step_log(steps["second"])
    assert "raw_a -> ['one.csv']" in text                                    # the DataReference's folder
    assert re.search(r"-> \['two.csv'\]", text)                              # the DataPath as submitted
    assert "'AZUREML_DATAREFERENCE_raw_a'" in text


def test_a_resubmitted_step_is_reused_and_flagged_isreused(fake_azure, tmp_path):
    from azureml.core import Experiment, Run
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "show.py").write_text("print('ran')\n")

    def submit():
        step = PythonScriptStep("show.py", source_directory=str(tmp_path / "src"), compute_target="cpu-cluster",
                                runconfig=runconfig(), name="again")
        run = Experiment(fake_azure.workspace, "reuse").submit(Pipeline(fake_azure.workspace, [step]))
        assert run.wait_for_completion(show_output=False) == "Finished"
        return run

    first = submit()
    second = submit()
    # the SDK shows a reused step as the run it reused, flagged; the service's own step run says isreused
    [child] = list(second.get_children())
    original = fake_azure.step_runs(first.id)["again"]
    assert (child.id, child._is_reused) == (original.id, True)
    reused = fake_azure.step_runs(second.id)["again"]
    properties = Run(second.experiment, reused.id).get_properties()
    assert (properties["azureml.isreused"], properties["azureml.reusedrunid"]) == ("true", original.id)


def test_experiments_and_their_runs_read_back(fake_azure):
    from azureml.core import Experiment

    experiment = Experiment(fake_azure.workspace, "interactive")
    with experiment.start_logging(snapshot_directory=None) as run:   # the with form stops its heartbeat
        run.tag("kind", "interactive")
    # the run's metric queues tick every second until closed, in this process: close them (the SDK leaves
    # them to the end of the notebook's kernel)
    metrics = run._client.metrics
    for queue in (metrics._task_queue_internal, metrics._task_queue_v2_internal):
        if queue is not None:
            queue.__exit__(None, None, None)
    assert "interactive" in fake_azure.workspace.experiments
    assert [e.name for e in Experiment.list(fake_azure.workspace)] == ["interactive"]
    [listed] = list(experiment.get_runs())
    assert (listed.id, listed.get_status(), listed.get_tags()["kind"]) == (run.id, "Completed", "interactive")


@pytest.mark.slow
@pytest.mark.fake_azure(computes=())
def test_compute_instances_are_created_with_the_services_name_rule(fake_azure):
    from azureml.core.compute import ComputeInstance, ComputeTarget
    from azureml.core.compute_target import ComputeTargetException

    config = ComputeInstance.provisioning_configuration(vm_size="STANDARD_DS3_V2")
    instance = ComputeTarget.create(fake_azure.workspace, "forecast-dev-instance", config)
    instance.wait_for_completion(show_output=False)
    assert (instance.type, instance.get_status().state) == ("ComputeInstance", "Running")
    with pytest.raises(ComputeTargetException, match=re.escape(
            "Compute name 'dev-instance-1' is not available. Reason: Invalid. Message: A name for an Azure ML "
            "Compute Instance must be between 3 and 24 characters in length")):
        ComputeTarget.create(fake_azure.workspace, "dev-instance-1", config)


def test_a_tabular_dataset_built_client_side_on_the_fakes_datastore(fake_azure, tmp_path):
    """The seed's own from_delimited_files((datastore, path)): the data runtime reads Azure's blob host itself,
    which offline is never the fake. It fails at once, saying why and what works, instead of retrying for
    minutes; registered without reading, the dataset the service hands back reads the fake."""
    from azureml.core import Dataset
    from azureml.data.dataset_error_handling import DatasetValidationError

    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n")
    datastore = fake_azure.workspace.get_default_datastore()
    datastore.upload_files([str(tmp_path / "t.csv")], target_path="tab", overwrite=True, show_progress=False)
    with pytest.raises(DatasetValidationError, match=re.escape(
            "The fake Azure ML service cannot serve a datastore to the data runtime (azureml-dataprep's Rust "
            "engine): it reads https://amlstepfakestorage.blob.core.windows.net by itself, ignoring HTTPS_PROXY")):
        Dataset.Tabular.from_delimited_files(path=(datastore, "tab/t.csv"))
    unread = Dataset.Tabular.from_delimited_files(path=(datastore, "tab/t.csv"), validate=False,
                                                  infer_column_types=False)
    unread.register(fake_azure.workspace, "tab_ds")
    frame = Dataset.get_by_name(fake_azure.workspace, "tab_ds").to_pandas_dataframe()
    assert frame.to_dict("list") == {"a": ["1", "2"], "b": ["x", "y"]}
