"""Featurization ``auto``: what Azure Automated ML does to raw columns before any model sees them.

Drops all-missing, constant and ID-like columns; imputes numbers with the mean and categories
with the most frequent value; one-hot encodes low-cardinality categoricals (and numbers with few
distinct values) and hash-encodes high-cardinality ones; categoricals with more than
``TARGET_ENCODE_MIN`` values also get Azure's ``CatTargetEncoder`` (the label's mean per category,
cross-fitted on the training rows); expands dates into their parts; turns text into word 1-3-gram
term frequencies. The fitted featurizer is the first step of every model pipeline, so models take
raw feature frames.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

MAX_ONE_HOT = 30
FEW_DISTINCT_NUMBERS = 10
HASH_BUCKETS = 32
TEXT_MIN_TOKENS = 3.0
TEXT_MAX_FEATURES = 50
TARGET_ENCODE_MIN = 10  # categoricals with more values than this get a CatTargetEncoder column (per class)
TARGET_ENCODER_FOLDS = 5
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "quarter", "week", "hour", "minute", "second")


@dataclass
class ColumnPlan:
    name: str
    purpose: str  # Numeric, Categorical, CategoricalHash, DateTime, Text, Ignore
    reason: str = ""
    fill: Any = None
    categories: list[Any] = field(default_factory=list)
    had_missing: bool = False
    infinite: int = 0  # +/-inf values seen in training, treated as missing
    extra_one_hot: list[Any] = field(default_factory=list)
    vectorizer: Any = None
    target_encoder: Any = None  # Azure's CatTargetEncoder: scikit-learn's TargetEncoder on this column
    day_first: bool = False  # dates written day first in training (31/01/2020): rows to predict are read so too


class AutoFeaturizer(TransformerMixin, BaseEstimator):
    """Azure-style featurization of a raw DataFrame into a dense float matrix.

    Args:
        featurization: ``"auto"``, ``"off"`` or a FeaturizationConfig dict (``column_purposes``,
            ``drop_columns``, ``blocked_transformers``, ``transformer_params``).
        target_type: ``"binary"``, ``"multiclass"`` or ``"continuous"``: what ``CatTargetEncoder``
            encodes (the task says); None: no target encoding.
    """

    def __init__(self, featurization: str | Mapping[str, Any] = "auto", target_type: str | None = None) -> None:
        self.featurization = featurization
        self.target_type = target_type

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> AutoFeaturizer:
        X = _frame(X)
        self.__dict__.pop("_cross_fitted", None)
        config = self.featurization if isinstance(self.featurization, Mapping) else {}
        purposes = dict(config.get("column_purposes") or {})
        dropped = set(config.get("drop_columns") or [])
        blocked = set(config.get("blocked_transformers") or [])
        for column in list(purposes) + list(dropped):
            if column not in X.columns:
                raise ValueError(f"featurization config names column {column!r}, which the training data lacks; "
                                 f"columns: {', '.join(map(str, X.columns))}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            what = "sample" if X.shape[0] == 0 else "feature"
            raise ValueError(f"0 {what}(s) (shape={X.shape}) while a minimum of 1 is required.")
        complex_columns = [str(c) for c in X.columns if pd.api.types.is_complex_dtype(X[c])]
        if complex_columns:
            raise ValueError(f"Complex data not supported: column(s) {', '.join(map(repr, complex_columns))}")
        self.input_columns_ = [str(c) for c in X.columns]
        self.n_features_in_ = X.shape[1]
        self.plans_: list[ColumnPlan] = []
        n_rows = len(X)
        for column in X.columns:
            series = X[column]
            if column in dropped:
                self.plans_.append(ColumnPlan(column, "Ignore", "dropped by the featurization config"))
                continue
            if self.featurization == "off":
                if not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                    raise ValueError(f"featurization='off' needs numeric columns, but column {column!r} is "
                                     f"{series.dtype}; use featurization='auto' or encode it in a preparation step")
                infinite = _infinite_rows(series)
                if len(infinite):
                    shown = ", ".join(map(str, infinite[:5].tolist())) + (", ..." if len(infinite) > 5 else "")
                    raise ValueError(f"feature column {column!r} has {len(infinite)} infinite value"
                                     f"{'s' if len(infinite) > 1 else ''} (row{'s' if len(infinite) > 1 else ''} "
                                     f"{shown}); with featurization='off' the models get the values as they are and "
                                     f"cannot use infinity: replace them with NaN or a finite number, or use "
                                     f"featurization='auto', which treats them as missing values")
                plan = ColumnPlan(column, "Numeric", "featurization off")
            else:
                plan = self._plan(column, series, purposes.get(column), n_rows, blocked)
            self._fit_plan(plan, series, y, blocked)
            self.plans_.append(plan)
        self.feature_names_ = self._feature_names()
        if not self.feature_names_:
            raise ValueError("no usable feature columns after featurization: every column was dropped "
                             + ("(1 sample: every column is constant) " if n_rows == 1 else "") +
                             f"({'; '.join(f'{p.name}: {p.reason}' for p in self.plans_)})")
        return self

    def _plan(self, column: str, series: pd.Series, purpose: str | None, n_rows: int, blocked: set[str]) -> ColumnPlan:
        if purpose:
            return ColumnPlan(column, purpose, "set by column_purposes")
        non_null = series.dropna()
        if non_null.empty:
            return ColumnPlan(column, "Ignore", "all values missing")
        if non_null.nunique() <= 1:
            return ColumnPlan(column, "Ignore", "constant")
        distinct = non_null.nunique()
        if pd.api.types.is_bool_dtype(series):
            return ColumnPlan(column, "Categorical", "boolean")
        if pd.api.types.is_datetime64_any_dtype(series):
            return ColumnPlan(column, "DateTime", "date/time values")
        if pd.api.types.is_numeric_dtype(series):  # Azure's ColumnPurposeDetector: numbers stay numeric, even distinct
            return ColumnPlan(column, "Numeric", "numeric")
        text = non_null.astype(str)
        if _looks_like_dates(text):
            return ColumnPlan(column, "DateTime", "parses as dates")
        counts = text.value_counts(sort=False)  # words per row, counted once per distinct value
        tokens = float((counts.index.to_series().str.split().str.len().to_numpy() * counts.to_numpy()).sum()
                       / counts.sum())
        if tokens >= TEXT_MIN_TOKENS and "TfIdf" not in blocked and "TextTargetEncoder" not in blocked:
            return ColumnPlan(column, "Text", f"free text ({tokens:.1f} words per value)")
        if distinct == n_rows and n_rows > 20:
            return ColumnPlan(column, "Ignore", "ID-like: a distinct value on every row")
        if distinct <= MAX_ONE_HOT:
            return ColumnPlan(column, "Categorical", f"{distinct} categories")
        if "HashOneHotEncoder" in blocked:
            return ColumnPlan(column, "Ignore", "high cardinality and HashOneHotEncoder blocked")
        return ColumnPlan(column, "CategoricalHash", f"high cardinality ({distinct} values)")

    def _fit_plan(self, plan: ColumnPlan, series: pd.Series, y: Any = None,
                  blocked: frozenset[str] | set[str] = frozenset()) -> None:
        plan.had_missing = bool(series.isna().any())
        if plan.purpose == "Numeric":
            values = _numeric(series, plan.name)
            infinite = np.isinf(values)
            if infinite.any():  # Azure treats +/-inf as missing: imputed, and flagged in _WASNULL
                plan.infinite, plan.had_missing = int(infinite.sum()), True
                values = np.where(infinite, np.nan, values)
            plan.fill = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
            distinct = np.unique(values[np.isfinite(values)])
            if 2 < len(distinct) <= FEW_DISTINCT_NUMBERS and np.allclose(distinct, np.round(distinct)):
                plan.extra_one_hot = distinct.tolist()
        elif plan.purpose in ("Categorical", "CategoricalHash"):
            values = series.astype("string")
            mode = values.mode(dropna=True)
            plan.fill = mode.iloc[0] if not mode.empty else "<missing>"
            if plan.purpose == "Categorical":
                plan.categories = sorted(values.fillna(plan.fill).unique().tolist(), key=str)
            distinct = values.nunique()
            if (self.target_type and y is not None and distinct > TARGET_ENCODE_MIN
                    and "CatTargetEncoder" not in blocked and self.featurization != "off"):
                self._fit_target_encoder(plan, values.fillna(plan.fill), y)
        elif plan.purpose == "Text":
            from sklearn.feature_extraction.text import TfidfVectorizer

            plan.vectorizer = TfidfVectorizer(ngram_range=(1, 3), max_features=TEXT_MAX_FEATURES, use_idf=False,
                                              sublinear_tf=True)
            plan.vectorizer.fit(series.fillna("").astype(str))
        elif plan.purpose == "DateTime":
            plan.day_first = reads_day_first(series)
            parts = _date_parts(series, plan.day_first)
            plan.fill = {p: float(np.nanmean(parts[p])) if np.isfinite(parts[p]).any() else 0.0 for p in DATE_PARTS}
            plan.categories = [p for p in DATE_PARTS if np.nanstd(parts[p]) > 0]

    def _fit_target_encoder(self, plan: ColumnPlan, values: pd.Series, y: Any) -> None:
        """Azure's CatTargetEncoder: the label's (smoothed) mean per category, one column per class for
        multi-class labels. The training rows get cross-fitted values (each row encoded without its own
        label), kept aside for ``training_matrix``; new rows get the encoding learnt from every row."""
        import inspect

        from sklearn.preprocessing import TargetEncoder

        if "deprecated" in str(inspect.signature(TargetEncoder).parameters["shuffle"].default):  # scikit-learn >= 1.9
            from sklearn.model_selection import KFold, StratifiedKFold

            folds = (KFold if self.target_type == "continuous" else StratifiedKFold)(
                TARGET_ENCODER_FOLDS, shuffle=True, random_state=0)
            encoder = TargetEncoder(target_type=self.target_type, cv=folds)
        else:
            encoder = TargetEncoder(target_type=self.target_type, cv=TARGET_ENCODER_FOLDS, shuffle=True, random_state=0)
        column = values.to_numpy(dtype=object)[:, None]
        self._cross_fitted = getattr(self, "_cross_fitted", {})
        self._cross_fitted[plan.name] = encoder.fit_transform(column, np.asarray(y))
        plan.target_encoder = encoder

    # -- transforming -------------------------------------------------------------------------
    def training_matrix(self, X: pd.DataFrame, n_fit: int) -> np.ndarray:
        """``transform(X)`` for the rows the featurizer was fitted on (the first ``n_fit``) and any after them:
        target-encoded columns of the fitted rows hold their cross-fitted values, so a child's validation rows
        never see their own label. Called once per experiment; the fitted featurizer keeps no training rows."""
        cross_fitted = self.__dict__.pop("_cross_fitted", {})
        blocks = self._blocks(_frame(X))
        for plan, block in blocks:
            if plan is not None and plan.name in cross_fitted:
                block[:n_fit] = cross_fitted[plan.name]
        return self._stack([b for _, b in blocks], len(X))

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then the training rows' matrix (cross-fitted target encodings): what a refitted pipeline learns from."""
        X = _frame(X)
        return self.fit(X, y).training_matrix(X, len(X))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = _frame(X)
        return self._stack([b for _, b in self._blocks(X)], len(X))

    @staticmethod
    def _stack(blocks: list[np.ndarray], n_rows: int) -> np.ndarray:
        return np.hstack(blocks).astype(np.float64) if blocks else np.zeros((n_rows, 0))

    def _blocks(self, X: pd.DataFrame) -> list[tuple[ColumnPlan | None, np.ndarray]]:
        """The feature blocks in output order; target-encoded blocks are paired with their column's plan."""
        X = _frame(X)
        duplicated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        if duplicated:
            raise ValueError(f"input data has duplicate column names: {', '.join(map(repr, duplicated))}")
        if len(X) == 0:
            raise ValueError("input data has no rows to transform or predict")
        missing = [p.name for p in self.plans_ if p.purpose != "Ignore" and p.name not in X.columns]
        if missing:
            raise ValueError(f"input data lacks column(s) {', '.join(map(repr, missing))} that the model was "
                             f"trained on; expected columns: {', '.join(self.input_columns_)}")
        blocks: list[np.ndarray | tuple[ColumnPlan, np.ndarray]] = []
        for plan in self.plans_:
            if plan.purpose == "Ignore":
                continue
            series = X[plan.name]
            if plan.purpose == "Numeric":
                values = _numeric(series, plan.name)
                isnan = ~np.isfinite(values)
                blocks.append(np.where(isnan, plan.fill, values)[:, None])
                if plan.had_missing:
                    blocks.append(isnan[:, None].astype(float))
                if plan.extra_one_hot:
                    filled = np.where(isnan, plan.fill, values)
                    blocks.append((filled[:, None] == np.asarray(plan.extra_one_hot)[None, :]).astype(float))
            elif plan.purpose in ("Categorical", "CategoricalHash"):
                values = series.astype("string").fillna(plan.fill).to_numpy(dtype=object)
                # each distinct value is looked up once (a million rows hold a few thousand values)
                codes, uniques = pd.factorize(values)
                if plan.purpose == "Categorical":
                    known = {c: j for j, c in enumerate(plan.categories)}
                    columns = np.array([known.get(u, -1) for u in uniques], dtype=int)[codes]
                    block = np.zeros((len(values), len(plan.categories)))
                    rows = np.flatnonzero(columns >= 0)
                    block[rows, columns[rows]] = 1.0
                    blocks.append(block)
                else:
                    buckets = np.array([_bucket(v) for v in uniques], dtype=int)[codes]
                    block = np.zeros((len(values), HASH_BUCKETS))
                    block[np.arange(len(values)), buckets] = 1.0
                    blocks.append(block)
                if plan.target_encoder is not None:
                    blocks.append((plan, np.asarray(plan.target_encoder.transform(values[:, None]), dtype=float)))
            elif plan.purpose == "Text":
                blocks.append(plan.vectorizer.transform(series.fillna("").astype(str)).toarray())
            elif plan.purpose == "DateTime":
                parts = _date_parts(series, getattr(plan, "day_first", False))
                for part in plan.categories:
                    values = parts[part]
                    blocks.append(np.where(np.isfinite(values), values, plan.fill[part])[:, None])
        return [b if isinstance(b, tuple) else (None, b) for b in blocks]

    def _feature_names(self) -> list[str]:
        return [name for plan in self.plans_ for name in _plan_feature_names(plan)]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def feature_source(self) -> dict[str, str]:
        """Engineered feature name -> the raw column it came from."""
        mapping: dict[str, str] = {}
        for plan in self.plans_:
            for name in _plan_feature_names(plan):
                mapping.setdefault(name, plan.name)
        return mapping

    def __sklearn_tags__(self) -> Any:
        """Raw columns with missing values and text are its input (it imputes and encodes them)."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = tags.input_tags.string = tags.input_tags.categorical = True
        return tags

    def summary(self) -> list[dict[str, Any]]:
        """Per raw column: detected purpose, why, how many features it became and the transformations (Azure's names)."""
        counts = Counter(self.feature_source().values())
        return [{"column": p.name, "purpose": p.purpose, "reason": p.reason, "had_missing": p.had_missing,
                 "infinite": p.infinite, "features": counts[p.name], "transformations": _transformations(p)}
                for p in self.plans_]

    def get_featurization_summary(self) -> list[dict[str, Any]]:
        """Azure's ``datatransformer.get_featurization_summary()``: per raw column ``RawFeatureName``,
        ``TypeDetected``, ``Dropped`` (``Yes``/``No``), ``EngineeredFeatureCount`` and ``Transformations``."""
        return [{"RawFeatureName": s["column"],
                 "TypeDetected": "AllNan" if s["reason"] == "all values missing" else s["purpose"],
                 "Dropped": "Yes" if s["purpose"] == "Ignore" else "No", "EngineeredFeatureCount": s["features"],
                 "Transformations": s["transformations"]} for s in self.summary()]

    def get_engineered_feature_names(self) -> list[str]:
        """Azure's ``datatransformer.get_engineered_feature_names()``: the columns the models see, in order."""
        return list(self.feature_names_)


def _transformations(plan: ColumnPlan) -> list[str]:
    """What happens to one raw column, named as Azure's featurization summary names its transformers."""
    if plan.purpose == "Numeric":
        if plan.reason == "featurization off":
            return []
        return (["MeanImputer"] + (["ImputationMarker"] if plan.had_missing else [])
                + (["OneHotEncoder"] if plan.extra_one_hot else []))
    target = ["ModeCatImputer-StringCast-CatTargetEncoder"] if plan.target_encoder is not None else []
    if plan.purpose == "Categorical":
        return ["ModeCatImputer-StringCast-OneHotEncoder"] + target
    if plan.purpose == "CategoricalHash":
        return ["ModeCatImputer-StringCast-HashOneHotEncoder"] + target
    if plan.purpose == "Text":
        return ["StringCast-TfIdf"]
    if plan.purpose == "DateTime":
        return ["DateTimeTransformer"]
    return []


def _plan_feature_names(plan: ColumnPlan) -> list[str]:
    """The engineered features one raw column becomes, in the order ``transform`` writes them."""
    if plan.purpose == "Numeric":
        return ([plan.name] + ([f"{plan.name}_WASNULL"] if plan.had_missing else [])
                + [f"{plan.name}_{v:g}" for v in plan.extra_one_hot])
    if plan.purpose == "Categorical":
        return [f"{plan.name}_{c}" for c in plan.categories] + _target_encoded_names(plan)
    if plan.purpose == "CategoricalHash":
        return [f"{plan.name}_hash{i}" for i in range(HASH_BUCKETS)] + _target_encoded_names(plan)
    if plan.purpose == "Text":
        return [f"{plan.name}_{t}" for t in plan.vectorizer.get_feature_names_out()]
    if plan.purpose == "DateTime":
        return [f"{plan.name}_{p}" for p in plan.categories]
    return []


def _target_encoded_names(plan: ColumnPlan) -> list[str]:
    encoder = plan.target_encoder
    if encoder is None:
        return []
    if encoder.target_type_ == "multiclass":
        return [f"{plan.name}_target_{c}" for c in encoder.classes_]
    return [f"{plan.name}_target"]


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError("sparse input is not supported: the featurizer takes a DataFrame of raw columns "
                        "(or a dense 2-D array)")
    values = np.asarray(X)
    if values.ndim != 2:
        raise ValueError(f"Expected a 2-D table of raw columns, got {values.ndim}-D input instead. Reshape your data "
                         f"(array.reshape(-1, 1) for a single column)")
    return pd.DataFrame(values).rename(columns=str)


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    values = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
    return values


def _infinite_rows(series: pd.Series) -> np.ndarray:
    """Positions of +/-inf values in a numeric column (none for other columns)."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return np.zeros(0, dtype=int)
    return np.flatnonzero(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)))


def _bucket(value: Any) -> int:
    return int.from_bytes(hashlib.md5(str(value).encode()).digest()[:4], "little") % HASH_BUCKETS


def _looks_like_dates(text: pd.Series) -> bool:
    """Whether a text column holds dates, judged on up to 200 of its distinct values chosen by their content
    (not the rows' order, so a table sorted by this column is judged as the same rows shuffled)."""
    distinct = text.drop_duplicates()
    order = np.argsort(pd.util.hash_pandas_object(distinct, index=False).to_numpy(), kind="stable")
    sample = distinct.iloc[order[:200]]
    if sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").mean() > 0.5:
        return False
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() > 0.9:
        return False
    return bool(parse_dates(sample).notna().mean() > 0.9)


def parse_dates(texts: pd.Series, day_first: bool = False) -> pd.Series:
    """Text read as dates, one format for the whole column: month-first as pandas infers it from the first value
    (day-first with ``day_first``), or the other when that reads more values (a column of 05/01/2020 and 21/01/2020 is
    day-first throughout, never 1 May beside 21 January); each value on its own only when neither reads as many as
    that (formats mixed in one column). Values that are not dates are NaT; offsets that differ are read as UTC."""
    present = int(texts.notna().sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def read(**how: Any) -> pd.Series:
            try:
                parsed = pd.to_datetime(texts, errors="coerce", **how)
            except (ValueError, TypeError, OverflowError):  # offsets that differ
                parsed = pd.to_datetime(texts, errors="coerce", utc=True, **how)
            if not pd.api.types.is_datetime64_any_dtype(parsed):
                parsed = pd.to_datetime(texts, errors="coerce", utc=True, **how)
            return parsed

        best = read(dayfirst=day_first)
        for how in ({"dayfirst": not day_first}, {"format": "mixed"}):
            if int(best.notna().sum()) == present:
                break
            other = read(**how)
            if int(other.notna().sum()) > int(best.notna().sum()):
                best = other
    return best


def reads_day_first(texts: pd.Series) -> bool:
    """Whether a column of date texts reads more values day-first than month-first (31/01/2020)."""
    if pd.api.types.is_datetime64_any_dtype(texts) or pd.api.types.is_numeric_dtype(texts):
        return False
    distinct = pd.Series(texts.dropna().unique())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            month_first = int(pd.to_datetime(distinct, errors="coerce", utc=True).notna().sum())
            day_first = int(pd.to_datetime(distinct, errors="coerce", utc=True, dayfirst=True).notna().sum())
        except (ValueError, TypeError, OverflowError):
            return False
    return day_first > month_first


def _date_parts(series: pd.Series, day_first: bool = False) -> dict[str, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(series):
        dates = series
    else:  # each distinct text parsed once (a million rows of timestamps hold far fewer values)
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        texts = pd.Series(uniques, dtype=object)
        parsed = parse_dates(texts, day_first)
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_localize(None)
        values = parsed.to_numpy(dtype="datetime64[ns]")
        dates = pd.Series(np.where(codes >= 0, values[np.maximum(codes, 0)], np.datetime64("NaT")), index=series.index)
    accessor = dates.dt
    parts = {
        "year": accessor.year, "month": accessor.month, "day": accessor.day, "dayofweek": accessor.day_of_week,
        "dayofyear": accessor.day_of_year, "quarter": accessor.quarter, "week": accessor.isocalendar().week,
        "hour": accessor.hour, "minute": accessor.minute, "second": accessor.second,
    }
    return {k: pd.to_numeric(v, errors="coerce").astype(float).to_numpy() for k, v in parts.items()}
