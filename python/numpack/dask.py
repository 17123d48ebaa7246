"""Dask arrays read from and written to a store (extra ``numpack[dask]``).

``from_numpack(path, name)`` is a ``dask.array`` chunked on rows and pinned to one version:
the process that builds it pins the version for as long as the array (its graph) lives, and
every task, in any worker, reads that version (a pickled task opens the store again and pins
the same version itself). ``from_numpack(url="s3://.../x.npkg", name=...)`` reads a packed
store from an fsspec URL instead, fetched once per machine.

``to_numpack(darr, path, name, mode=...)`` writes each chunk from its own task straight into
a staged, uncommitted area of the store (the engine's staged writes); when every task is done,
one commit makes all of the rows appear at once. If any task fails (or its worker dies), the
stage is dropped and the store is exactly as before.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._deps import require
from ._fetch import open_snapshot
from ._staged import open_store as _open_store
from .snapshot import SnapshotArray

require("dask")  # a DependencyError naming the extra when dask is missing

import dask.array as da  # noqa: E402

__all__ = ["from_numpack", "to_numpack"]

#: Bytes per chunk ``from_numpack`` aims at when ``chunks`` is not given.
CHUNK_BYTES = 128 << 20

_MODES = ("create", "overwrite", "append")


def from_numpack(
    path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    chunks: int | str = "auto",
    version: int | None = None,
    *,
    url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> da.Array:
    """Array ``name`` of the store at ``path`` as a dask array of row chunks (``chunks``
    rows each, or about 128 MiB each with ``"auto"``), at ``version`` (the current one when
    ``None``).

    With ``url=`` (or a URL as ``path``), the array of a packed store (``.npkg``) at an fsspec
    URL, ``storage_options`` given to its file system: every machine that runs a task fetches
    the package once into its cache (``numpack._fetch``), and all tasks read the object the
    driver found (a task that finds it replaced raises)."""
    if name is None:
        raise TypeError("from_numpack needs the array's name")
    snap = open_snapshot(path, url, storage_options, version)
    arr = SnapshotArray(snap, name)
    shape = arr.shape
    if not shape:
        return da.from_array(np.asarray(arr), chunks=())
    if chunks == "auto":
        row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * arr.dtype.itemsize)
        rows = max(1, CHUNK_BYTES // row)
    elif isinstance(chunks, int) and not isinstance(chunks, bool) and chunks > 0:
        rows = chunks
    else:
        raise ValueError(f"chunks must be a positive number of rows or 'auto', not {chunks!r}")
    where = snap._package.key if snap._package is not None else os.path.abspath(snap.path)
    token = f"numpack-{where}-{name}-v{snap.version}"
    return da.from_array(
        arr,
        chunks=(rows, *shape[1:]),
        name=token,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * len(shape), dtype=arr.dtype),
    )


class _StageTarget:
    """What ``da.store`` writes into: each chunk goes to the stage from the task's process."""

    def __init__(self, path: str, token: str, shape: tuple[int, ...], dtype: np.dtype[Any]):
        self.path = path
        self.token = token
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)
        self._store: tuple[int, _core.Store] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def _core(self) -> _core.Store:
        if self._store is None or self._store[0] != os.getpid():
            self._store = (os.getpid(), _core.Store(self.path))
        return self._store[1]

    def __setitem__(self, key: Any, value: npt.NDArray[Any]) -> None:
        rows = key[0] if isinstance(key, tuple) else key
        rest = key[1:] if isinstance(key, tuple) else ()
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"a staged write takes a slice of rows, got {key!r}")
        for s, n in zip(rest, self.shape[1:]):
            if not isinstance(s, slice) or s.indices(n) != (0, n, 1):
                raise ValueError("a staged write takes whole rows (rechunk the other axes)")
        _core.stage_write(self._core(), self.token, rows.start or 0, np.ascontiguousarray(value))


def to_numpack(
    darr: da.Array,
    path: str | os.PathLike[str],
    name: str,
    mode: str = "create",
) -> None:
    """Write ``darr`` to array ``name`` of the store at ``path`` (created if missing), each
    chunk from its task; one commit at the end. ``mode``: ``"create"`` (the array must not
    exist), ``"overwrite"`` (replaced whole) or ``"append"`` (rows added at the end)."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
    if darr.ndim == 0:
        raise ValueError("to_numpack needs an array with rows (at least 1 dimension)")
    if any(np.isnan(c) for c in darr.chunks[0]):
        raise ValueError("darr has unknown chunk sizes; call darr.compute_chunk_sizes() first")
    if darr.ndim > 1 and any(len(c) > 1 for c in darr.chunks[1:]):
        darr = darr.rechunk({i: -1 for i in range(1, darr.ndim)})
    store = _open_store(path)
    dtype = np.dtype(darr.dtype)
    token = _core.stage_begin(store, name, mode, dtype, list(darr.shape))
    target = _StageTarget(os.fspath(path), token, tuple(darr.shape), dtype)
    try:
        da.store(darr, target, lock=False, compute=True)  # type: ignore[arg-type]
        _core.stage_commit(store, token)
        store.sync()  # on disk before returning; errors raise
    except BaseException:
        _core.stage_abort(store, token)
        raise
