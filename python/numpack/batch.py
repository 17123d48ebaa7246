"""The two batch modes of ``NumPack``.

* ``BatchModeContext`` (``npk.batch_mode()``): an in-memory cache of loaded and saved arrays,
  written to disk in one ``Store.save`` when the block exits.
* ``WritableBatchMode`` (``npk.writable_batch_mode()``): writable ndarrays mapped onto the data
  files, so in-place edits reach the files without a save.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .exceptions import ArrayNotFoundError

if TYPE_CHECKING:
    from . import _core
    from .numpack import NumPack

__all__ = ["BatchModeContext", "WritableBatchMode"]

_COMPARE_CHUNK_BYTES = 16 << 20


def _bytes_equal(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """Exact byte comparison of two arrays of the same shape and dtype."""
    flat_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    flat_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return bool(np.array_equal(flat_a, flat_b))


def _differs_from_disk(store: _core.Store, name: str, array: npt.NDArray[Any]) -> bool:
    """Whether ``array`` differs (shape, dtype or any byte) from the stored logical rows."""
    try:
        phys, active = store.view(name)
    except ArrayNotFoundError:
        return True
    rows = phys.shape[:1] if active is None else (len(active),)
    if array.shape != (*rows, *phys.shape[1:]) or array.dtype.newbyteorder("<") != phys.dtype:
        return True
    if array.ndim == 0:
        return not _bytes_equal(array, phys)
    row_bytes = max(1, phys.dtype.itemsize * math.prod(phys.shape[1:]))
    step = max(1, _COMPARE_CHUNK_BYTES // row_bytes)
    for start in range(0, array.shape[0], step):
        stop = start + step
        disk = phys[start:stop] if active is None else phys[active[start:stop]]
        if not _bytes_equal(array[start:stop], disk):
            return True
    return False


class BatchModeContext:
    """Cache arrays in memory during a ``with`` block; write them when it exits.

    Created by ``NumPack.batch_mode(memory_limit=None)``.  Inside the block:

    * ``npk.load(name)`` reads the array once and returns the same in-memory ndarray on every
      call (``lazy`` is ignored); in-place edits to it are kept.
    * ``npk.save({...})`` stores the given objects in the cache by reference and marks them
      dirty; nothing is written yet (dtypes are still validated).
    * ``append``, ``replace``, row ``drop``, ``update`` and ``clone`` first write a cached array
      that is dirty or was edited in place, act on disk, then evict it from the cache (a call
      that fails leaves it cached, as it now is on disk, so later edits are still written).  A whole
      ``drop`` or ``reset`` discards cached arrays without writing them.
    * ``get_shape``, ``getitem``, ``stream_load``, ``has_array``, ``get_member_list`` answer
      from the cache for cached arrays; ``get_metadata`` and ``get_modify_time`` describe disk.

    On exit (also when an exception propagates) every dirty array, and every loaded array whose
    bytes now differ from disk, is written with one ``Store.save``; then the cache is cleared.

    Parameters
    ----------
    npk : NumPack
        The store.
    memory_limit : int, float or None, default None
        Megabytes (MiB) of cached arrays allowed, as in the published 0.6 (a float is fine:
        ``0.5`` is 512 KiB); when exceeded, pending arrays are written early and cached arrays
        other than the ones just loaded or saved are evicted.

    A ``batch_mode`` block inside another of the same ``NumPack`` joins it: its arrays stay in
    the outer block's cache and are written when the outermost block exits (the inner
    ``memory_limit`` is ignored).
    """

    def __init__(self, npk: NumPack, memory_limit: float | None = None) -> None:
        self._limit: int | None = None
        if memory_limit is not None:
            bad = TypeError(
                f"memory_limit must be a number of MB or None, not {type(memory_limit).__name__}"
            )
            if isinstance(memory_limit, bool):
                raise bad
            if not isinstance(memory_limit, (int, float)):
                try:
                    memory_limit = operator.index(memory_limit)
                except TypeError:
                    raise bad from None
            if math.isnan(memory_limit) or memory_limit < 0:
                raise ValueError("memory_limit must be a non-negative number of MB or None")
            if not math.isinf(memory_limit):
                self._limit = int(memory_limit * (1 << 20))
        self._npk = npk
        self.memory_limit = memory_limit
        self._cache: dict[str, npt.NDArray[Any]] = {}
        self._dirty: set[str] = set()
        self._joined: list[BatchModeContext | None] = []

    def __enter__(self) -> BatchModeContext:
        # An inner block joins the active one (remembered per entry, so one context object
        # may be entered inside itself too).
        outer = self._npk._batch
        self._joined.append(outer)
        if outer is None:
            self._npk._batch = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._joined.pop() is not None:
            return  # joined: the outermost block writes
        try:
            self._flush(clear=True)
        finally:
            self._cache.clear()
            self._dirty.clear()
            if self._npk._batch is self:
                self._npk._batch = None

    # --- used by NumPack -----------------------------------------------------------------

    def _load(self, name: str) -> npt.NDArray[Any]:
        cached = self._cache.get(name)
        if cached is None:
            cached = self._npk._open_store().load(name)
            self._cache[name] = cached
            self._enforce_limit({name})
        return cached

    def _save(self, items: list[tuple[str, npt.NDArray[Any]]]) -> None:
        for name, value in items:
            self._cache[name] = value
            self._dirty.add(name)
        self._enforce_limit({name for name, _ in items})

    def _pending(self, names: list[str]) -> list[tuple[str, npt.NDArray[Any]]]:
        """Cached arrays among ``names`` that must be written: dirty or edited in place."""
        store = self._npk._open_store()
        return [
            (name, self._cache[name])
            for name in names
            if name in self._cache
            and (name in self._dirty or _differs_from_disk(store, name, self._cache[name]))
        ]

    def _write_pending(self, names: list[str]) -> None:
        """Write the pending arrays among ``names`` (they stay cached, now equal to disk)."""
        self._npk._write(self._pending(names))
        self._dirty.difference_update(names)

    def _settle(self, names: list[str]) -> None:
        """Write the pending arrays among ``names``, then evict them."""
        self._write_pending(names)
        self._discard(names)

    def _discard(self, names: list[str]) -> None:
        """Evict ``names`` without writing them."""
        for name in names:
            self._cache.pop(name, None)
            self._dirty.discard(name)

    def _flush(self, clear: bool) -> None:
        """Write every pending array; empty the cache afterwards when ``clear``."""
        if self._cache:
            self._npk._write(self._pending(list(self._cache)))
        self._dirty.clear()
        if clear:
            self._cache.clear()

    def _enforce_limit(self, keep: set[str]) -> None:
        if self._limit is None:
            return
        if sum(a.nbytes for a in self._cache.values()) <= self._limit:
            return
        self._flush(clear=False)
        self._discard([name for name in self._cache if name not in keep])


class WritableBatchMode:
    """Writable arrays mapped onto the data files, flushed when the block exits.

    Created by ``NumPack.writable_batch_mode()``; ``__enter__`` returns the object itself.
    ``wb.load(name)`` returns a writable ndarray over a shared memory map of the array's data
    file: in-place edits reach the file with no save.  Shapes cannot change through it.

    Notes
    -----
    An array with deleted rows is compacted (``NumPack.update``) before it is mapped, so that
    the mapping covers exactly its logical rows.  An empty array (0 bytes) cannot be mapped and
    is returned as a writable empty ndarray.  The arrays stay valid memory after the block
    exits (the mapping lives as long as the array), but later edits are flushed only by the OS.
    """

    def __init__(self, npk: NumPack) -> None:
        self._npk = npk
        self._arrays: dict[str, npt.NDArray[Any]] = {}
        self._files: list[_core.MappedFile] = []

    def __enter__(self) -> WritableBatchMode:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.flush()
        finally:
            self._arrays.clear()
            self._files.clear()

    def load(self, array_name: str) -> npt.NDArray[Any]:
        """Return a writable ndarray mapped onto the array's data file.

        The same name returns the same object within the block.

        Raises
        ------
        ArrayNotFoundError
            If the array does not exist.
        """
        cached = self._arrays.get(array_name)
        if cached is not None:
            return cached
        store = self._npk._core_store()
        if not isinstance(array_name, str):
            raise TypeError(f"array name must be str, not {type(array_name).__name__}")
        if self._npk._batch is not None:
            self._npk._batch._settle([array_name])
        info = store.info(array_name)
        if info["deleted_rows"]:
            store.compact(array_name)
            info = store.info(array_name)
        if info["size_bytes"] == 0:
            array = np.zeros(tuple(info["logical_shape"]), dtype=store.dtype(array_name))
        else:
            array, mapped = store.writable_view(array_name)
            self._files.append(mapped)
        self._arrays[array_name] = array
        return array

    def save(self, arrays: object) -> None:
        """No-op, kept for compatibility: edits to loaded arrays are already in the files."""

    def flush(self) -> None:
        """Flush (msync) every mapping handed out so far."""
        for mapped in self._files:
            mapped.flush()
