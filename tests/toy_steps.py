"""Small step plugins for framework tests."""

from __future__ import annotations

import pandas as pd

from framework import DataType, Input, Output, Param, StepSpec, hookimpl


def make_table(rows: int, context):
    context.log("rows", rows)
    return {"table": pd.DataFrame({"x": range(rows), "y": [i % 2 for i in range(rows)]})}


def double(table: pd.DataFrame):
    print(f"doubling {len(table)} rows")
    return {"doubled": table * 2}


def fit(table: pd.DataFrame):
    return {"model": {"mean": float(table["x"].mean())}}


def score(model, context):
    context.log("score", 0.5)
    return {"metrics": {"score": 0.5}}


def explode(table: pd.DataFrame):
    raise RuntimeError("boom: the table is cursed")


def forgets(table: pd.DataFrame):
    return {}


def oversteps(table: pd.DataFrame):
    return {"doubled": table, "extra": table}


def sleepy(table: pd.DataFrame, seconds: float):
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.01)
    return {"doubled": table * 2}


def flaky(table: pd.DataFrame, marker: str):
    import os

    if not os.path.exists(marker):
        raise RuntimeError(f"marker {marker} is missing")
    return {"doubled": table}


TOY_STEPS = [
    StepSpec("make_table", make_table, outputs=[Output("table")], params=[Param("rows", int, 4)]),
    StepSpec("double", double, inputs=[Input("table")], outputs=[Output("doubled")]),
    StepSpec("fit", fit, inputs=[Input("table")], outputs=[Output("model", DataType.MODEL)]),
    StepSpec("score", score, inputs=[Input("model", DataType.MODEL)], outputs=[Output("metrics", DataType.METRICS)]),
    StepSpec("explode", explode, inputs=[Input("table")], outputs=[Output("doubled")]),
    StepSpec("forgets", forgets, inputs=[Input("table")], outputs=[Output("doubled")]),
    StepSpec("oversteps", oversteps, inputs=[Input("table")], outputs=[Output("doubled")]),
    StepSpec("sleepy", sleepy, inputs=[Input("table")], outputs=[Output("doubled")], params=[Param("seconds", float, 0.5)]),
    StepSpec("flaky", flaky, inputs=[Input("table")], outputs=[Output("doubled")], params=[Param("marker", str)]),
]


@hookimpl
def register_steps(register):
    for spec in TOY_STEPS:
        register(spec)


class ToySteps:
    @hookimpl
    def register_steps(self, register):
        for spec in TOY_STEPS:
            register(spec)


class Recorder:
    """Implements every lifecycle hook and records the calls in order."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def before_pipeline_run(self, run_id, pipeline, params, backend):
        self.calls.append(("before_pipeline_run", backend))

    @hookimpl
    def before_step_run(self, run_id, step, step_run_id):
        self.calls.append(("before_step_run", step.name))

    @hookimpl
    def after_step_run(self, run_id, step, step_run_id, result):
        self.calls.append(("after_step_run", step.name, result.reused))

    @hookimpl
    def on_step_error(self, run_id, step, step_run_id, error):
        self.calls.append(("on_step_error", step.name, type(error).__name__))

    @hookimpl
    def after_pipeline_run(self, run_id, pipeline, result):
        self.calls.append(("after_pipeline_run", result.status))

    @hookimpl
    def on_pipeline_error(self, run_id, pipeline, params, backend, error):
        self.calls.append(("on_pipeline_error", backend, type(error).__name__))

    @hookimpl
    def on_step_log(self, run_id, step_run_id, name, value):
        self.calls.append(("on_step_log", name, value))

    @hookimpl
    def after_child_run(self, run_id, step_run_id, child_run_id, status, properties, metrics):
        self.calls.append(("after_child_run", status))
