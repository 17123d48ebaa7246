"""Ray Data datasets read from and written to a store (extra ``numpack[ray]``).

``read_numpack(path, arrays, version=None, parallelism=-1)`` is a ``ray.data.Dataset``
through Ray Data's public ``Datasource`` / ``ReadTask`` API: one column per array, split in
row ranges, every read task reading the same version (the driver pins it for as long as the
dataset lives; a task opens the store and pins the version itself). With ``url=`` it reads a
packed store (``.npkg``) from an fsspec URL, fetched once per machine.

``write_numpack(ds, path, name, column=None, mode="create")`` writes a column of a dataset with
the engine's staged writes: each block is written from a Ray task at its row offset, and
one commit at the end makes all rows appear at once, or none if a task failed. A block's
row offset must be known before it is written, which ``Datasink.write`` does not give a
task; so this runs Ray tasks over the dataset's blocks (``to_numpy_refs``): one pass to
count rows, one to write.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import _core
from ._deps import require
from ._fetch import Package, open_snapshot
from ._staged import open_store as _open_store
from .snapshot import Snapshot

require("ray")  # a DependencyError naming the extra when ray is missing

import ray  # noqa: E402
import ray.data  # noqa: E402
from ray.data import Datasource, ReadTask  # noqa: E402
from ray.data.block import BlockAccessor, BlockMetadata  # noqa: E402

__all__ = ["NumPackDatasource", "read_numpack", "write_numpack"]

_MODES = ("create", "overwrite", "append")


def _read_span(
    path: str | Package, version: int, names: tuple[str, ...], start: int, stop: int
) -> list[Any]:
    snap = Snapshot.fetch(path) if isinstance(path, Package) else Snapshot.open(path, version)
    try:
        cols = {n: snap._core.read_range(n, start, stop) for n in names}
    finally:
        snap.close()
    return [BlockAccessor.batch_to_block(cols)]


class NumPackDatasource(Datasource):  # type: ignore[misc]
    """The arrays of one version of a store as a Ray datasource (one column per array)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        arrays: str | Sequence[str],
        version: int | None,
        *,
        url: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self._names = (arrays,) if isinstance(arrays, str) else tuple(arrays)
        if not self._names:
            raise TypeError("arrays must name at least one array")
        self._snap: Snapshot | None = open_snapshot(path, url, storage_options, version)
        package = self._snap._package
        self._path: str | Package = package if package is not None else str(self._snap.path)
        self._version = self._snap.version
        shapes = {n: self._snap.get_shape(n) for n in self._names}
        if any(not s for s in shapes.values()):
            raise ValueError("a Ray dataset needs arrays with rows (not 0-d)")
        rows = {s[0] for s in shapes.values()}
        if len(rows) != 1:
            raise ValueError(f"the arrays must have the same number of rows: {shapes}")
        self._rows = rows.pop()
        self._row_bytes = sum(
            int(np.prod(s[1:], dtype=np.int64)) * self._snap._core.dtype(n).itemsize
            for n, s in shapes.items()
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_snap"] = None  # the pin stays with the driver's copy
        return state

    @property
    def version(self) -> int:
        return self._version

    def get_name(self) -> str:
        return "NumPack"

    def estimate_inmemory_data_size(self) -> int:
        return self._rows * self._row_bytes

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        n = self._rows
        k = max(1, min(parallelism if parallelism > 0 else 1, n))
        bounds = np.linspace(0, n, k + 1).astype(np.int64)
        tasks = []
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            if stop <= start and n:
                continue
            meta = BlockMetadata(
                num_rows=stop - start,
                size_bytes=(stop - start) * self._row_bytes,
                exec_stats=None,
                input_files=None,
            )
            fn = functools.partial(_read_span, self._path, self._version, self._names, start, stop)
            tasks.append(ReadTask(fn, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def read_numpack(
    path: str | os.PathLike[str] | None = None,
    arrays: str | Sequence[str] = ("x", "y"),
    version: int | None = None,
    parallelism: int = -1,
    *,
    url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ray.data.Dataset:
    """The arrays of the store at ``path`` (at ``version``, the current one when ``None``)
    as a Ray dataset with one column per array, in ``parallelism`` row ranges (Ray decides
    when -1). With ``url=`` (or a URL as ``path``), the arrays of a packed store (``.npkg``)
    at an fsspec URL, fetched once per machine (see ``numpack.dask.from_numpack``)."""
    source = NumPackDatasource(path, arrays, version, url=url, storage_options=storage_options)
    blocks = parallelism if parallelism > 0 else None
    return ray.data.read_datasource(source, override_num_blocks=blocks)


@ray.remote
def _describe(block: Any) -> tuple[int, str, tuple[int, ...]]:
    a = np.asarray(block)
    return len(a), a.dtype.str, tuple(a.shape[1:])


@ray.remote
def _write(path: str, token: str, start: int, block: Any) -> int:
    a = np.ascontiguousarray(block)
    _core.stage_write(_core.Store(path), token, start, a)
    return len(a)


def write_numpack(
    ds: ray.data.Dataset,
    path: str | os.PathLike[str],
    name: str,
    column: str | None = None,
    mode: str = "create",
) -> None:
    """Write ``column`` of ``ds`` (its only column when ``None``) to array ``name`` of the
    store at ``path``: every block from its own task, one commit at the end. ``mode``:
    ``"create"``, ``"overwrite"`` or ``"append"``."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
    if column is None:
        cols = ds.columns()
        if cols is None or len(cols) != 1:
            raise ValueError(f"the dataset has columns {cols}: name the one to write")
        column = cols[0]
    refs = ds.to_numpy_refs(column=column)
    described: Iterable[tuple[int, str, tuple[int, ...]]] = ray.get(
        [_describe.remote(r) for r in refs]
    )
    described = list(described)
    kinds = {(d, s) for _, d, s in described if _ > 0} or {(d, s) for _, d, s in described}
    if len(kinds) != 1:
        raise ValueError(f"the blocks of column {column!r} differ in dtype or shape: {kinds}")
    dtype, trail = kinds.pop()
    offsets = np.concatenate([[0], np.cumsum([n for n, _, _ in described])]).astype(int)
    store = _open_store(path)
    token = _core.stage_begin(store, name, mode, np.dtype(dtype), [int(offsets[-1]), *trail])
    try:
        ray.get(
            [
                _write.remote(os.fspath(path), token, int(off), r)
                for r, off, (n, _, _) in zip(refs, offsets[:-1], described)
                if n > 0
            ]
        )
        _core.stage_commit(store, token)
        store.sync()  # on disk before returning; errors raise
    except BaseException:
        _core.stage_abort(store, token)
        raise
