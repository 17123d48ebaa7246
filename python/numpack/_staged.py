"""The store handle the distributed writers (``numpack.dask``, ``numpack.ray``) commit a
stage through."""

from __future__ import annotations

import os

from . import _core

__all__ = ["open_store"]


def open_store(path: str | os.PathLike[str]) -> _core.Store:
    """The store at ``path``, created if missing; the writers sync it after their commit, so
    they return with the rows committed and on disk."""
    os.makedirs(path, exist_ok=True)
    return _core.Store(os.fspath(path))
