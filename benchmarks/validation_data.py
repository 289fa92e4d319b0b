"""The emulator given explicit ``validation_data``: children completed, seconds, holdout score.

    python benchmarks/validation_data.py credit_data hotel_rates cps1988 lending_club diamonds

Each table of ``automl.py`` is split as there (75/25, seed 0); the training part is split again 75/25 (seed 1) into
``training_data`` and ``validation_data``; the emulator runs 30 s with two concurrent iterations and scores the
holdout with the primary metric (AUC_weighted or R2).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import automl as B  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+", choices=B.DATASETS)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--titanic", type=Path, default=B.REPO.parent / "shared" / "data" / "titanic.csv")
    args = parser.parse_args()
    from emulator import AutoMLConfig, Experiment
    from emulator.worker import POOL

    warnings.simplefilter("ignore")
    for name in args.datasets:
        frame, label, task = B.load(name, args.titanic)
        train, test = B.split(frame, label, task, 0)
        fit, valid = B.split(train, label, task, 1)
        POOL.warm(2)
        POOL.wait_ready()
        metric = "AUC_weighted" if task == "classification" else "r2_score"
        with tempfile.TemporaryDirectory() as workspace:
            started = time.perf_counter()
            config = AutoMLConfig(task=task, training_data=fit, validation_data=valid, label_column_name=label,
                                  primary_metric=metric, experiment_timeout_minutes=args.budget / 60, random_state=0,
                                  max_concurrent_iterations=2, max_cores_per_iteration=1)
            run = Experiment(workspace, "validation_data").submit(config)
            _, model = run.get_output()
            seconds = time.perf_counter() - started
            features = test.drop(columns=[label])
            if task == "classification":
                classes = np.asarray(model.classes_ if hasattr(model, "classes_") else model.steps[-1][1].classes_)
                score = B.score(task, train, test, label, model.predict_proba(features), classes)["score"]
            else:
                score = B.score(task, train, test, label, model.predict(features), None)["score"]
            result = run._result
            base = [c for c in result.children if c.algorithm not in ("VotingEnsemble", "StackEnsemble")]
            done = sum(c.status == "Completed" for c in base)
            print(f"{name:<14} {done:>3} of {len(base):>3} children completed  best {result.best.display_name:<16} "
                  f"holdout {metric} {score:.4f}  {seconds:5.1f} s ({result.stop_reason})  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
