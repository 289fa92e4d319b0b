"""Microsoft's own example pipelines, submitted as written to the fake Azure ML service.

    python benchmarks/azure_corpus.py PATH/TO/azureml-examples          # every example of the corpus
    python benchmarks/azure_corpus.py PATH/TO/azureml-examples --only 4b_datastore_datapath_uri nyc-taxi
    python benchmarks/azure_corpus.py PATH/TO/azureml-examples --json results.json --keep /tmp/corpus
    python benchmarks/azure_corpus.py PATH/TO/azureml-examples --index-url URL --find-links DIR   # where builds install

Opt-in: it needs a checkout of https://github.com/Azure/azureml-examples (nothing of it is in this
repository). Each example runs against a fake of its own (environments cached across the corpus),
with the real azure-ai-ml client: the README's ``az ml data create`` / ``az ml component create``
steps as ``ml_client.data`` / ``ml_client.components.create_or_update(load_...(FILE))``, then
``ml_client.jobs.create_or_update(load_job(pipeline.yml))`` on the file as it is in the checkout,
then the job followed to its end and its outputs downloaded both ways the SDK offers:
``jobs.download(name, all=True)`` and ``jobs.download(name, output_name=port)``, for the pipeline
job and for each of its step jobs (nested pipelines included).

Environments are built as the fake builds them (:mod:`emulator.azure_service.compute`): from pip's configured
index by default (PyPI), or ``--index-url``/``--find-links``/``--offline``; ``--cache`` keeps them between runs.

Web data: an example whose input is a public URL gets a local file of the same shape, made
deterministically here and served by the fake in place of that URL (``FakeAzureML(web_files=...)``),
so the run stays offline and the YAML stays as written.

Prints one table (example, submitted, completed, outputs downloaded, the failure, and whether Azure
would fail too) and the wall time of the whole run. Which examples are out of scope, and why: see
``OUT_OF_SCOPE`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASICS = "cli/jobs/pipelines-with-components/basics"
TITANIC_URL = "https://dprepdata.blob.core.windows.net/demo/Titanic.csv"


@dataclass(frozen=True)
class Example:
    name: str
    pipeline: str                                   # the job YAML, relative to the checkout
    data: tuple[str, ...] = ()                      # `az ml data create --file X` (relative to the pipeline's folder)
    components: tuple[str, ...] = ()                # `az ml component create --file X`
    web: tuple[str, ...] = ()                       # public URLs the example reads, served from local copies
    azure_fails: str | None = None                  # why Azure itself would fail it, when we believe it would


# The curated sklearn-1.5 image moved to a newer MLflow, which calls the logged-models API Azure ML's tracking
# server does not implement (404): Azure/azureml-examples#3885 (April 2026) reports mlflow.sklearn.log_model failing
# so. register.py's mlflow.register_model("runs:/<trial>/outputs/mlflow-model/") goes there too under MLflow 3
# (azureml-mlflow 1.62 allows mlflow-skinny up to 3.15): azureml-mlflow lists the whole run container (paths like
# outputs/mlflow-model/MLmodel), MLflow finds no MLmodel at the top and searches logged models instead.
MLFLOW3_REGISTER = ("register.py's mlflow.register_model('runs:/...') under the curated image's MLflow 3 searches "
                    "MLflow's logged models, which Azure's tracking server answers 404 (Azure/azureml-examples#3885)")

# The same, for train.py's mlflow.sklearn.save_model(model, path): MLflow 3.15 (what the curated spec's unpinned
# azureml-mlflow resolves to) saves scikit-learn models with skops by default, and the spec has no skops.
MLFLOW3_SKOPS = ("train.py's mlflow.sklearn.save_model under the curated image's newer MLflow (3.15 from the spec: "
                 "skops by default, and the spec has no skops; the image's MLflow moved on, Azure/azureml-examples"
                 "#3885); read from the clients' code, the image's exact MLflow is not published")

CORPUS: tuple[Example, ...] = (
    Example("1a_e2e_local_components", f"{BASICS}/1a_e2e_local_components/pipeline.yml"),
    Example("1b_e2e_registered_components", f"{BASICS}/1b_e2e_registered_components/pipeline.yml",
            components=("train.yml", "score.yml", "eval.yml")),
    Example("2a_basic_component", f"{BASICS}/2a_basic_component/pipeline.yml"),
    Example("2b_component_with_input_output", f"{BASICS}/2b_component_with_input_output/pipeline.yml"),
    Example("3a_basic_pipeline", f"{BASICS}/3a_basic_pipeline/pipeline.yml"),
    Example("3b_pipeline_with_data", f"{BASICS}/3b_pipeline_with_data/pipeline.yml"),
    Example("4a_local_data_input", f"{BASICS}/4a_local_data_input/pipeline.yml"),
    Example("4b_datastore_datapath_uri", f"{BASICS}/4b_datastore_datapath_uri/pipeline.yml"),
    Example("4c_web_url_input", f"{BASICS}/4c_web_url_input/pipeline.yml", web=(TITANIC_URL,)),
    Example("4d_data_input", f"{BASICS}/4d_data_input/pipeline.yml", data=("data.yml",)),
    Example("5a_env_public_docker_image", f"{BASICS}/5a_env_public_docker_image/pipeline.yml"),
    Example("5b_env_registered", f"{BASICS}/5b_env_registered/pipeline.yml"),
    Example("5c_env_conda_file", f"{BASICS}/5c_env_conda_file/pipeline.yml"),
    Example("nyc_taxi_data_regression", "cli/jobs/pipelines-with-components/nyc_taxi_data_regression/pipeline.yml",
            azure_fails=MLFLOW3_SKOPS),
    Example("pipeline_component/nyc_taxi", "cli/jobs/pipelines-with-components/pipeline_with_pipeline_component/"
            "nyc_taxi_data_regression_with_pipeline_component/pipeline.yml", azure_fails=MLFLOW3_SKOPS),
    Example("pipeline_component/train_eval", "cli/jobs/pipelines-with-components/pipeline_with_pipeline_component/"
            "pipeline_with_train_eval_pipeline_component/pipeline.yml"),
    Example("pipelines/nyc-taxi", "cli/jobs/pipelines/nyc-taxi/pipeline.yml"),
    Example("automl/bankmarketing", "cli/jobs/pipelines/automl/cli-automl-classification-task-bankmarketing-pipeline/"
            "pipeline.yml", azure_fails=MLFLOW3_REGISTER),
    Example("automl/housepricing", "cli/jobs/pipelines/automl/cli-automl-regression-housepricing-pipeline/"
            "pipeline.yml", azure_fails=MLFLOW3_REGISTER),
)

# In the folders the corpus covers, what is left out, and why (the fake runs on this machine's CPU,
# with Python only).
OUT_OF_SCOPE = {
    f"{BASICS}/6a_tf_hello_world": "GPU cluster and distributed TensorFlow (2 instances, tensorflow-2.16-cuda12)",
    f"{BASICS}/6b_pytorch_hello_world": "GPU cluster and distributed PyTorch (acpt-pytorch-2.8-cuda12.6)",
    f"{BASICS}/6c_r_iris": "R (Rscript in a Docker build context): the fake runs Python environments only",
    f"{BASICS}/1b_e2e_registered_components/pipeline-serverless.yml": "serverless compute (the same job as "
    "pipeline.yml on `azureml:serverless`)",
    "cli/jobs/pipelines-with-components/nyc_taxi_data_regression/single-job-pipeline.yml": "a one-node variant of "
    "pipeline.yml",
}


@dataclass
class Outcome:
    example: str
    submitted: bool = False
    completed: bool = False
    status: str = ""
    outputs_expected: int = 0
    outputs_all: int = 0          # outputs whose files came back with jobs.download(all=True)
    outputs_named: int = 0        # ... with jobs.download(output_name=...)
    failure: str = ""
    azure_fails: str = ""
    seconds: float = 0.0
    steps: dict[str, str] = field(default_factory=dict)


# -- web data, made locally ------------------------------------------------------------------------------------
def titanic_like(target: Path, rows: int = 60, seed: int = 7) -> None:
    """A CSV with the columns and value shapes of the public Titanic.csv (made up, deterministic)."""
    rng = random.Random(seed)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket",
                         "Fare", "Cabin", "Embarked"])
        for index in range(1, rows + 1):
            sex = rng.choice(["male", "female"])
            writer.writerow([index, rng.randint(0, 1), rng.choice([1, 2, 3]),
                             f"Passenger{index}, {'Mr.' if sex == 'male' else 'Mrs.'} Someone", sex,
                             "" if rng.random() < 0.2 else rng.randint(1, 70), rng.randint(0, 3), rng.randint(0, 2),
                             f"A/{rng.randint(1000, 99999)}", f"{rng.uniform(5, 250):.4f}",
                             "" if rng.random() < 0.7 else f"C{rng.randint(1, 120)}", rng.choice("SCQ")])


WEB_MAKERS = {TITANIC_URL: titanic_like}


# -- one example -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def expected_outputs(job: Any) -> int:
    """How many data outputs the job declares: the pipeline's and every step's (nested pipelines too)."""
    count = len(getattr(job, "outputs", None) or {})
    for node in (getattr(job, "jobs", None) or {}).values():
        component = getattr(node, "component", None)
        if getattr(node, "type", None) == "pipeline" and hasattr(component, "jobs"):
            count += len(node.outputs or {}) + expected_outputs_of_component(component)
        else:
            count += len(getattr(node, "outputs", None) or {})
    return count


def expected_outputs_of_component(component: Any) -> int:
    count = 0
    for node in (getattr(component, "jobs", None) or {}).values():
        inner = getattr(node, "component", None)
        count += len(getattr(node, "outputs", None) or {})
        if getattr(node, "type", None) == "pipeline" and hasattr(inner, "jobs"):
            count += expected_outputs_of_component(inner)
    return count


def has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def download_counts(ml_client: Any, name: str, where: Path, seen: set[str]) -> tuple[int, int]:
    """(outputs back with all=True, outputs back by name) for a job and, recursively, its step jobs."""
    if name in seen:
        return 0, 0
    seen.add(name)
    job = ml_client.jobs.get(name)
    ports = [p for p in (job.outputs or {}) if p != "default"]
    every, named = 0, 0
    folder = where / name.replace("/", "_")
    with contextlib.suppress(Exception):
        ml_client.jobs.download(name, all=True, download_path=folder / "all")
    every += sum(has_files(folder / "all" / "named-outputs" / p) for p in ports)
    for port in ports:
        with contextlib.suppress(Exception):
            ml_client.jobs.download(name, output_name=port, download_path=folder / "by-name")
        named += has_files(folder / "by-name" / "named-outputs" / port)
    children = []
    with contextlib.suppress(Exception):
        children = list(ml_client.jobs.list(parent_job_name=name))
    for child in children:
        a, b = download_counts(ml_client, child.name, where, seen)
        every, named = every + a, named + b
    return every, named


def step_statuses(ml_client: Any, name: str) -> dict[str, str]:
    found = {}
    with contextlib.suppress(Exception):
        for child in ml_client.jobs.list(parent_job_name=name):
            found[str(child.display_name or child.name)] = str(child.status)
    return found


def first_line(text: str, limit: int = 200) -> str:
    """The message on one line (whitespace collapsed; the SDK's own markers dropped), cut at ``limit``."""
    words = " ".join(str(text).replace("Code: UserError", "").split())
    for noise in ("Message: ", "(UserError) "):
        words = words.replace(noise, "", 1) if words.startswith(noise) else words
    return words if len(words) <= limit else words[: limit - 1] + "…"


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {first_line(message)}"


def run_example(example: Example, checkout: Path, folder: Path, cache: Path, timeout: float,
                index: dict[str, Any] | None = None) -> Outcome:
    from azure.ai.ml import load_component, load_data, load_job

    from emulator.azure_service.service import FakeAzureML

    outcome = Outcome(example.name, azure_fails=example.azure_fails or "")
    started = time.perf_counter()
    pipeline = checkout / example.pipeline
    web_files = {}
    for url in example.web:
        local = folder / "web" / url.rsplit("/", 1)[-1]
        local.parent.mkdir(parents=True, exist_ok=True)
        WEB_MAKERS[url](local)
        web_files[url] = local
    options: dict[str, Any] = {"root": folder / "service", "cache_dir": cache, **(index or {})}
    if web_files:
        options["web_files"] = web_files
    service = FakeAzureML(**options).start()
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    try:
        with environment({**service.environment_v2(), "HOME": str(home)}):
            ml_client = service.ml_client()
            try:
                for data in example.data:
                    ml_client.data.create_or_update(load_data(pipeline.parent / data))
                for component in example.components:
                    ml_client.components.create_or_update(load_component(pipeline.parent / component))
                job = load_job(pipeline)
                outcome.outputs_expected = expected_outputs(job)
                created = ml_client.jobs.create_or_update(job)
            except Exception as exc:  # refused at submission: the SDK's or the service's message
                outcome.failure = f"submit: {error_text(exc)}"
                return outcome
            outcome.submitted = True
            deadline = time.monotonic() + timeout
            status = created.status
            while status not in ("Completed", "Failed", "Canceled", "NotResponding") and time.monotonic() < deadline:
                time.sleep(1.0)
                status = ml_client.jobs.get(created.name).status
            outcome.status = str(status)
            outcome.completed = status == "Completed"
            outcome.steps = step_statuses(ml_client, created.name)
            if not outcome.completed:
                error = None
                with contextlib.suppress(Exception):
                    record = service.engine.run(created.name)
                    error = (record.error or {}).get("message")
                outcome.failure = first_line(error or f"status {status}")
            outcome.outputs_all, outcome.outputs_named = download_counts(ml_client, created.name,
                                                                         folder / "downloads", set())
    except Exception as exc:  # the runner's own trouble, reported as the row's failure
        outcome.failure = f"runner: {error_text(exc)}"
        traceback.print_exc()
    finally:
        service.stop()
        outcome.seconds = time.perf_counter() - started
    return outcome


# -- the table -------------------------------------------------------------------------------------------------
def table(outcomes: list[Outcome]) -> str:
    lines = ["| example | submitted | completed | outputs back: all=True | by name | failure | Azure would fail too |",
             "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        expected = o.outputs_expected
        azure = "-" if o.completed else (f"yes: {o.azure_fails}" if o.azure_fails else "no")
        lines.append(f"| {o.example} | {'yes' if o.submitted else 'no'} | {'yes' if o.completed else 'no'} | "
                     f"{o.outputs_all}/{expected} | {o.outputs_named}/{expected} | "
                     f"{o.failure.replace('|', '/') or '-'} | {azure} |")
    done = sum(o.completed for o in outcomes)
    lines.append("")
    lines.append(f"{done} of {len(outcomes)} completed; outputs back with all=True "
                 f"{sum(o.outputs_all for o in outcomes)}/{sum(o.outputs_expected for o in outcomes)}, by name "
                 f"{sum(o.outputs_named for o in outcomes)}/{sum(o.outputs_expected for o in outcomes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of Azure/azureml-examples")
    parser.add_argument("--only", nargs="*", default=None, help="run only these examples (names as in the table)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for one job (default 1800)")
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes as JSON here")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each example's service state, downloads and logs here (default: removed)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="environments cache, kept between invocations (default: inside the run's folder)")
    parser.add_argument("--index-url", default=None,
                        help="the package index environment builds install from (default: pip's own configuration)")
    parser.add_argument("--find-links", nargs="*", default=(), help="folders or URLs of wheels for environment builds")
    parser.add_argument("--offline", action="store_true",
                        help="environment builds use no index: the fake's own packages and --find-links only")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    if not (checkout / "cli" / "jobs").is_dir():
        parser.error(f"{checkout} is not a checkout of Azure/azureml-examples (no cli/jobs folder)")
    chosen = [e for e in CORPUS if args.only is None or e.name in args.only]
    unknown = set(args.only or ()) - {e.name for e in CORPUS}
    if unknown:
        parser.error(f"unknown examples: {', '.join(sorted(unknown))}; known: {', '.join(e.name for e in CORPUS)}")
    os.environ.setdefault("HBI_WORKSPACE_JOB", "true")
    root = Path(args.keep or tempfile.mkdtemp(prefix="amlstep-azure-corpus-"))
    root.mkdir(parents=True, exist_ok=True)
    cache = args.cache or root / "cache"
    started = time.perf_counter()
    outcomes = []
    try:
        for index, example in enumerate(chosen):
            print(f"[{index + 1}/{len(chosen)}] {example.name} ...", file=sys.stderr, flush=True)
            outcome = run_example(example, checkout, root / f"{index:02d}", cache, args.timeout,
                                  {"index_url": args.index_url, "find_links": tuple(args.find_links),
                                   "offline": args.offline})
            print(f"    {'completed' if outcome.completed else 'FAILED'} in {outcome.seconds:.0f} s"
                  f"{': ' + outcome.failure if outcome.failure else ''}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    wall = time.perf_counter() - started
    print(table(outcomes))
    print(f"\nwall time of the corpus run: {wall:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"wall_seconds": wall, "outcomes": [asdict(o) for o in outcomes]}, indent=2))
    return 0 if all(o.completed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
