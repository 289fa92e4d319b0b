"""The best model as Azure AutoML under SDK v2 hands it over: an MLflow model folder.

Under SDK v1 the AutoML step's ``TrainingOutput('Model')`` is a pickled fitted pipeline. Under
SDK v2 the AutoML node's ``best_model`` output is an ``mlflow_model``: a folder with ``MLmodel``
(``python_function`` and ``sklearn`` flavours, an input/output signature), the pickled pipeline
(``model.pkl``, in mlflow's cloudpickle format with the emulator's own classes by value, so that loading it
needs no amlstep), ``conda.yaml``, ``python_env.yaml`` and ``requirements.txt``, which users load with
``mlflow.pyfunc.load_model`` or ``mlflow.sklearn.load_model``. The folder is written by mlflow
itself (``mlflow.sklearn.save_model``), never by hand.

mlflow is imported only when a folder is written (it is part of the ``azure`` extra).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

# What loading the pickled pipeline needs: the libraries its featurizer and estimators come from, pinned to
# the versions that fitted it, and cloudpickle (the emulator's own classes travel in the pickle by value, see
# :func:`by_value`: loading needs no amlstep, which is not on PyPI, as Azure's best model needs none).
RUNTIME_DISTRIBUTIONS = ("scikit-learn", "pandas", "numpy", "scipy", "xgboost-cpu", "lightgbm",
                         "joblib", "threadpoolctl", "cloudpickle")
_BY_VALUE = threading.Lock()


@contextlib.contextmanager
def by_value(cloudpickle_module: Any) -> Iterator[None]:
    """While inside, ``cloudpickle_module`` pickles amlstep's own code (``emulator``, ``framework``) by value: a
    model pickled then loads where amlstep is not installed (a downstream step, a deployment, a colleague)."""
    import emulator
    import framework

    with _BY_VALUE:
        for module in (emulator, framework):
            cloudpickle_module.register_pickle_by_value(module)
        try:
            yield
        finally:
            for module in (emulator, framework):
                cloudpickle_module.unregister_pickle_by_value(module)


def portable_pickle(model: Any) -> bytes:
    """``model`` pickled so that ``pickle.load`` needs its libraries (scikit-learn, pandas...), not amlstep:
    with joblib's cloudpickle, which scikit-learn's own dependency joblib brings wherever the model is loaded."""
    from joblib.externals import cloudpickle

    with by_value(cloudpickle):
        return bytes(cloudpickle.dumps(model))
INSTALL_HINT = "pip install 'amlstep[azure]'"


class MlflowUnavailable(ImportError):
    """mlflow (or mlflow-skinny) is not installed."""


def requirements() -> list[str]:
    """``name==version`` of each runtime distribution that is installed."""
    pins = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def save_mlflow_model(model: Any, path: str | Path, *, features: Any = None, predictions: Any = None) -> Path:
    """Write the fitted scikit-learn ``model`` as an MLflow model folder at ``path`` (must not exist).

    Args:
        model: the fitted pipeline (featurizer + estimator) AutoML chose.
        path: the folder to create.
        features: training rows without the label (a few are enough): the signature's inputs and
            the input example (for a forecaster, the period after each series' last one, see ``future_rows``).
        predictions: what ``model.predict`` returns for ``features`` (computed when omitted).
    """
    try:
        import mlflow.sklearn
        from mlflow.models import infer_signature
    except ImportError as exc:
        raise MlflowUnavailable(f"writing the best model as an MLflow model (SDK v2's best_model output) needs "
                                f"mlflow: {INSTALL_HINT}") from exc
    target = Path(path)
    signature = None
    example = None
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    # mlflow's advice on integer columns and on pickles is for model authors; AutoML's best model is
    # written as Azure writes it (the training frame's types, a pickled pipeline), quietly
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if features is not None:
                example = future_rows(model, features) if hasattr(model, "forecast") else features.head(5)
                if predictions is None:
                    predictions = model.predict(example)
                signature = infer_signature(features, predictions)
            import cloudpickle

            with by_value(cloudpickle):  # mlflow's cloudpickle format: loads without amlstep
                mlflow.sklearn.save_model(model, str(target), signature=signature, input_example=example,
                                          pip_requirements=requirements(), serialization_format="cloudpickle")
    finally:
        mlflow_logger.setLevel(level)
    return target


def future_rows(model: Any, features: Any) -> Any:
    """What a forecaster's ``predict`` takes: the period after each training series' last one, the id
    columns and the other columns of the series' last training row (a forecast cannot start in the past),
    its time written as the training rows have it."""
    import pandas as pd

    from .forecasting import future_rows as next_periods

    frame = next_periods(model, features)
    time_column = model.time_column_name
    if not pd.api.types.is_datetime64_any_dtype(features[time_column]):
        times = frame[time_column]
        frame[time_column] = times.dt.strftime("%Y-%m-%d" if (times == times.dt.normalize()).all() else
                                               "%Y-%m-%dT%H:%M:%S")
    return frame


def is_mlflow_model(path: str | Path) -> bool:
    """Whether ``path`` is an MLflow model folder (it holds an ``MLmodel`` file)."""
    return (Path(path) / "MLmodel").is_file()
