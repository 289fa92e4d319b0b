"""Environments built as Azure's image build builds them: from a package index (here, offline: a folder of
wheels the test builds), conda files read, Python versions and base images checked, curated environments known.
Every test is offline: ``PackageIndex(offline=True, find_links=...)``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emulator.azure_service import environments
from emulator.azure_service.blobstore import BlobStore
from emulator.azure_service.compute import Compute, ImageBuildError, PackageIndex, find_pythons
from emulator.azure_service.engine import EnvironmentSpec, ServiceError

from .wheels import make_wheel

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheelhouse"
    make_wheel(folder, "pyjokes", "0.6.0", code="def get_joke():\n    return 'a joke from a local wheel'\n")
    make_wheel(folder, "needs-new-python", "1.0", requires_python=f">={HERE}")
    return folder


def compute(tmp_path, wheels=None):
    return Compute(tmp_path / "cache", index=PackageIndex(offline=True, find_links=(str(wheels),) if wheels else ()))


def run(python, code):
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def blob(tmp_path):
    return BlobStore(tmp_path / "blobs", "acct")


@pytest.mark.slow
def test_a_requirement_the_fake_lacks_is_installed_from_the_index(tmp_path, wheels):
    """pyjokes is not among the fake's packages: Azure's image build installs it from PyPI, the fake from its index."""
    built = compute(tmp_path, wheels).build(EnvironmentSpec("jokes", HERE, ["pyjokes==0.6.0", "pandas"]), blob(tmp_path))
    done = run(built.python, "import pyjokes, pandas; print(pyjokes.get_joke())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a joke from a local wheel"
    assert "Requirement already satisfied: pandas" in built.log and "pyjokes" in built.log


@pytest.mark.slow
def test_without_it_in_the_index_the_build_fails_as_pips_does(tmp_path):
    with pytest.raises(ImageBuildError, match=r"^No matching distribution found for pyjokes==0\.6\.0$") as caught:
        compute(tmp_path).build(EnvironmentSpec("jokes", HERE, ["pyjokes==0.6.0"]), blob(tmp_path))
    assert "Could not find a version that satisfies the requirement pyjokes==0.6.0" in caught.value.log


@pytest.mark.slow
def test_a_conda_file_is_read_as_azures_image_build_reads_it(tmp_path, wheels):
    conda = {"channels": ["conda-forge"],
             "dependencies": [f"python={HERE}", "pip=26.1", "mkl", "pyjokes=0.6", {"pip": ["pandas"]}]}
    spec = environments.from_conda("conda-env", conda)
    assert (spec.python, spec.conda, spec.pip) == (HERE, ["pip=26.1", "mkl", "pyjokes=0.6"], ["pandas"])
    built = compute(tmp_path, wheels).build(spec, blob(tmp_path))
    assert run(built.python, "import pyjokes").returncode == 0
    assert "conda package pip=26.1: the fake builds with its own pip" in built.notes
    assert "conda package mkl is not a Python distribution; not installed (Azure installs it from conda channels)" \
        in built.notes


@pytest.mark.parametrize("conda, pip", [("numpy=1.22", "numpy==1.22.*"), ("numpy=1.22.4", "numpy==1.22.4.*"),
                                        ("numpy==1.22.4", "numpy==1.22.4"), ("numpy>=1.22,<2", "numpy>=1.22,<2"),
                                        ("conda-forge::numpy 1.22.*", "numpy==1.22.*"), ("py-xgboost=2.0", "xgboost==2.0.*"),
                                        ("numpy=1.22=py310h_0", "numpy==1.22.*"), ("scipy", "scipy")])
def test_conda_specs_as_pip_requirements(conda, pip):
    assert environments.conda_to_pip(conda)[0] == pip


def test_python_older_than_azure_supports_is_refused(tmp_path):
    """azureml-core's default conda file: "Currently Azure ML only supports 3.8 and later"."""
    with pytest.raises(ImageBuildError, match=r"^the environment asks for Python 3\.6; Azure ML supports Python 3\.8 "
                                              r"and later$"):
        compute(tmp_path).build(EnvironmentSpec("old", "3.6", ["pandas"]), blob(tmp_path))


