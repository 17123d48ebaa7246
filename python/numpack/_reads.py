"""The reading API of ``NumPack`` (``load``, ``getitem``, ``stream_load``, the queries and
the container protocol): a mixin over the handle's store, its pinned snapshot and its batch
cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from . import _core
from ._indexing import (
    check_buffer_size,
    check_name,
    parse_getitem_indexes,
    row_batches,
    select_cached,
)
from .lazy_array import LazyArray
from .snapshot import Snapshot, SnapshotArray

if TYPE_CHECKING:
    from .batch import BatchModeContext

__all__ = ["ReadsMixin"]


class ReadsMixin:
    """Reads of the store a ``NumPack`` handle has open."""

    _path: Path
    _batch: BatchModeContext | None

    if TYPE_CHECKING:

        def _core_store(self) -> _core.Store: ...
        def _pinned(self) -> Snapshot | None: ...
        def _cached(self, name: str) -> npt.NDArray[Any] | None: ...
        def _dtype_shape(
            self, store: _core.Store, name: str
        ) -> tuple[np.dtype[Any], tuple[int, ...]]: ...

    # --- reading -------------------------------------------------------------------------

    def load(
        self, array_name: str, lazy: bool = False
    ) -> npt.NDArray[Any] | LazyArray | SnapshotArray:
        """Load an array.

        Parameters
        ----------
        array_name : str
            Name of the array.
        lazy : bool, default False
            Return a memory-mapped ``LazyArray`` instead of an in-memory ndarray.  Ignored in
            ``batch_mode``, where the cached ndarray is returned.

        Returns
        -------
        numpy.ndarray or LazyArray
            The logical rows; an eager ndarray is writable and independent of the file.

        Raises
        ------
        ArrayNotFoundError
            If the array does not exist.
        """
        snap = self._pinned()
        if snap is not None:
            return snap.load(array_name, lazy=lazy)
        store = self._core_store()
        check_name(array_name)
        if self._batch is not None:
            return self._batch._load(array_name)
        if lazy:
            return LazyArray(store, array_name)
        return store.load(array_name)

    def __getitem__(self, array_name: str) -> npt.NDArray[Any]:
        """``npk[name]`` is ``npk.load(name)``."""
        return cast("npt.NDArray[Any]", self.load(array_name))

    def getitem(self, array_name: str, indexes: Any) -> npt.NDArray[Any]:
        """Return selected logical rows as a new ndarray (the row axis is always kept).

        Parameters
        ----------
        array_name : str
            Name of the array.
        indexes : int, list, tuple, numpy.ndarray or slice
            An int gives shape ``(1, ...)``; a list/tuple/int array gives the rows in order
            (duplicates allowed); a bool ndarray is a mask; a slice (any step) selects like NumPy.

        Raises
        ------
        ArrayNotFoundError
            If the array does not exist.
        IndexOutOfRangeError
            If an index is out of range.
        TypeError
            For another index type.
        """
        snap = self._pinned()
        if snap is not None:
            return snap.getitem(array_name, indexes)
        store = self._core_store()
        if (
            type(indexes) is np.ndarray
            and indexes.dtype == np.int64
            and indexes.ndim == 1
            and self._batch is None
            and type(array_name) is str
        ):
            return store.getitem(array_name, indexes)  # hot path: no conversion needed
        check_name(array_name)
        spec = parse_getitem_indexes(indexes)
        cached = self._cached(array_name)
        if cached is not None:
            return select_cached(cached, array_name, spec)
        return store.getitem(array_name, spec)

    def stream_load(
        self, array_name: str, buffer_size: int | None = None
    ) -> Iterator[npt.NDArray[Any]]:
        """Iterate over the logical rows in batches of at most ``buffer_size`` rows.

        The batches come from the array version current at call time, so iteration keeps
        working after the store is closed. Each batch is a new, writable array; large batches
        (64 KiB and up) of arrays without deleted rows are private copy-on-write mappings of
        their rows, so nothing is copied until a page is written (such a batch may show a
        later in-place ``replace`` of rows it has not written to, as a ``LazyArray`` does).

        Parameters
        ----------
        array_name : str
            Name of the array.
        buffer_size : int or None, default None
            Rows per batch; ``None`` means 1.

        Raises
        ------
        ArrayNotFoundError
            If the array does not exist (raised by this call, not by the first ``next()``).
        ValueError
            If ``buffer_size <= 0``.
        TypeError
            If ``buffer_size`` is not an int, or the array is 0-d.
        """
        snap = self._pinned()
        if snap is not None:
            return snap.stream_load(array_name, buffer_size)
        store = self._core_store()
        check_name(array_name)
        size = check_buffer_size(buffer_size)
        cached = self._cached(array_name)
        source = None
        if cached is not None:
            phys, active = cached, None
        else:
            source = store.row_source(array_name)
            dtype, shape, active = source.layout()
            # Batches come from `source`: `phys` only carries the dtype and shape.
            one = bytes(np.dtype(dtype).itemsize)
            phys = np.ndarray(shape, dtype, buffer=one, strides=(0,) * len(shape))
        if phys.ndim == 0:
            raise TypeError(f"Cannot stream array '{array_name}': it is 0-d")
        return row_batches(phys, active, size, source)

    # --- queries -------------------------------------------------------------------------

    def get_shape(self, array_name: str) -> tuple[int, ...]:
        """Logical shape of an array (deleted rows excluded); ``ArrayNotFoundError`` if missing."""
        snap = self._pinned()
        if snap is not None:
            return snap.get_shape(array_name)
        store = self._core_store()
        return self._dtype_shape(store, check_name(array_name))[1]

    def get_member_list(self) -> list[str]:
        """Sorted names of the arrays (including arrays saved in an open ``batch_mode``)."""
        snap = self._pinned()
        if snap is not None:
            return snap.get_member_list()
        store = self._core_store()
        names = set(store.names())
        if self._batch is not None:
            names.update(self._batch._cache)
        return sorted(names)

    def has_array(self, array_name: str) -> bool:
        """Whether an array of that name exists."""
        snap = self._pinned()
        if snap is not None:
            return snap.has_array(array_name)
        store = self._core_store()
        return self._cached(check_name(array_name)) is not None or store.has(array_name)

    def get_modify_time(self, array_name: str) -> int | None:
        """Last modification of an array in microseconds since the epoch; ``None`` if missing."""
        return self._core_store().modify_time(check_name(array_name))

    def get_metadata(self) -> dict[str, Any]:
        """Describe the arrays on disk.

        Returns
        -------
        dict
            ``{'arrays': {name: {'shape', 'data_file', 'last_modified', 'size_bytes',
            'dtype'}}, 'total_size', 'base_dir', 'total_arrays'}``; shapes are logical,
            ``size_bytes`` counts the data file's rows (deleted ones included).
        """
        store = self._core_store()
        arrays = {}
        for name in store.names():
            info = store.info(name)
            arrays[name] = {
                "shape": list(info["logical_shape"]),
                "data_file": info["data_file"],
                "last_modified": info["last_modified"],
                "size_bytes": info["size_bytes"],
                "dtype": info["dtype"],
            }
        return {
            "arrays": arrays,
            "total_size": store.total_size(),
            "base_dir": str(self._path),
            "total_arrays": len(arrays),
        }

    def get_io_stats(self) -> dict[str, Any]:
        """I/O counters; numpack keeps none, so ``{'stats_available': False}``."""
        return {"stats_available": False}

    def __iter__(self) -> Iterator[str]:
        return iter(self.get_member_list())

    def __len__(self) -> int:
        return len(self.get_member_list())

    def __bool__(self) -> bool:
        # Always true (as upstream, which had no __len__): ``if npk:`` must not depend on the
        # number of arrays or raise on a closed store.
        return True

    def __contains__(self, array_name: object) -> bool:
        return isinstance(array_name, str) and self.has_array(array_name)
