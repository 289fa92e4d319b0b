"""The local workspace: datasets, a datastore of step outputs, run history and a model registry."""

from .child_runs import LocalChildRun
from .names import check_asset_name
from .store import (
    DatasetVersion,
    LocalWorkspace,
    ModelVersion,
    RunRecord,
    default_workspace_path,
)

__all__ = [
    "DatasetVersion",
    "LocalChildRun",
    "LocalWorkspace",
    "ModelVersion",
    "RunRecord",
    "check_asset_name",
    "default_workspace_path",
]
