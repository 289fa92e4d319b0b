"""How many requests following an AutoML pipeline sends to the service, per poll, by number of iterations.

    python benchmarks/poll_requests.py                      # 2, 10 and 100 iterations, SDK v1 and v2
    python benchmarks/poll_requests.py --iterations 2 10 --sdk v1

Each submission runs on the executing fake (``emulator.azure_service``), which counts every request
it answers. A "poll" is one look of the follower at the run: from one pipeline status request to the
next. Printed per SDK and iteration count: polls, the requests of the whole follow, the median
poll's, the busiest poll's, the last poll's (every child ended: what a long run costs per poll at
its end, with what is read back when the run ends), the requests about AutoML child runs (their
status, properties and metrics) and the most of those in one poll. Requests the running steps send
themselves (logs, metrics, model registration) are counted too; they are the same before and after
a change of the follower.

The cheap configuration that makes 100 iterations feasible on one machine: the first 120 rows of
the Titanic file, ``dataprep_titanic``, AutoML with ``LogisticRegression`` only, 2-fold
cross-validation, no ensembles, no early stopping (every iteration runs); no register step. The follower polls every 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def titanic_csv() -> Path:
    return Path(os.environ.get("AMLSTEP_SHARED_DATA", REPO.parent / "shared" / "data")) / "titanic.csv"


def small_pipeline(iterations: int):
    from framework import AutoMLStep, Dataset, Pipeline, Step

    return Pipeline(
        experiment="poll_requests",
        steps=[Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": Dataset("small_titanic_ds")},
                    outputs={"prepped_data": "prepped_data"}),
               AutoMLStep(name="AutoML_Classification", training_data="prepped_data", metrics_output="metrics_data",
                          model_output="best_model_data", task="classification", primary_metric="AUC_weighted",
                          label_column_name="Survived", iterations=iterations, experiment_timeout_minutes=15,
                          n_cross_validations=2, allowed_models=["LogisticRegression"],
                          enable_voting_ensemble=False, enable_stack_ensemble=False,
                          enable_early_stopping=False)],
        outputs={"metrics_output": "metrics_data", "model_output": "best_model_data"})


def measure(sdk: str, iterations: int, cache: Path, folder: Path, csv: Path) -> dict[str, object]:
    from framework import get_plugin_manager
    from framework.backends.azure.sdk_v1.session import V1Session
    from framework.backends.azure.sdk_v2.session import V2Session
    from emulator.azure_service.testing import open_fake_azure

    with open_fake_azure(folder, cache, sdk=sdk) as fake:
        fake.local_workspace.register_dataset("small_titanic_ds", [str(csv)])
        requests = fake.service.requests
        marks: list[int] = []
        session_class = V1Session if sdk == "v1" else V2Session
        original = session_class.status

        def status(self, run):  # a poll starts with the pipeline's status
            marks.append(len(requests))
            return original(self, run)

        session_class.status = status
        try:
            plugins = get_plugin_manager()
            validated = small_pipeline(iterations).validate(plugins)
            started = time.perf_counter()
            result = fake.backend(poll_seconds=0.2).run(validated, plugins=plugins)
            seconds = time.perf_counter() - started
        finally:
            session_class.status = original
        assert result.status == "Completed", result.error
        end = len(requests)
        follow = requests[marks[0]:end] if marks else []
        per_poll = [b - a for a, b in zip(marks, marks[1:])]
        automl = fake.step_runs(result.run_id)["AutoML_Classification"]
        children = {c.id for c in fake.service.engine.children(automl.id)}
        def about_children(r: dict) -> bool:
            return any(c in r["path"] or c in r.get("query", "") for c in children)

        child_requests = sum(1 for r in follow if about_children(r))
        child_per_poll = [sum(1 for r in requests[a:b] if about_children(r)) for a, b in zip(marks, marks[1:])]
        return {"sdk": sdk, "iterations": iterations, "children": len(children), "polls": len(marks),
                "follow_requests": len(follow), "median_per_poll": statistics.median(per_poll) if per_poll else 0,
                "max_per_poll": max(per_poll, default=0), "last_poll": per_poll[-1] if per_poll else 0,
                "child_requests": child_requests, "max_child_per_poll": max(child_per_poll, default=0),
                "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[2, 10, 100])
    parser.add_argument("--sdk", choices=("v1", "v2", "both"), default="both")
    args = parser.parse_args(argv)
    import pandas as pd

    sdks = ("v1", "v2") if args.sdk == "both" else (args.sdk,)
    with tempfile.TemporaryDirectory(prefix="amlstep-poll-bench-") as tmp:
        root = Path(tmp)
        csv = root / "small_titanic.csv"
        pd.read_csv(titanic_csv()).head(120).to_csv(csv, index=False)
        rows = []
        for sdk in sdks:
            for n in args.iterations:
                found = measure(sdk, n, root / "cache", root / f"{sdk}-{n}", csv)
                rows.append(found)
                print(found, file=sys.stderr, flush=True)
    print("| SDK | iterations | child runs | polls | requests while following | median poll | busiest poll | "
          "last poll | child-run requests | most child-run requests in one poll | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['sdk']} | {r['iterations']} | {r['children']} | {r['polls']} | {r['follow_requests']} | "
              f"{r['median_per_poll']} | {r['max_per_poll']} | {r['last_poll']} | {r['child_requests']} | "
              f"{r['max_child_per_poll']} | {r['seconds']} |")


if __name__ == "__main__":
    main()
