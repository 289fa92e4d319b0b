"""The AutoML emulator vs FLAML vs a default HistGradientBoosting, at equal wall-clock budgets.

    pip install -e '.[bench]'
    python benchmarks/automl.py                       # 30 s and 120 s, seeds 0 1 2, every dataset
    python benchmarks/automl.py --budgets 30 --seeds 0 1 2 --datasets fair anes96
    python benchmarks/automl.py --table               # the markdown tables from the results so far

Every (dataset, seed) gets one outer split (75% train, 25% holdout, stratified for classification),
shared by the three systems. Each system gets the training rows as a raw DataFrame and the same
wall-clock budget; the time measured is the whole fit (featurization, search, final refit)
plus predicting the holdout. Scores: holdout AUC_weighted (classification), R2 and RMSE
normalised by the training range (regression). The order of the two timed systems alternates per
split, so machine load hits both alike.

Results are appended to ``benchmarks/results.jsonl`` one line per run as they finish; a second
invocation skips what is already there (resumable). Datasets ship with pip packages (statsmodels,
scikit-learn, palmerpenguins), except Titanic: ``--titanic`` (default ``../shared/data/titanic.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results.jsonl"
DATASETS = ("titanic_raw", "titanic_prepped", "fair", "anes96", "diabetes", "randhie", "penguins")
SYSTEMS = ("emulator", "flaml", "hgb")


# -- datasets: (frame, label, task) ------------------------------------------------------------
def load(name: str, titanic: Path) -> tuple[pd.DataFrame, str, str]:
    if name == "titanic_raw":
        return pd.read_csv(titanic), "Survived", "classification"
    if name == "titanic_prepped":
        from plugins.dataprep_titanic import prepare

        return prepare(pd.read_csv(titanic)), "Survived", "classification"
    if name == "fair":
        from statsmodels.datasets import fair

        frame = fair.load_pandas().data
        return frame.assign(affair=(frame["affairs"] > 0).astype(int)).drop(columns=["affairs"]), "affair", \
            "classification"
    if name == "anes96":
        from statsmodels.datasets import anes96

        return anes96.load_pandas().data.astype({"vote": int}), "vote", "classification"
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        data = load_diabetes(as_frame=True)
        return data.frame, "target", "regression"
    if name == "randhie":
        from statsmodels.datasets import randhie

        return randhie.load_pandas().data, "mdvis", "regression"
    if name == "penguins":
        from palmerpenguins import load_penguins

        frame = load_penguins()
        return frame[frame["species"].notna()].reset_index(drop=True), "species", "classification"
    raise SystemExit(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")


def split(frame: pd.DataFrame, label: str, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    stratify = frame[label] if task == "classification" else None
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


# -- systems: fit on train within budget, return holdout predictions ---------------------------------
def run_emulator(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
                 args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    from emulator import AutoMLConfig, Experiment

    metric = "AUC_weighted" if task == "classification" else "r2_score"
    config = AutoMLConfig(task=task, training_data=train, label_column_name=label, primary_metric=metric,
                          experiment_timeout_minutes=budget / 60, random_state=seed,
                          max_concurrent_iterations=args.concurrency, max_cores_per_iteration=1)
    run = Experiment(args.workspace, "benchmark").submit(config)
    _, model = run.get_output()
    features = test.drop(columns=[label])
    if task == "classification":
        return model.predict_proba(features), np.asarray(model.classes_ if hasattr(model, "classes_")
                                                         else model.steps[-1][1].classes_)
    return model.predict(features), None


def _flaml_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype("object")
    return out


def run_flaml(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
              args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    from flaml import AutoML

    automl = AutoML()
    n_classes = train[label].nunique() if task == "classification" else 0
    metric = ("roc_auc" if n_classes == 2 else "roc_auc_ovr_weighted") if task == "classification" else "r2"
    automl.fit(_flaml_frame(train.drop(columns=[label])), train[label], task=task, metric=metric,
               time_budget=budget, seed=seed, verbose=0, n_jobs=-1)
    features = _flaml_frame(test.drop(columns=[label]))
    if task == "classification":
        return automl.predict_proba(features), np.asarray(automl.classes_)
    return automl.predict(features), None


def run_hgb(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
            args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def frame(data: pd.DataFrame) -> pd.DataFrame:
        """Strings as categories (codes as numbers above HGB's 255-category limit)."""
        out = data.drop(columns=[label]).copy()
        for column in out.columns:
            if not pd.api.types.is_numeric_dtype(out[column]):
                categories = sorted(train[column].dropna().astype(str).unique())
                values = pd.Categorical(out[column].astype("object").astype("string").astype("object"),
                                        categories=categories)
                out[column] = values if len(categories) <= 250 else pd.Series(values.codes, dtype=float).where(
                    values.codes >= 0)
        return out

    if task == "classification":
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        model.fit(frame(train), train[label])
        return model.predict_proba(frame(test)), np.asarray(model.classes_)
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
    model.fit(frame(train), train[label])
    return model.predict(frame(test)), None


RUNNERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray | None]]] = {
    "emulator": run_emulator, "flaml": run_flaml, "hgb": run_hgb}


