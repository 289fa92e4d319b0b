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
