"""The v2 fake reads a build context's Dockerfile as a build would run it."""

import re

import pytest

from emulator.azure_service.engine import ServiceError
from emulator.azure_service.v2 import read_dockerfile
from framework.backends.azure.sdk_v2.compiler import dockerfile


def test_the_compilers_dockerfile_creates_an_environment_first_on_path():
    copies, conda_file = read_dockerfile("amlstep:1", dockerfile())
    assert conda_file == "/amlstep/conda.yaml"
    assert copies == {"/amlstep/conda.yaml": "conda.yaml", "/amlstep/wheels": "wheels"}


def test_an_environment_created_off_path_is_refused():
    text = dockerfile().replace("ENV PATH=/azureml-envs/amlstep/bin:$PATH\n", "")
    with pytest.raises(ServiceError, match=re.escape(
            "environment amlstep:1: the conda environment created in /azureml-envs/amlstep is not first on PATH "
            "(ENV PATH=/azureml-envs/amlstep/bin:$PATH), so the job's python would be the base image's")):
        read_dockerfile("amlstep:1", text)


def test_a_dockerfile_that_installs_no_conda_file_is_refused():
    with pytest.raises(ServiceError, match="the Dockerfile installs no conda file"):
        read_dockerfile("amlstep:1", "FROM python:3.11\nCOPY . /app\n")
    with pytest.raises(ServiceError, match="the fake builds Dockerfiles of FROM, COPY, ENV and RUN conda env "
                                           "create/update lines; got ENTRYPOINT"):
        read_dockerfile("amlstep:1", dockerfile() + "ENTRYPOINT python\n")