def test_pins_that_need_a_newer_python_are_refused(tmp_path):
    """pandas 3 requires Python >= 3.11: an environment on Python 3.10 pinning it cannot be built, on Azure either."""
    from importlib import metadata

    pin = f"pandas=={metadata.version('pandas')}"
    with pytest.raises(ImageBuildError, match=rf"^No matching distribution found for {pin}: pandas .* requires Python "
                                              r">=3\.1\d, the environment asks for Python 3\.10$") as caught:
        compute(tmp_path).build(EnvironmentSpec("old", "3.10", [pin]), blob(tmp_path))
    assert "require a different python version" in caught.value.log


@pytest.mark.slow
def test_a_requirement_from_the_index_that_needs_a_newer_python_is_refused(tmp_path, wheels):
    """It installs on the fake's Python, but the environment asks for 3.10: resolved for 3.10, it is refused."""
    with pytest.raises(ImageBuildError, match=r"^the requirements cannot be installed on Python 3\.10: Package "
                                              r"'needs-new-python' requires a different Python: 3\.10\.0 not in "):
        compute(tmp_path, wheels).build(EnvironmentSpec("old", "3.10", ["needs-new-python==1.0"]), blob(tmp_path))
    assert compute(tmp_path, wheels).build(EnvironmentSpec("new", HERE, ["needs-new-python==1.0"]), blob(tmp_path))


@pytest.mark.slow
def test_another_python_runs_on_the_fakes_with_the_differences_noted(tmp_path, wheels):
    spec = EnvironmentSpec("py310", "3.10", ["numpy~=1.22.0", "pyjokes"])
    built = compute(tmp_path, wheels).build(spec, blob(tmp_path))
    assert run(built.python, "import pyjokes, numpy").returncode == 0
    notes = "\n".join(built.notes)
    assert f"Python 3.10 requested: the fake has Python {HERE} only" in notes
    assert f"numpy~=1.22.0 (for Python 3.10): the fake's Python {HERE} uses numpy " in notes
    assert "requirements resolved for Python 3.10: pyjokes" in notes


def another_python():
    """An interpreter of another Python version on this machine, or skip."""
    found = find_pythons()
    usable = sorted((v for v in found if tuple(map(int, v.split("."))) >= (3, 8)),
                    key=lambda v: tuple(map(int, v.split("."))))
    if not usable:
        pytest.skip("no Python interpreter of another version on this machine")
    return usable[-1], found[usable[-1]]


