"""Request bodies checked against the ARM REST models azure-ai-ml ships (the service's published schema)."""

import pytest

from emulator.azure_service.v2_schema import Problem, check_resource

pytest.importorskip("azure.ai.ml")

PIPELINE = {"properties": {
    "jobType": "Pipeline", "experimentName": "x", "displayName": "x",
    "jobs": {"prep": {"type": "command", "componentId": "/subscriptions/s/.../components/c/versions/1"}},
    "inputs": {"n": {"jobInputType": "literal", "value": "2"},
               "data": {"jobInputType": "mltable", "uri": "/subscriptions/s/.../data/d/versions/1"}},
    "outputs": {"model_output": {"jobOutputType": "mlflow_model"}},
    "settings": {"default_compute": "/subscriptions/s/.../computes/cpu-cluster"}}}


def test_what_the_sdk_sends_passes():
    assert check_resource("jobs", PIPELINE) == []
    # scalars are read as Json.NET reads them: the SDK sends a number in a dict[str, str] on every code upload
    assert check_resource("codes", {"properties": {"codeUri": "https://a/b", "isAnonymous": True,
                                                   "properties": {"hash_version": 202208}}}) == []
    assert check_resource("environments", {"properties": {"build": {"contextUri": "https://a/b/"}, "isAnonymous": True}}) == []


@pytest.mark.parametrize("kind, body, problem", [
    ("jobs", {"properties": {"jobType": "Command", "environmentId": "e"}},
     Problem("properties.command", "RequiredField", "properties.command: required property is missing")),
    ("jobs", {"properties": {"experimentName": "x"}},
     Problem("properties.jobType", "RequiredField", "properties.jobType: required property is missing; one of AutoML, "
                                                    "Command, FineTuning, Pipeline, Spark, Sweep")),
    ("jobs", {"properties": {**PIPELINE["properties"], "inputs": {"n": {"jobInputType": "literal", "value": [2]}}}},
     Problem("properties.inputs.n.value", "InvalidType", "properties.inputs.n.value: expected a string, got array [2]")),
    ("computes", {"properties": {"computeType": "AmlCompute", "properties": {"scaleSettings": {"maxNodeCount": "two"}}}},
     Problem("properties.properties.scaleSettings.maxNodeCount", "InvalidType",
             "properties.properties.scaleSettings.maxNodeCount: expected an integer, got string \"two\"")),
    ("jobs", {"properties": {**PIPELINE["properties"], "inputs": {"d": {"jobInputType": "table", "uri": "u"}}}},
     Problem("properties.inputs.d.jobInputType", "InvalidValue", "properties.inputs.d.jobInputType: unknown value "
             "'table'; one of custom_model, literal, mlflow_model, mltable, triton_model, uri_file, uri_folder")),
    ("codes", {"properties": {"codeUri": {"uri": "x"}}},
     Problem("properties.codeUri", "InvalidType", "properties.codeUri: expected a string, got object {\"uri\": \"x\"}")),
    ("environments", {"properties": {"build": {}}},
     Problem("properties.build.contextUri", "RequiredField", "properties.build.contextUri: required property is missing")),
    ("models", {"properties": {"modelType": "mlflow_model", "flavors": {"python_function": "x"}}},
     Problem("properties.flavors.python_function", "InvalidType",
             "properties.flavors.python_function: expected an object, got string")),
])
def test_what_the_service_refuses_is_named(kind, body, problem):
    assert check_resource(kind, body) == [problem]
