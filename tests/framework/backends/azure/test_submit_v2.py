"""SDK v2 only: what the fake's public ARM API answers to a body it refuses.

The scenarios both SDKs share (Titanic and penguins run on the fake, reuse, failures, computes, sign-in)
and what SDK v2 does with those runs (MLflow models, MLTable outputs, wheels in the build context) are
in test_submit.py, once per SDK.
"""

from __future__ import annotations

import pytest

pytest.importorskip("azure.ai.ml")


@pytest.mark.fake_azure(execute=False)
def test_a_body_the_service_refuses_gets_the_services_error_shape(fake_azure_v2):
    from azure.core.exceptions import HttpResponseError

    ml = fake_azure_v2.ml_client
    client = ml._service_client_01_2024_preview_arm
    body = {"properties": {"jobType": "Command", "environmentId": "azureml:env:1", "computeId": "cpu-cluster",
                           "experimentName": "refused", "inputs": {"n": {"jobInputType": "literal", "value": [1]}}}}
    with pytest.raises(HttpResponseError) as raised:
        client.jobs.create_or_update(resource_group_name=ml.resource_group_name, workspace_name=ml.workspace_name,
                                     id="refused_job", body=body)
    error = raised.value
    assert error.status_code == 400
    assert str(error).startswith("(UserError) The request is invalid: properties.command: required property is "
                                 "missing; properties.inputs.n.value: expected a string, got array [1]")
    payload = error.response.json()["error"]
    assert (payload["code"], payload["target"]) == ("UserError", "properties.command")
    assert payload["details"] == [
        {"code": "RequiredField", "target": "properties.command",
         "message": "properties.command: required property is missing"},
        {"code": "InvalidType", "target": "properties.inputs.n.value",
         "message": "properties.inputs.n.value: expected a string, got array [1]"}]
    assert {"type": "ComponentName", "info": {"value": "managementfrontend"}} in payload["additionalInfo"]
    assert {i["type"] for i in payload["additionalInfo"]} == {"ComponentName", "Correlation", "Environment",
                                                               "Location", "Time"}
    assert fake_azure_v2.service.api_v2.refused[-1]["kind"] == "jobs"