@pytest.mark.slow
def test_another_python_found_on_the_machine_builds_and_runs_the_environment(tmp_path, wheels):
    """As Azure's image build makes a conda env of the Python asked for: a venv of that interpreter, every
    requirement installed from the index (none of the fake's packages: they are built for its own Python)."""
    version, interpreter = another_python()
    machine = Compute(tmp_path / "cache", index=PackageIndex(offline=True, find_links=(str(wheels),)),
                      pythons={version: interpreter})
    built = machine.build(EnvironmentSpec("other", version, ["pyjokes==0.6.0"]), blob(tmp_path))
    done = run(built.python, "import sys, pyjokes; print('%d.%d' % sys.version_info[:2], pyjokes.get_joke())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1) == [version, "a joke from a local wheel\n"]
    assert f"Python {version} requested: built on Python {version}." in "\n".join(built.notes)
    assert run(built.python, "import pandas").returncode != 0  # the fake's own packages are not seen
    with pytest.raises(ImageBuildError, match=r"No matching distribution found for pandas"):
        machine.build(EnvironmentSpec("other", version, ["pandas"]), blob(tmp_path))


@pytest.mark.slow
def test_offline_a_curated_environment_is_stood_in_for_even_with_its_python_at_hand(tmp_path):
    """Its definition's packages come from an index: offline, the fake's own packages stand in, and the note says
    why the interpreter of its Python was not used."""
    spec = environments.curated_environment("azureml:AzureML-sklearn-1.5@latest")
    machine = Compute(tmp_path / "cache", index=PackageIndex(offline=True), pythons={"3.10": sys.executable})
    built = machine.build(spec, blob(tmp_path))
    notes = "\n".join(built.notes)
    assert "curated environment sklearn-1.5: not built from its definition offline" in notes
    assert "curated environment sklearn-1.5: the fake stands its own packages in for the image's" in notes
    assert run(built.python, "import sklearn, pandas").returncode == 0


def test_interpreters_are_found_on_path_and_in_pyenv(tmp_path):
    bin_folder, pyenv = tmp_path / "bin", tmp_path / "pyenv"
    bin_folder.mkdir()
    for name in ("python3.9", "python3.x", "python3.10-config", "../shims/python3.13"):
        (bin_folder / name).parent.mkdir(exist_ok=True)
        (bin_folder / name).write_text("#!/bin/sh\n")
        (bin_folder / name).chmod(0o755)
    for release in ("3.8.10", "3.8.18", "3.12.1", "2.7.18"):
        folder = pyenv / "versions" / release / "bin"
        folder.mkdir(parents=True)
        (folder / f"python{release.rsplit('.', 1)[0]}").write_text("")
    found = find_pythons(search_path=f"{tmp_path / 'shims'}:{bin_folder}", pyenv_root=pyenv)
    own = HERE
    expected = {"3.9": bin_folder / "python3.9", "3.8": pyenv / "versions/3.8.18/bin/python3.8",
                "3.12": pyenv / "versions/3.12.1/bin/python3.12"}
    assert found == {v: p for v, p in expected.items() if v != own}


def test_a_base_image_that_does_not_exist_fails_the_build_as_docker_pull_does(tmp_path):
    spec = EnvironmentSpec("img", HERE, [], image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu26.04:latest")
    with pytest.raises(ImageBuildError, match=r"^base image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu26.04:latest "
                                              r"was not found: manifest unknown \(did you mean 'openmpi4.1.0-ubuntu22.04'"
                                              r"[^)]*\); Azure ML's supported base images: ") as caught:
        compute(tmp_path).build(spec, blob(tmp_path))
    assert 'manifest tagged by "latest" is not found' in caught.value.log


@pytest.mark.parametrize("image, python, note", [
    ("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1", "3.10", "the fake runs the environment on "
                                                                             "this machine, not in the image"),
    ("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04", None, "is deprecated"),
    ("python:3.10-slim", "3.10", "Docker Hub's Python 3.10 image"),
    ("docker.io/python", None, "Docker Hub's Python image of tag 'latest'"),
    ("myregistry.azurecr.io/team/image:1", None, "an image outside Azure ML's registry, not checked"),
])
def test_known_images_give_their_python_and_a_note(image, python, note):
    found, notes = environments.check_image(image)
    assert found == python and note in "\n".join(notes)


def test_an_image_of_an_old_python_is_refused(tmp_path):
    with pytest.raises(ImageBuildError, match=r"asks for Python 3\.7"):
        compute(tmp_path).build(EnvironmentSpec("img", None, [], image="python:3.7"), blob(tmp_path))


@pytest.mark.parametrize("reference", ["azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
                                       "azureml://registries/azureml/environments/sklearn-1.5/versions/31",
                                       "azureml:AzureML-sklearn-1.5@latest", "azureml:AzureML-sklearn-1.5:31",
                                       "AzureML-sklearn-1.5"])
def test_curated_environments_by_every_name_azure_takes(reference):
    spec = environments.curated_environment(reference)
    assert spec is not None and spec.curated == "sklearn-1.5" and spec.python == "3.10"
    assert spec.image == "mcr.microsoft.com/azureml/openmpi5.0-ubuntu24.04"
    assert "scikit-learn~=1.5.0" in spec.pip and "azureml-defaults" in spec.pip
    assert "Azure/azureml-assets@" in spec.notes[0]


def test_an_unknown_curated_environment_is_not_found():
    with pytest.raises(ServiceError, match=r"^Environment 'sklearn-9.9' was not found in registry azureml \(asked as "
                                           r"'azureml://registries/azureml/environments/sklearn-9.9/labels/latest'\) "
                                           r"\(did you mean 'sklearn-1.5'") as caught:
        environments.curated_environment("azureml://registries/azureml/environments/sklearn-9.9/labels/latest")
    assert caught.value.status == 404
    with pytest.raises(ServiceError, match="^Environment 'Minimal' was not found in registry azureml"):
        environments.curated_environment("AzureML-Minimal")   # SDK v1's old curated environment: removed by Azure


def test_a_curated_environment_the_table_does_not_define_runs_on_the_fakes_packages():
    spec = environments.curated_environment("azureml://registries/azureml/environments/responsibleai-tabular/labels/latest")
    assert spec is not None and spec.curated == "responsibleai-tabular" and spec.pip == []
    assert "its definition is not in the fake's table" in spec.notes[0]


@pytest.mark.slow
def test_a_curated_environment_is_stood_in_for_by_the_fakes_packages(tmp_path):
    spec = environments.curated_environment("azureml:AzureML-sklearn-1.5@latest")
    built = compute(tmp_path).build(spec, blob(tmp_path))
    assert run(built.python, "import sklearn, pandas").returncode == 0
    notes = "\n".join(built.notes)
    assert "Azure runs it as a prebuilt image" in notes
    assert "curated environment sklearn-1.5: the fake stands its own packages in for the image's" in notes
    assert "curated environment sklearn-1.5: not among the fake's packages: " in notes and "py-spy==0.3.12" in notes
    assert "curated environment sklearn-1.5: other versions here: scikit-learn~=1.5.0 (the fake has " in notes


def test_the_curated_table_cites_its_source():
    table = environments.table()
    assert table["source"]["repository"] == "Azure/azureml-assets" and len(table["source"]["commit"]) == 40
    names = {e["name"] for e in table["environments"]}
    assert {"sklearn-1.5", "ai-ml-automl", "lightgbm-3.3", "tensorflow-2.16-cuda12", "mldesigner"} <= names
    assert all(e["path"].startswith("assets/") for e in table["environments"])
    assert table["base_images_source"]["repository"] == "Azure/AzureML-Containers"


def test_pip_options_are_not_used_offline(tmp_path):
    built = compute(tmp_path).build(EnvironmentSpec("opts", HERE, ["--extra-index-url https://example.invalid/simple",
                                                                   "pandas"]), blob(tmp_path))
    assert "pip option '--extra-index-url https://example.invalid/simple' not used: the fake builds offline" \
        in built.notes


def test_an_explicit_index_leaves_pips_own_configuration_out(tmp_path):
    explicit = Compute(tmp_path / "a", index=PackageIndex(index_url="https://example.invalid/simple"))
    assert explicit._pip_env()["PIP_CONFIG_FILE"] == os.devnull
    assert explicit.index.pip_args() == ["--index-url", "https://example.invalid/simple"]
    assert "PIP_CONFIG_FILE" not in Compute(tmp_path / "b")._pip_env() or os.environ.get("PIP_CONFIG_FILE")
    assert PackageIndex(offline=True, find_links=("w",)).pip_args() == ["--no-index", "--find-links", "w"]


# -- through the real SDKs -------------------------------------------------------------------------------
def v1_step_run(fake_azure, tmp_path, environment, *, script="import pyjokes\nprint(pyjokes.get_joke())\n",
                allow_reuse=False):
    """One PythonScriptStep in ``environment``, written with azureml-core directly, submitted and waited for."""
    from azureml.core import Experiment
    from azureml.core.runconfig import RunConfiguration
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "job.py").write_text(script)
    runconfig = RunConfiguration()
    runconfig.environment = environment
    step = PythonScriptStep(name="job", script_name="job.py", source_directory=str(source),
                            compute_target="cpu-cluster", runconfig=runconfig, allow_reuse=allow_reuse)
    run = Experiment(fake_azure.workspace, "environments").submit(Pipeline(fake_azure.workspace, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return fake_azure.step_runs(run.id)["job"]


def v1_environment(name, pip, python=HERE, image=None):
    from azureml.core import Environment
    from azureml.core.conda_dependencies import CondaDependencies

    environment = Environment(name)
    environment.python.conda_dependencies = CondaDependencies.create(python_version=python, pip_packages=pip,
                                                                     pin_sdk_version=False)
    if image:
        environment.docker.base_image = image
    return environment


@pytest.mark.slow
def test_v1_a_package_the_fake_lacks_comes_from_the_index(fake_azure, tmp_path, wheels):
    fake_azure.service.compute.index = PackageIndex(offline=True, find_links=(str(wheels),))
    step = v1_step_run(fake_azure, tmp_path, v1_environment("jokes", ["pyjokes==0.6.0"]))
    assert step.status == "Completed", step.error
    assert "a joke from a local wheel" in fake_azure.step_log(step)


@pytest.mark.slow
def test_v1_a_base_image_that_does_not_exist_fails_the_image_build(fake_azure, tmp_path):
    image = "mcr.microsoft.com/azureml/openmpi9.9-ubuntu20.04:latest"
    step = v1_step_run(fake_azure, tmp_path, v1_environment("img", ["pandas"], image=image), script="print(1)\n")
    assert step.status == "Failed"
    assert step.error["message"].startswith(f"Image build failed for environment 'img': base image {image} was not "
                                            f"found: manifest unknown")
    log = fake_azure.service.engine.read_file(step.id, "azureml-logs/20_image_build_log.txt").decode()
    assert f"Step 1/N : FROM {image}" in log


@pytest.mark.slow
def test_v1_curated_environments_by_name(fake_azure, tmp_path):
    from azureml.core import Environment

    curated = Environment.get(fake_azure.workspace, "AzureML-sklearn-1.5")
    assert curated.python.conda_dependencies.get_python_version() == "3.10"
    assert curated.docker.base_image == "mcr.microsoft.com/azureml/openmpi5.0-ubuntu24.04"
    step = v1_step_run(fake_azure, tmp_path, curated, script="import sklearn\nprint('sklearn', sklearn.__version__)\n")
    assert step.status == "Completed", step.error
    log = fake_azure.step_log(step)
    assert log.startswith("[fake Azure ML] fidelity note: curated environment sklearn-1.5 (")
    assert "sklearn " in log
    with pytest.raises(Exception, match="Code: 404"):   # SDK v1's old AzureML-Minimal: Azure removed it
        Environment.get(fake_azure.workspace, "AzureML-Minimal")
    with pytest.raises(Exception, match="reserved for curated environments"):
        Environment("AzureML-mine").register(fake_azure.workspace)
    registered = v1_environment("mine", ["pandas"]).register(fake_azure.workspace)
    assert (registered.name, registered.version) == ("mine", "1")
    assert Environment.get(fake_azure.workspace, "mine").version == "1"


@pytest.mark.slow
def test_v1_reuse_is_keyed_on_the_environment(fake_azure, tmp_path, wheels):
    """A resubmission whose environment changed re-runs its step; the same environment is reused."""
    fake_azure.service.compute.index = PackageIndex(offline=True, find_links=(str(wheels),))
    first = v1_step_run(fake_azure, tmp_path, v1_environment("env", ["pandas"]), script="print(1)\n", allow_reuse=True)
    changed = v1_step_run(fake_azure, tmp_path, v1_environment("env", ["pandas", "pyjokes"]), script="print(1)\n",
                          allow_reuse=True)
    again = v1_step_run(fake_azure, tmp_path, v1_environment("env", ["pandas", "pyjokes"]), script="print(1)\n",
                        allow_reuse=True)
    assert [r.status for r in (first, changed, again)] == ["Completed"] * 3
    assert changed.reused_from is None and again.reused_from == changed.id


def v2_run(fake, tmp_path, environment):
    from azure.ai.ml import command, dsl

    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "hello.py").write_text("import sklearn\nprint('hello from', sklearn.__name__)\n")
    hello = command(command="python hello.py", code=str(source), environment=environment)

    @dsl.pipeline(default_compute="cpu-cluster")
    def pipeline():
        hello()

    job = fake.ml_client.jobs.create_or_update(pipeline(), experiment_name="environments")
    fake.service.engine.wait(job.name)
    return next(iter(fake.step_runs(job.name).values()))


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
                                         "azureml:AzureML-sklearn-1.5@latest"])
