"""The best model as an MLflow model folder (SDK v2's best_model), written by mlflow and loaded by mlflow."""

import pandas as pd
import pytest

from emulator.mlflow_model import is_mlflow_model, requirements, save_mlflow_model

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def fitted(titanic_csv):
    """A pipeline shaped like the emulator's best model (its featurizer, then an estimator), fitted on raw rows.

    The fake's AutoML writes the emulator's own best model this way (tests/framework/backends/azure/test_submit_v2.py).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from emulator.featurize import AutoFeaturizer

    frame = pd.read_csv(titanic_csv)
    features = frame.drop(columns=["Survived"])
    model = Pipeline([("datatransformer", AutoFeaturizer()), ("LogisticRegression", LogisticRegression(max_iter=500))])
    return features, model.fit(features, frame["Survived"])


def test_folder_loads_with_pyfunc_and_sklearn_and_predicts_like_the_pipeline(fitted, tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn

    features, model = fitted
    folder = save_mlflow_model(model, tmp_path / "best_model", features=features)
    assert is_mlflow_model(folder) and not is_mlflow_model(tmp_path)
    assert {"MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt"} <= {
        p.name for p in folder.iterdir()}
    mlmodel = (folder / "MLmodel").read_text()
    assert "python_function" in mlmodel and "sklearn" in mlmodel and "signature" in mlmodel
    rows = features.tail(20)
    assert list(mlflow.pyfunc.load_model(str(folder)).predict(rows)) == list(model.predict(rows))
    loaded = mlflow.sklearn.load_model(str(folder))
    assert (loaded.predict_proba(rows) == model.predict_proba(rows)).all()
    pinned = (folder / "requirements.txt").read_text()
    assert all(pin in pinned for pin in requirements()) and "scikit-learn==" in pinned


def test_an_existing_folder_is_refused(fitted, tmp_path):
    features, model = fitted
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(Exception, match="already exists"):
        save_mlflow_model(model, tmp_path / "taken", features=features)

