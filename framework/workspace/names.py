"""Names that users give to datasets, models and experiments: checked so they never escape the workspace."""

from __future__ import annotations

import re

from ..errors import WorkspaceError

ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def check_asset_name(name: object, what: str) -> str:
    """Return ``name`` if it is a safe asset name, else raise naming ``what``.

    The whole string must match (``re.match`` with ``$`` would let a final newline through).
    """
    if not isinstance(name, str) or not ASSET_NAME.fullmatch(name) or ".." in name:
        raise WorkspaceError(
            f"{what} name {name!r} is not valid: use letters, digits, '-', '_' and '.', starting with a "
            f"letter or digit, without '..' or path separators (at most 255 characters)"
        )
    return name


_UUID = re.compile(r"[0-9a-f]{8}-?(?:[0-9a-f]{4}-?){3}[0-9a-f]{12}", re.IGNORECASE)


def short_id(run_id: str) -> str:
    """A run id as messages show it: a UUID's first 8 characters (a prefix every command takes), any other id (an
    SDK v2 job's name, ``dynamic_kiwi_d2dq1dm4cl``) whole."""
    return run_id[:8] if _UUID.match(run_id) else run_id