def test_v2_curated_environments_run(fake_azure_v2, tmp_path, environment):
    step = v2_run(fake_azure_v2, tmp_path, environment)
    assert step.status == "Completed", step.error
    log = fake_azure_v2.step_log(step)
    assert "hello from sklearn" in log and "fidelity note: curated environment sklearn-1.5" in log


@pytest.mark.slow
def test_v2_an_unknown_curated_environment_is_refused(fake_azure_v2, tmp_path):
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as raised:
        v2_run(fake_azure_v2, tmp_path, "azureml://registries/azureml/environments/sklearn-0.1/labels/latest")
    assert raised.value.status_code == 404
    assert "Environment 'sklearn-0.1' was not found in registry azureml" in str(raised.value)


@pytest.mark.slow
def test_v2_an_environment_of_image_and_conda_file_as_azureml_examples_writes_it(fake_azure_v2, tmp_path, wheels):
    """azureml-examples' pipelines-with-components/basics/5c_env_conda_file: a GPU base image, a conda file asking
    for Python 3.8, pip and pyjokes. Built from the index (here a folder), with what it cannot honour noted."""
    from azure.ai.ml import command, dsl
    from azure.ai.ml.entities import Environment

    fake_azure_v2.service.compute.index = PackageIndex(offline=True, find_links=(str(wheels),))
    (tmp_path / "conda.yaml").write_text("name: demo_env\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.8\n"
                                         "  - pip\n  - pip:\n    - pyjokes\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "hello.py").write_text("import pyjokes\nprint(pyjokes.get_joke())\n")
    environment = Environment(image="mcr.microsoft.com/azureml/openmpi5.0-cuda12.4-ubuntu22.04:latest",
                              conda_file=str(tmp_path / "conda.yaml"))
    hello = command(command="python hello.py", code=str(source), environment=environment)

    @dsl.pipeline(default_compute="cpu-cluster")
    def pipeline():
        hello()

    job = fake_azure_v2.ml_client.jobs.create_or_update(pipeline(), experiment_name="environments")
    fake_azure_v2.service.engine.wait(job.name)
    step = next(iter(fake_azure_v2.step_runs(job.name).values()))
    assert step.status == "Completed", step.error
    log = fake_azure_v2.step_log(step)
    assert "a joke from a local wheel" in log
    assert f"fidelity note: Python 3.8 requested: the fake has Python {HERE} only" in log
    assert "fidelity note: base image mcr.microsoft.com/azureml/openmpi5.0-cuda12.4-ubuntu22.04 is a GPU image" in log
    assert "fidelity note: requirements resolved for Python 3.8: pyjokes" in log


@pytest.mark.parametrize("output, refused", [
    # azureml-examples' automl preprocessing environment (Python 3.8): wrapt<=1.12.1 exists only as an sdist, which a
    # dry run for another Python cannot take and Azure's build compiles: inconclusive, not a refusal
    ("ERROR: Ignored the following versions that require a different python version: 1.7.0 Requires-Python >=3.10; "
     "2.1.0 Requires-Python >=3.9\nERROR: Could not find a version that satisfies the requirement "
     "wrapt<=1.12.1,>=1.11.1 (from inference-schema) (from versions: 1.13.0, 2.0.1)\n"
     "ERROR: No matching distribution found for wrapt<=1.12.1,>=1.11.1 (from inference-schema)", False),
    # the pinned version itself needs a newer Python: refused, as Azure's build fails
    ("ERROR: Ignored the following versions that require a different python version: 3.0.0 Requires-Python >=3.11\n"
     "ERROR: Could not find a version that satisfies the requirement pandas==3.0.0 (from versions: 1.5.3)\n"
     "ERROR: No matching distribution found for pandas==3.0.0", True),
    ("ERROR: Package 'needs-new-python' requires a different Python: 3.10.0 not in '>=3.11'", True),
    ("ERROR: No matching distribution found for nothing-like-it", False),
])
def test_a_dry_run_for_another_python_refuses_only_what_that_python_refuses(output, refused):
    from emulator.azure_service.compute import _python_refused

    assert _python_refused(output) is refused
