"""What both APIs of the fake check on every request, as Azure does, each in its own error shape: tokens,
api-versions, the workspace in the URL, compute names and sizes; and the long-running operation a compute
creation starts. One test per check, over SDK v1's API (plain http) and SDK v2's ARM API (TLS)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from emulator.azure_service import FakeAzureML
from emulator.azure_service.api import compute_name_problem
from emulator.azure_service.service import RESOURCE_GROUP, SUBSCRIPTION

COMPUTE = {"location": "westeurope", "properties": {"computeType": "AmlCompute", "properties": {
    "vmSize": "STANDARD_D2_V2", "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 1}}}}


@pytest.fixture(scope="module")
def fake():
    with FakeAzureML(execute=False) as service:
        yield service


@pytest.fixture(params=["v1", "v2"])
def api(request, fake):
    """How to call one of the two APIs: (url, ssl context, the fake's token)."""
    if request.param == "v1":
        return fake.base_url, None, fake.token
    return fake.tls_url, ssl.create_default_context(cafile=str(fake.ca.ca_file)), fake.token


def call(api, method, path, body=None, token=""):
    base, context, issued = api
    token = issued if token == "" else token
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


def ws_path(fake, name=None):
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{name or fake.workspace_name}")


def test_every_call_but_discovery_needs_an_unexpired_bearer_jwt(fake, api):
    path = ws_path(fake) + "?api-version=2022-05-01"
    assert call(api, "GET", "/discovery", token=None)[0] == 200
    status, body, _ = call(api, "GET", path, token=None)
    assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    status, body, _ = call(api, "GET", path, token="not-a-jwt")
    assert (status, body["error"]["code"], body["error"]["message"]) == (401, "InvalidAuthenticationToken",
                                                                        "The access token is invalid.")
    status, body, _ = call(api, "GET", path, token=fake.tokens.issue(lifetime=-60))
    assert (status, body["error"]["code"]) == (401, "ExpiredAuthenticationToken")
    assert call(api, "GET", path, token=fake.tokens.issue())[0] == 200


def test_arm_calls_need_a_well_formed_api_version(fake, api):
    status, body, _ = call(api, "GET", ws_path(fake))
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
    status, body, _ = call(api, "GET", ws_path(fake) + "?api-version=latest")
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")
    assert "The api-version 'latest' is invalid" in body["error"]["message"]
    assert call(api, "GET", ws_path(fake) + "?api-version=2023-04-01-preview")[0] == 200


def test_another_workspace_is_not_found_and_nothing_is_done_in_it(fake, api):
    path = ws_path(fake, "someone-elses") + "/computes/other-cluster?api-version=2022-05-01"
    status, body, _ = call(api, "PUT", path, COMPUTE)
    assert (status, body["error"]["code"]) == (404, "ResourceNotFound")
    assert "workspaces/someone-elses' under resource group 'amlstep-fake-rg' was not found" in body["error"]["message"]
    assert "other-cluster" not in fake.engine.computes


def test_errors_come_in_each_apis_shape(fake, api):
    status, body, _ = call(api, "GET", ws_path(fake) + "/computes/ghost?api-version=2022-05-01")
    assert (status, body["error"]["code"]) == (404, "ResourceNotFound")
    assert body["error"]["message"] == f"Compute 'ghost' was not found in workspace {fake.workspace_name!r}."
    assert body["error"]["details"] == []
    arm = api[0].startswith("https:")   # ARM's error adds target and additionalInfo (SDK v1's has neither)
    assert ("additionalInfo" in body["error"]) is arm and ("target" in body["error"]) is arm


@pytest.mark.parametrize("name, valid", [
    # Microsoft's own cluster names (MachineLearningNotebooks, azureml-examples CI) are valid
    ("cpu-cluster", True), ("forecast-step-cluster-v2", True), ("gpu-v100-1GPU-cluster", True), ("abc", True),
    ("Cluster-24-characters-ok", True), ("Cluster-25-characters-too", False),
    ("my_compute_cluster", False), ("1cluster", False), ("ab", False), ("cluster-", False),
    ("cpu-cluster-1", False)])                       # a '-' must be followed by a letter later in the name
def test_compute_names_follow_the_services_rule(fake, api, name, valid):
    assert (compute_name_problem(name) is None) is valid
    status, answer, _ = call(api, "PUT", ws_path(fake) + f"/computes/{name}?api-version=2022-05-01", COMPUTE)
    if valid:
        assert status == 201
    else:
        assert (status, answer["error"]["code"]) == (400, "BadArgument")
        assert answer["error"]["message"] == (
            f"Compute name {name!r} is invalid. It must be between 3 and 24 characters long, contain only letters, "
            f"digits and the '-' character, start with a letter, and every '-' must be followed by at least one "
            f"letter later in the name.")


def test_a_compute_creation_is_a_long_running_operation_the_client_polls(fake, api):
    body = json.loads(json.dumps(COMPUTE))
    body["properties"]["properties"].update(vmSize="STANDARD_DS3_V2", vmPriority="LowPriority",
                                            scaleSettings={"minNodeCount": 0, "maxNodeCount": 3,
                                                           "nodeIdleTimeBeforeScaleDown": "PT600S"})
    status, created, headers = call(api, "PUT", ws_path(fake) + "/computes/polled?api-version=2022-05-01", body)
    assert status == 201 and created["properties"]["provisioningState"] == "Creating"
    operation = headers["Azure-AsyncOperation"].removeprefix(api[0])
    status, state, _ = call(api, "GET", operation)
    assert (status, state["status"]) == (200, "Succeeded")
    status, got, _ = call(api, "GET", ws_path(fake) + "/computes/polled?api-version=2022-05-01")
    scale = got["properties"]["properties"]["scaleSettings"]
    assert (got["properties"]["provisioningState"], got["properties"]["properties"]["vmPriority"]) == (
        "Succeeded", "LowPriority")
    assert (scale["maxNodeCount"], scale["nodeIdleTimeBeforeScaleDown"]) == (3, "PT600S")


def test_an_unknown_vm_size_and_too_few_nodes_are_refused(fake, api):
    body = json.loads(json.dumps(COMPUTE))
    body["properties"]["properties"]["vmSize"] = "STANDARD_BOGUS"
    status, answer, _ = call(api, "PUT", ws_path(fake) + "/computes/bogus?api-version=2022-05-01", body)
    assert (status, answer["error"]["code"]) == (400, "BadArgument")
    assert answer["error"]["message"].startswith("The specified VM size 'STANDARD_BOGUS' is not supported for "
                                                 "AmlCompute in region 'westeurope'.")
    body["properties"]["properties"].update(vmSize="STANDARD_D2_V2",
                                            scaleSettings={"minNodeCount": 3, "maxNodeCount": 1})
    status, answer, _ = call(api, "PUT", ws_path(fake) + "/computes/upside-down?api-version=2022-05-01", body)
    assert (status, answer["error"]["message"]) == (400, "minNodeCount (3) cannot be greater than maxNodeCount (1)")
