"""The store handle the distributed writers (``numpack.dask``, ``numpack.ray``) commit a
stage through."""

from __future__ import annotations

import os

from . import _core

__all__ = ["open_store"]


def open_store(path: str | os.PathLike[str]) -> _core.Store:
    """The store at ``path``, created if missing. Its commits are as durable as every commit
    (``NUMPACK_DURABLE=1``, or a later ``NumPack.close()`` / ``sync()``): the handle is not
    closed (closing would fsync the rows written, which ``da.to_npy_stack`` does not)."""
    os.makedirs(path, exist_ok=True)
    return _core.Store(os.fspath(path))
