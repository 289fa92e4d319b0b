"""Registers a model in the workspace the run belongs to (local registry offline, Model.register on Azure)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from framework import DataType, Input, Param, RunContext, StepSpec, check_asset_name, hookimpl


def run(model: Path, model_name: str, description: str, context: RunContext) -> None:
    print(f"model_name : {model_name}")
    print(f"model_path: {model}")
    registered = context.register_model(model_name, model, description=description)
    context.log("registered_version", registered.version)
    print(f"Registered version {registered.version} of model {registered.name}")


STEP = StepSpec(
    name="register_model",
    description="Register the model it is given under model_name; every run adds a version",
    run=run,
    inputs=[Input("model", DataType.MODEL, "the model file to register (e.g. AutoML's best model)")],
    params=[
        Param("model_name", str, description="name to register the model under",
              validator=lambda name: check_asset_name(name, "model")),
        Param("description", str, "", "free-text description stored with the model"),
    ],
    allow_reuse=False,
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