def score(task: str, train: pd.DataFrame, test: pd.DataFrame, label: str, prediction: np.ndarray,
          classes: np.ndarray | None) -> dict[str, float]:
    from emulator import metrics as M

    y = test[label].to_numpy()
    if task == "classification":
        return {"score": M.primary_value("AUC_weighted", y, np.asarray(prediction), classes)}
    y_train = train[label].to_numpy(dtype=float)
    values = M.regression_metrics(y.astype(float), np.asarray(prediction, dtype=float), float(y_train.min()),
                                  float(y_train.max()))
    return {"score": values["r2_score"], "nrmse": values["normalized_root_mean_squared_error"]}


# -- results ------------------------------------------------------------------------------------
def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            continue
    return rows


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["dataset"], row["seed"], row["budget"], row["system"]


def run(args: argparse.Namespace) -> None:
    done = {key(r) for r in read_results(args.results)}
    args.workspace = Path(tempfile.mkdtemp(prefix="amlstep-bench-ws-"))
    for budget in args.budgets:
        for seed in args.seeds:
            for index, dataset in enumerate(args.datasets):
                frame, label, task = load(dataset, args.titanic)
                train, test = split(frame, label, task, seed)
                timed = [s for s in ("emulator", "flaml") if s in args.systems]
                if (seed + index) % 2:
                    timed.reverse()  # alternate who runs first, so machine load hits both alike
                jobs = [(s, budget) for s in timed] + ([("hgb", 0)] if "hgb" in args.systems else [])
                for system, system_budget in jobs:
                    if (dataset, seed, system_budget, system) in done:
                        continue
                    from emulator.worker import POOL

                    POOL.warm(args.concurrency)  # the emulator's worker processes are started, like imports,
                    POOL.wait_ready()  # outside the timed section, and never import while FLAML runs
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        started = time.perf_counter()
                        try:
                            prediction, classes = RUNNERS[system](train, test, label, task, budget, seed, args)
                            error = None
                        except Exception as exc:  # recorded, the benchmark goes on
                            prediction, classes, error = None, None, f"{type(exc).__name__}: {exc}"
                        seconds = time.perf_counter() - started
                    row: dict[str, Any] = {"dataset": dataset, "task": task, "seed": seed, "budget": system_budget,
                                           "system": system, "seconds": round(seconds, 2), "rows": len(train),
                                           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                    if error:
                        row["error"] = error
                    else:
                        row.update({k: round(float(v), 5) for k, v in score(task, train, test, label, prediction,
                                                                             classes).items()})
                    with open(args.results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    done.add(key(row))
                    print(f"{dataset:<16} seed {seed} budget {system_budget:>4}s {system:<9} "
                          f"score {row.get('score', float('nan')):.4f} in {seconds:6.1f}s"
                          + (f"  ERROR {error}" if error else ""), flush=True)


# -- tables -------------------------------------------------------------------------------------
def tables(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if "score" in r]
    frame = pd.DataFrame(ok)
    if frame.empty:
        return "(no results yet)"
    out = []
    budgets = sorted(b for b in frame.budget.unique() if b > 0)
    means: dict[tuple[str, int], float] = {}
    for budget in budgets:
        sub = frame[frame.budget == budget]
        out += [f"### Budget {budget} s", "",
                "| dataset | metric | seeds | emulator | FLAML | emu - FLAML | HGB default | emulator time (max) "
                "| FLAML time (max) |",
                "|---|---|---|---|---|---|---|---|---|"]
        emu_scores, flaml_scores = [], []
        for dataset in [d for d in DATASETS if d in set(sub.dataset)]:
            d = sub[sub.dataset == dataset]
            seeds = sorted(set(d[d.system == "emulator"].seed) & set(d[d.system == "flaml"].seed))
            e = d[(d.system == "emulator") & d.seed.isin(seeds)]
            f = d[(d.system == "flaml") & d.seed.isin(seeds)]
            if not seeds:
                continue
            regression = e.task.iloc[0] == "regression"
            metric = "R2 / nRMSE" if regression else "AUC_weighted"

            def cell(x: pd.DataFrame) -> str:
                text = f"{x.score.mean():.4f}"
                return text + (f" / {x.nrmse.mean():.4f}" if regression and "nrmse" in x else "")

            h = frame[(frame.system == "hgb") & (frame.dataset == dataset) & frame.seed.isin(seeds)]
            out.append(f"| {dataset} | {metric} | {len(seeds)} | {cell(e)} | {cell(f)} | "
                       f"{e.score.mean() - f.score.mean():+.4f} | {cell(h) if len(h) else '-'} | "
                       f"{e.seconds.mean():.1f} s ({e.seconds.max():.1f}) | {f.seconds.mean():.1f} s "
                       f"({f.seconds.max():.1f}) |")
            emu_scores.append(e.score.mean())
            flaml_scores.append(f.score.mean())
        if emu_scores:
            means[("emulator", budget)] = float(np.mean(emu_scores))
            means[("flaml", budget)] = float(np.mean(flaml_scores))
            used = sub[sub.system == "emulator"].seconds / budget
            fused = sub[sub.system == "flaml"].seconds / budget
            out += [f"| **mean** | | | **{np.mean(emu_scores):.4f}** | **{np.mean(flaml_scores):.4f}** | "
                    f"{np.mean(emu_scores) - np.mean(flaml_scores):+.4f} | | | |", "",
                    f"Time used at {budget} s ({len(used)} emulator runs): emulator mean {used.mean():.0%} of the "
                    f"budget, worst {used.max():.0%} (overrun {max(0.0, used.max() - 1):.1%}); FLAML mean "
                    f"{fused.mean():.0%}, worst {fused.max():.0%} (overrun {max(0.0, fused.max() - 1):.1%}).", ""]
    out += quarter_time(frame)
    return "\n".join(out)


def quarter_time(frame: pd.DataFrame) -> list[str]:
    """The emulator at 30 s against FLAML at 120 s, on the splits both were run on."""
    emu = frame[(frame.system == "emulator") & (frame.budget == 30)].set_index(["dataset", "seed"]).score
    fla = frame[(frame.system == "flaml") & (frame.budget == 120)].set_index(["dataset", "seed"]).score
    common = emu.index.intersection(fla.index)
    if common.empty:
        return []
    out = ["### Emulator at 30 s vs FLAML at 120 s (same splits)", "",
           "| dataset | seeds | emulator 30 s | FLAML 120 s | difference |", "|---|---|---|---|---|"]
    e_means, f_means = [], []
    for dataset in [d for d in DATASETS if d in {i[0] for i in common}]:
        keys = [k for k in common if k[0] == dataset]
        e, f = emu.loc[keys].mean(), fla.loc[keys].mean()
        e_means.append(e)
        f_means.append(f)
        out.append(f"| {dataset} | {len(keys)} | {e:.4f} | {f:.4f} | {e - f:+.4f} |")
    out += [f"| **mean** | | **{np.mean(e_means):.4f}** | **{np.mean(f_means):.4f}** | "
            f"{np.mean(e_means) - np.mean(f_means):+.4f} |", ""]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 120])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="the emulator's max_concurrent_iterations (FLAML uses n_jobs=-1)")
    parser.add_argument("--titanic", type=Path, default=REPO.parent / "shared" / "data" / "titanic.csv")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the markdown tables of the results so far")
    args = parser.parse_args(argv)
    if args.table:
        print(tables(read_results(args.results)))
        return
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    run(args)
    print()
    print(tables(read_results(args.results)))


if __name__ == "__main__":
    main()
