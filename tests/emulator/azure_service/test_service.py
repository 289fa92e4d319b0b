"""The fake Azure ML service as a product feature: loopback only, recorded, stoppable, isolated."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from emulator.azure_service import FakeAzureML, summarize_submission


def get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_binds_loopback_only_and_stops():
    fake = FakeAzureML().start()
    host, port = fake._server.server_address
    assert host == "127.0.0.1" and fake.base_url == f"http://127.0.0.1:{port}"
    status, body = get(fake.base_url + "/discovery")
    assert status == 200 and body["pipelines"] == fake.base_url
    fake.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_unhandled_routes_are_recorded_with_an_sdk_shaped_error():
    with FakeAzureML() as fake:
        status, body = get(fake.base_url + "/no/such/route", fake.token)
        assert status == 404 and body["error"]["details"] == [] and "unhandled GET /no/such/route" in \
            body["error"]["message"]
        assert fake.unhandled == ["GET /no/such/route"]
        assert fake.requests[-1]["status"] == 404


def test_environment_points_the_sdk_at_the_fake_and_stops_telemetry():
    with FakeAzureML() as fake:
        env = fake.environment()
        assert env["AZUREML_DISCOVERY_SERVICE_ENDPOINT"] == fake.base_url + "/discovery"
        assert env["HBI_WORKSPACE_JOB"] == "true" and env["AZUREML_CURRENT_CLOUD"] == "AzureCloud"
        assert "127.0.0.1" in env["NO_PROXY"]


def test_summary_of_a_submission_is_stable():
    raw = {"experimentName": "e", "run_id": "r", "dataset_names": {"ds-id": "titanic_ds"},
           "modules": {"m1": {"Name": "prep", "StepType": "PythonScriptStep", "IsDeterministic": True,
                              "StructuredInterface": {"Arguments": [{"ValueType": "Literal", "Value": "--x"}],
                                                      "Inputs": [{"Name": "raw"}],
                                                      "Outputs": [{"Name": "out"}, {"Name": "_hidden"}]}}},
           "submission": {"Graph": {"ModuleNodes": [{"Id": "n1", "ModuleId": "m1",
                                                     "ModuleParameters": [{"Name": "Script", "Value": "s.py"},
                                                                          {"Name": "Target", "Value": "cpu"}]}],
                                    "DatasetNodes": [{"Id": "d1", "DataSetDefinition": {
                                        "Value": {"DataSetReference": {"Id": "ds-id"}}}}],
                                    "Edges": [{"SourceOutputPort": {"NodeId": "d1", "PortName": "data"},
                                               "DestinationInputPort": {"NodeId": "n1", "PortName": "raw"}},
                                              {"SourceOutputPort": {"NodeId": "n1", "PortName": "out"},
                                               "DestinationInputPort": {"GraphPortName": "result"}}]},
                          "GraphInterface": {"Parameters": [{"Name": "p", "DefaultValue": "1"}]},
                          "CreationInfo": {"ParameterAssignments": {"p": "2"},
                                           "ContinueExperimentOnNodeFailure": False}}}
    summary = summarize_submission(raw)
    assert summary == {
        "run_id": "r", "experiment": "e", "pipeline_parameters": {"p": "1"}, "submitted_parameters": {"p": "2"},
        "continue_on_step_failure": False,
        "steps": [{"name": "prep", "type": "PythonScriptStep", "allow_reuse": True, "arguments": [["Literal", "--x"]],
                   "inputs": ["raw"], "outputs": ["out"], "training_outputs": {}, "compute_target": "cpu",
                   "script": "s.py"}],
        "edges": [["dataset:titanic_ds", "prep.raw"], ["prep.out", "pipeline_output:result"]]}
