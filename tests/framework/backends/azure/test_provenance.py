"""What the SDKs say about the local checkout is cleaned before it reaches the workspace (issue 23).

Both SDKs send ``git ls-remote --get-url`` as ``azureml.git.repository_uri`` / ``mlflow.source.git.repoURL``: for a
clone of a local folder, a path on the user's machine. It is dropped; a remote URL is kept without credentials.
"""

from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA
from framework.backends.azure.provenance import cleaned, remote_url

from .conftest import TITANIC

REGISTERED = {"titanic_ds": [str(SHARED_DATA / "titanic.csv")]}
LOCAL_CLONE = "/home/someone/src/private-clone"


@pytest.mark.parametrize("uri, expected", [
    ("/home/me/src/project", None), ("./project", None), ("../project.git", None), ("file:///home/me/project", None),
    ("C:\\Users\\me\\project", None), ("C:/Users/me/project", None), ("", None), (None, None),
    ("https://github.com/owner/repo.git", "https://github.com/owner/repo.git"),
    ("https://user:ghp_secret@github.com/owner/repo.git", "https://github.com/owner/repo.git"),
    ("ssh://git@example.com:2222/owner/repo.git", "ssh://example.com:2222/owner/repo.git"),
    ("git@github.com:owner/repo.git", "git@github.com:owner/repo.git"),
])
def test_a_local_path_is_no_repository_url(uri, expected):
    assert remote_url(uri) == expected


def test_cleaned_keeps_branch_and_commit():
    sent = {"azureml.git.repository_uri": LOCAL_CLONE, "mlflow.source.git.repoURL": LOCAL_CLONE,
            "azureml.git.branch": "main", "azureml.git.commit": "abc", "other": "kept"}
    assert cleaned(sent) == {"azureml.git.branch": "main", "azureml.git.commit": "abc", "other": "kept"}


def _everything_sent(fake) -> str:
    service = fake.service
    state = {"modules": getattr(service.api, "modules", {}), "jobs": getattr(service.api_v2, "jobs", {}),
             "runs": {run_id: record.properties for run_id, record in service.engine.runs.items()}}
    return json.dumps(state, default=str)


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_sdk_v1_sends_no_local_clone_path(fake_azure, monkeypatch):
    monkeypatch.setenv("AZUREML_GIT_REPOSITORY_URI", LOCAL_CLONE)  # what git ls-remote --get-url says for such a clone
    monkeypatch.setenv("AZUREML_GIT_BRANCH", "feature-x")
    assert fake_azure.submit(TITANIC).status == "Completed"
    sent = _everything_sent(fake_azure)
    assert "feature-x" in sent  # the SDK did send its git properties
    assert LOCAL_CLONE not in sent


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_sdk_v2_sends_no_local_clone_path(fake_azure_v2, monkeypatch):
    monkeypatch.setenv("AZUREML_GIT_REPOSITORY_URI", LOCAL_CLONE)
    monkeypatch.setenv("AZUREML_GIT_BRANCH", "feature-x")
    assert fake_azure_v2.submit(TITANIC).status == "Completed"
    sent = _everything_sent(fake_azure_v2)
    assert "feature-x" in sent
    assert LOCAL_CLONE not in sent
