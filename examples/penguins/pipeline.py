"""The Titanic pipeline with one plugin swapped: dataprep_penguins -> AutoML -> register model.

The AutoML and register_model steps are the same plugins, unchanged; only the preparation
step, its dataset, the label column and the model name differ.

    pip install -e examples/penguins/amlstep-penguins
    amlstep run examples/penguins -p iterations=5
"""

from amlstep_penguins import penguins_csv

from framework import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step

# Registered from the CSV inside the palmerpenguins package the first time the pipeline runs.
penguins_ds = Dataset("penguins_ds", sources=(penguins_csv(),), description="Palmer penguins (palmerpenguins)")

model_name = PipelineParameter("model_name", default_value="PenguinSpecies")
# The Titanic budget: 2 iterations within 15 minutes (Azure's minimum); offline it ends after 2 iterations.
iterations = PipelineParameter("iterations", default_value=2)
timeout_minutes = PipelineParameter("experiment_timeout_minutes", default_value=15)

pipeline = Pipeline(
    experiment="penguins_automl",
    steps=[
        Step("dataprep_penguins", name="dataprep", inputs={"penguins_ds": penguins_ds},
             outputs={"prepped_data": "prepped_data"}),
        AutoMLStep(
            name="AutoML_Classification",
            training_data="prepped_data",
            metrics_output="metrics_data",
            model_output="best_model_data",
            task="classification",
            primary_metric="AUC_weighted",
            label_column_name="species",
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
