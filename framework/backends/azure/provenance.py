"""What the Azure ML SDKs say about the local source checkout, cleaned before it is sent to a workspace.

Both SDKs read the git checkout they are run from and attach it to what they create (SDK v1: every
module, snapshot and pipeline run, through ``azureml._base_sdk_common.tracking``'s registry; SDK v2:
every job, through ``azure.ai.ml.operations._job_operations.get_git_properties``):
``azureml.git.repository_uri`` / ``mlflow.source.git.repoURL`` is ``git ls-remote --get-url``. For a
clone of a local folder that is a path on the user's machine (``/home/me/src/project``), which means
nothing to the workspace and tells it about the machine. A remote URL is kept, any ``user:password@``
dropped from it; a local path is dropped. Branch and commit are kept.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPOSITORY_KEYS = ("azureml.git.repository_uri", "mlflow.source.git.repoURL")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:owner/repo.git


def remote_url(uri: str | None) -> str | None:
    """``uri`` when it names a remote repository (its credentials dropped), else None (a local path)."""
    if not uri:
        return None
    uri = uri.strip()
    if _SCP_LIKE.match(uri):
        return uri
    parts = urlsplit(uri)
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1 or not parts.hostname:
        return None  # /path, ./path, C:\path, file:///path
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def cleaned(properties: Mapping[str, Any]) -> dict[str, Any]:
    """``properties`` with the repository URI kept only when it is a remote URL (without credentials)."""
    found = dict(properties)
    for key in REPOSITORY_KEYS:
        if key in found:
            url = remote_url(str(found[key]) if found[key] is not None else None)
            if url is None:
                del found[key]
            else:
                found[key] = url
    return found


def _wrapped(gather: Callable[..., Mapping[str, Any]]) -> Callable[..., dict[str, Any]]:
    def gather_cleaned(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return cleaned(gather(*args, **kwargs))

    return gather_cleaned


@contextlib.contextmanager
def no_local_checkout_v1() -> Iterator[None]:
    """While submitting with SDK v1: the git properties it gathers are :func:`cleaned`."""
    try:
        from azureml._base_sdk_common.tracking import global_tracking_info_registry as registry
    except ImportError:  # another azureml-core layout: nothing to clean
        yield
        return
    had = "gather_all" in vars(registry)
    original = registry.gather_all
    registry.gather_all = _wrapped(original)
    try:
        yield
    finally:
        if had:
            registry.gather_all = original
        else:
            del registry.gather_all


@contextlib.contextmanager
def no_local_checkout_v2() -> Iterator[None]:
    """While submitting with SDK v2: the git properties ``jobs.create_or_update`` adds are :func:`cleaned`."""
    try:
        from azure.ai.ml.operations import _job_operations as operations
    except ImportError:
        yield
        return
    original = getattr(operations, "get_git_properties", None)
    if original is None:
        yield
        return
    operations.get_git_properties = _wrapped(original)
    try:
        yield
    finally:
        operations.get_git_properties = original
