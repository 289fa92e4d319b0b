"""The seed's Titanic pipeline: dataprep -> Automated ML -> register model.

Run it offline with ``amlstep run examples/titanic --backend local``.
"""

from framework import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step

TITANIC_URLS = (
    "https://dprepdata.blob.core.windows.net/demo/Titanic.csv",
    "https://dprepdata.blob.core.windows.net/demo/Titanic2.csv",
)
# A second public copy of the same Kaggle training file, used if the seed's URLs are gone.
TITANIC_FALLBACK = ("https://raw.githubusercontent.com/datasciencedojo/datasets/master/titanic.csv",)

titanic_ds = Dataset("titanic_ds", sources=TITANIC_URLS, fallback_sources=TITANIC_FALLBACK,
                     description="Titanic baseline data")

model_name = PipelineParameter("model_name", default_value="TitanicSurvivalInitial")
# The seed's budget: 2 iterations within 15 minutes (Azure refuses less than 15 minutes; offline the
# two iterations end the run in seconds, long before the timeout).
iterations = PipelineParameter("iterations", default_value=2)
timeout_minutes = PipelineParameter("experiment_timeout_minutes", default_value=15)

pipeline = Pipeline(
    experiment="titanic_automl",
    steps=[
        Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": titanic_ds},
             outputs={"prepped_data": "prepped_data"}),
        AutoMLStep(
            name="AutoML_Classification",
            training_data="prepped_data",
            metrics_output="metrics_data",
            model_output="best_model_data",
            task="classification",
            primary_metric="AUC_weighted",
            label_column_name="Survived",
            featurization="auto",
            iterations=iterations,
            experiment_timeout_minutes=timeout_minutes,
            iteration_timeout_minutes=10,
            n_cross_validations=5,
            enable_early_stopping=True,
        ),
        Step("register_model", inputs={"model": "best_model_data"}, params={"model_name": model_name},
             allow_reuse=False),
    ],
    outputs={"metrics_output": "metrics_data", "model_output": "best_model_data"},
    compute_target="cpu-cluster",
)
