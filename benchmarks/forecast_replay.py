"""Why the emulator's forecast is what it is: every child of one run, and ensemble selection replayed on them.

    python benchmarks/forecast_replay.py run macro --out /tmp/replay     # a 60 s run, every child refitted (~2 min)
    python benchmarks/forecast_replay.py replay /tmp/replay               # the procedures below, on every saved run

``run`` runs the emulator as ``forecast.py`` does, then refits every completed child alone and forecasts the holdout
with it; it prints each child's normalised RMSE on the 3 rolling origins and its holdout MASE, and saves them
(``DATASET.pkl``). ``replay`` applies ensemble-selection procedures to the saved children's out-of-fold predictions
and prints, per dataset, each procedure's honest validation score (the procedure applied to the other origins,
scored on the one left out, averaged) and the holdout MASE of the procedure applied to every origin. Decide on the
first; the second is the benchmark's. Procedures: ``best`` (the best child), ``caruana`` (Azure's weights on every
origin), ``bagged`` (``emulator.ensemble.bagged_caruana``, what forecasting's VotingEnsemble uses).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import forecast as B  # noqa: E402

METRIC = "normalized_root_mean_squared_error"


def run(dataset: str, out: Path, budget: int, workspace: Path, n_cv: int | None = None, concurrency: int = 1
        ) -> None:
    from emulator import AutoMLConfig, Experiment, ForecastingParameters
    from emulator.worker import POOL

    freq, h, m, _ = B.DATASETS[dataset]
    train, test = B.split(B.load(dataset), h)
    POOL.warm(1)
    POOL.wait_ready()
    load = os.getloadavg()[0]
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    fp = ForecastingParameters(time_column_name="ds", time_series_id_column_names=["unique_id"], forecast_horizon=h,
                               target_lags="auto", target_rolling_window_size="auto", freq=freq)
    more = {"n_cross_validations": n_cv} if n_cv else {}
    config = AutoMLConfig(task="forecasting", training_data=train, label_column_name="y", forecasting_parameters=fp,
                          experiment_timeout_minutes=budget / 60, max_concurrent_iterations=concurrency,
                          random_state=0, **more)
    submitted = Experiment(workspace, "replay").submit(config)
    _, model = submitted.get_output()
    result = submitted._result
    final = B.scores(train, test, model.forecast(test[["ds", "unique_id"]])[0], m)["mase"]
    seconds = time.perf_counter() - started
    loop, rows = result.loop, []
    fold = loop.fold
    for child in loop.children:
        if child.status != "Completed" or child.oof is None or child.algorithm == "VotingEnsemble":
            continue
        forecast = result.refit_child(child.iteration).forecast(test[["ds", "unique_id"]])[0]
        rows.append({"iteration": child.iteration, "name": child.display_name, "score": child.score, "oof": child.oof,
                     "origins": [fold.kind.primary_value(fold, METRIC, v, child.oof[v]) for _, v in fold.splits],
                     "holdout": forecast, "mase": B.scores(train, test, forecast, m)["mase"]})
    sf = fold.extra
    saved = {"dataset": dataset, "final": final, "best": result.best.display_name, "rows": rows, "y": fold.y,
             "splits": fold.splits, "row_series": sf.row_series, "ranges": sf.ranges, "scales": sf.scales,
             "train": train, "test": test, "m": m}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{dataset}.pkl", "wb") as f:
        pickle.dump(saved, f)
    print(f"{dataset}: MASE {final:.4f} ({result.best.display_name}) in {seconds:.1f} s, load {load:.1f}")
    for row in sorted(rows, key=lambda r: r["score"]):
        print(f"  {row['iteration']:>3} {row['name']:<42} NRMSE {row['score']:.4f} origins "
              f"{' '.join(f'{v:.4f}' for v in row['origins'])}  holdout MASE {row['mase']:.4f}")


def _fold(saved: dict[str, Any], splits: list[Any]) -> Any:
    from emulator.tasks import FoldData

    extra = SimpleNamespace(row_series=saved["row_series"], ranges=saved["ranges"], scales=saved["scales"])
    y = saved["y"]
    return FoldData("forecasting", np.zeros((len(y), 0)), y, None, list(splits), np.arange(len(y)), None,
                    float(y.min()), float(y.max()), 0, extra=extra)


def _best(fold: Any, metric: str, oofs: list[np.ndarray], scores: list[float]) -> list[float]:
    weights = [0.0] * len(oofs)
    weights[int(np.argmin(scores))] = 1.0
    return weights


def replay(folder: Path, origins: int | None = None) -> None:
    from emulator import ensemble as E

    procedures: dict[str, Callable[..., list[float]]] = {"best": _best, "caruana": E.caruana, "bagged": E.bagged_caruana}
    print(f"{'dataset':<16}" + "".join(f"{name + ': CV / holdout':>26}" for name in procedures))
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in procedures}
    for path in sorted(folder.glob("*.pkl")):
        with open(path, "rb") as f:
            saved = pickle.load(f)
        if origins:
            saved["splits"] = saved["splits"][-origins:]  # fold 0 is the earliest
            for row in saved["rows"]:
                row["score"] = float(np.mean(row["origins"][-origins:]))
        pool = sorted(saved["rows"], key=lambda r: r["score"])[:12]  # the engine's ENSEMBLE_POOL
        oofs = [r["oof"] for r in pool]
        line = f"{saved['dataset']:<16}"
        for name, choose in procedures.items():
            honest = []
            for k in range(len(saved["splits"])):
                others = _fold(saved, [s for j, s in enumerate(saved["splits"]) if j != k])
                weights = choose(others, METRIC, oofs, [E.fold_score(others, METRIC, o) for o in oofs])
                honest.append(E.fold_score(_fold(saved, [saved["splits"][k]]), METRIC, E.blend(oofs, weights)))
            every = _fold(saved, saved["splits"])
            weights = choose(every, METRIC, oofs, [E.fold_score(every, METRIC, o) for o in oofs])
            forecast = E.blend([r["holdout"][:, None] for r in pool], weights)[:, 0]
            mase = B.scores(saved["train"], saved["test"], forecast, saved["m"])["mase"]
            totals[name].append((float(np.mean(honest)), mase))
            line += f"{np.mean(honest):>17.4f} / {mase:6.3f}"
        print(line)
    print(f"{'mean':<16}" + "".join(f"{np.mean([c for c, _ in v]):>17.4f} / {np.mean([m for _, m in v]):6.3f}"
                                     for v in totals.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run the emulator on a dataset, refit and forecast with every child")
    one.add_argument("dataset", choices=list(B.DATASETS))
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--budget", type=int, default=60)
    one.add_argument("--n-cv", type=int, help="n_cross_validations (default: the emulator's)")
    one.add_argument("--concurrency", type=int, default=1, help="max_concurrent_iterations")
    again = sub.add_parser("replay", help="replay ensemble selection on the saved runs")
    again.add_argument("folder", type=Path)
    again.add_argument("--origins", type=int, help="use only the latest K rolling origins of each run")
    args = parser.parse_args()
    if args.command == "run":
        with tempfile.TemporaryDirectory(prefix="forecast-replay-") as workspace:
            run(args.dataset, args.out, args.budget, Path(workspace), args.n_cv, args.concurrency)
    else:
        replay(args.folder, args.origins)


if __name__ == "__main__":
    main()
