"""``NumPack``: the store handle (open/close, context manager, save/load/append/...).

The class normalises arguments, validates every entry before anything is written, and calls
``numpack._core.Store``, which does the I/O.  Inside ``batch_mode`` the reads and writes go
through the batch cache of ``numpack.batch``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._attrs import StoreAttrs
from ._index import IndexMixin
from ._indexing import (
    RowSpec,
    check_array,
    check_name,
    check_names,
    le_dtype,
    parse_drop_indexes,
    parse_replace_indexes,
    storable,
)
from ._reads import ReadsMixin
from ._versions import VersionsMixin
from .batch import BatchModeContext, WritableBatchMode
from .snapshot import Snapshot

__all__ = ["NumPack"]

_NOT_OPEN = "NumPack instance is not opened or has been closed; call open() or use a with block"
_STRICT = "NumPack is in strict context mode: use it inside a 'with NumPack(...) as npk:' block"


class NumPack(ReadsMixin, VersionsMixin, IndexMixin):
    """A directory of named NumPy arrays with in-place append, replace and row deletion.

    Parameters
    ----------
    filename : str or os.PathLike
        The store directory.  The constructor does not touch the file system.
    drop_if_exists : bool, default False
        On the first ``open()`` only, delete whatever exists at ``filename``.
    strict_context_mode : bool, default False
        Data methods raise ``RuntimeError`` unless called inside a ``with`` block.
    warn_no_context : bool or None, default None
        Emit a ``UserWarning`` recommending the context manager; ``None`` means true on
        Windows only.  Never emitted in strict context mode.
    force_gc_on_close : bool, default False
        Run ``gc.collect()`` in ``close()``.
    version : int or None, default None
        Open the store read-only at this version (which history must keep): every read
        returns that version, every write raises ``PermissionError``.
    tag : str or None, default None
        As ``version``, naming the version by a tag (see ``tag()``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from numpack import NumPack
    >>> with NumPack(os.path.join(tempfile.mkdtemp(), "data.npk")) as npk:
    ...     npk.save({"x": np.arange(6).reshape(3, 2)})
    ...     npk.load("x").shape
    (3, 2)
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        drop_if_exists: bool = False,
        strict_context_mode: bool = False,
        warn_no_context: bool | None = None,
        force_gc_on_close: bool = False,
        *,
        version: int | None = None,
        tag: str | None = None,
    ) -> None:
        if version is not None and tag is not None:
            raise ValueError("give version or tag, not both")
        if drop_if_exists and (version is not None or tag is not None):
            raise ValueError("drop_if_exists cannot be combined with version or tag (read-only)")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise TypeError(f"version must be an int, not {type(version).__name__}")
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag must be a str, not {type(tag).__name__}")
        self._pin: int | str | None = version if version is not None else tag
        self._snap: Snapshot | None = None
        self._path = Path(filename)
        self._drop_if_exists = bool(drop_if_exists)
        self._strict = bool(strict_context_mode)
        self._force_gc = bool(force_gc_on_close)
        self._store: _core.Store | None = None
        self._opened = False
        self._closed = False
        self._context_entered = False
        self._batch: BatchModeContext | None = None
        if warn_no_context is None:
            warn_no_context = sys.platform == "win32"
        if warn_no_context and not self._strict:
            warnings.warn(
                "NumPack used without a context manager: prefer 'with NumPack(...) as npk:' so "
                "that files are closed promptly",
                UserWarning,
                stacklevel=2,
            )

    def __reduce__(self) -> tuple[Any, tuple[str, bool, bool, int | None, bool]]:
        # By what it names, never by its open files: the copy opens the store in the process
        # that unpickles it (a pinned handle pins the same version). drop_if_exists is not
        # carried: a worker must never wipe the store.
        pin = self._snap.version if self._snap is not None else self._pin
        if isinstance(pin, str):
            pin = int(_core.Store(str(self._path)).tagged(pin))
        return (
            _reopen_handle,
            (str(self._path), self._strict, self._force_gc, pin, self.is_opened),
        )

    # --- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Open the store, creating the directory if needed.  No-op when already open.

        ``drop_if_exists`` is applied on the first call only.  Works again after ``close()``.
        """
        if self.is_opened:
            return
        if self._drop_if_exists:
            if self._path.is_symlink() or self._path.is_file():
                self._path.unlink()
            elif self._path.is_dir():
                shutil.rmtree(self._path)
            self._drop_if_exists = False
        if self._pin is not None:
            if not self._path.is_dir():
                raise FileNotFoundError(f"no store at {self._path} to read a version of")
            store = _core.Store(str(self._path))
            version = store.tagged(self._pin) if isinstance(self._pin, str) else self._pin
            self._snap = Snapshot(self._path, store.snapshot(version))
            self._store = store
            self._opened = True
            self._closed = False
            return
        self._path.mkdir(parents=True, exist_ok=True)
        self._store = _core.Store(str(self._path))
        self._opened = True
        self._closed = False

    def close(self, force_gc: bool | None = None) -> None:
        """Flush pending batch-mode arrays, make everything durable and release the store.

        Idempotent.  Errors from the final write propagate.

        Parameters
        ----------
        force_gc : bool or None, optional
            Run ``gc.collect()`` afterwards; ``None`` uses ``force_gc_on_close``.
        """
        if self.is_opened:
            store = self._store
            try:
                if self._batch is not None:
                    self._batch._flush(clear=True)
            finally:
                self._store = None
                self._closed = True
                if self._snap is not None:
                    self._snap.close()
                    self._snap = None
                if store is not None:
                    store.close()
        if force_gc or (force_gc is None and self._force_gc):
            gc.collect()

    def __enter__(self) -> NumPack:
        self.open()
        self._context_entered = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.close()
        finally:
            self._context_entered = False

    def __del__(self) -> None:
        # Nothing sensible can be done with an error in a finaliser.
        with contextlib.suppress(Exception):
            self.close()

    @property
    def is_opened(self) -> bool:
        """True while the store is open."""
        return self._opened and not self._closed

    @property
    def is_closed(self) -> bool:
        """True before the first ``open()`` and after ``close()``."""
        return not self.is_opened

    @property
    def path(self) -> Path:
        """The store directory."""
        return self._path

    @property
    def attrs(self) -> StoreAttrs:
        """Attributes of the arrays: ``npk.attrs["emb"]["model"] = "e5-base"`` persists (one
        commit); ``npk.attrs["emb"]`` is a live dict of JSON values, at most 1 MiB of JSON
        per array, kept by ``update``, ``clone``, ``pack`` and the conversions to formats
        with metadata, removed with the array. Values read are copies."""
        return StoreAttrs(self)

    def _open_store(self) -> _core.Store:
        """The open ``numpack._core.Store`` (no strict-mode check: for internal callers)."""
        if not self.is_opened or self._store is None:
            raise RuntimeError(_NOT_OPEN)
        return self._store

    def _core_store(self) -> _core.Store:
        """The open ``numpack._core.Store``, after the open / strict-mode checks."""
        store = self._open_store()
        if self._strict and not self._context_entered:
            raise RuntimeError(_STRICT)
        return store

    def _writer(self) -> _core.Store:
        """The store, for a call that writes: refused on a store opened at a version."""
        if self._pin is not None:
            raise PermissionError(
                f"NumPack({self._path}) was opened at version {self._pin!r}, which is "
                "read-only; open it without version/tag to write"
            )
        return self._core_store()

    def _pinned(self) -> Snapshot | None:
        """The snapshot reads go through when opened at a version (after the open checks)."""
        if self._snap is None:
            return None
        self._core_store()
        return self._snap

    def _write(self, items: list[tuple[str, npt.NDArray[Any]]]) -> None:
        """Save validated arrays to disk now, in one ``Store.save`` call."""
        if items:
            self._open_store().save([(name, storable(value)) for name, value in items])

    def _cached(self, name: str) -> npt.NDArray[Any] | None:
        return None if self._batch is None else self._batch._cache.get(name)

    def _settle(self, names: list[str]) -> None:
        """Batch mode: write the cached arrays among ``names`` before a call acts on disk."""
        if self._batch is not None:
            self._batch._write_pending(names)

    def _settled(self, names: list[str]) -> None:
        """Batch mode: evict ``names`` once a call has changed them on disk (a call that
        fails leaves them cached: they equal what is on disk)."""
        if self._batch is not None:
            self._batch._discard(names)

    def _dtype_shape(self, store: _core.Store, name: str) -> tuple[np.dtype[Any], tuple[int, ...]]:
        cached = self._cached(name)
        if cached is not None:
            return le_dtype(cached.dtype), tuple(cached.shape)
        return store.describe(name)

    def __repr__(self) -> str:
        if not self.is_opened or self._store is None:
            return f"NumPack({self._path}, status=closed)"
        try:
            return f"NumPack({self._path}, arrays={len(self._store.names())})"
        except Exception:  # repr must not raise
            return f"NumPack({self._path}, status=opened)"

    # --- writing -------------------------------------------------------------------------

    def save(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Store each array under its name, replacing an existing array of that name whole.

        Any of the 14 dtypes, any number of dimensions (0-d and empty included) and any memory
        layout is accepted; values are stored little-endian in C order.  Every entry is
        validated before anything is written.

        Parameters
        ----------
        arrays : dict of str to numpy.ndarray
            Arrays by name.

        Raises
        ------
        ValueError
            If ``arrays`` is not a dict or a dtype is not supported.
        TypeError
            If a key is not a str or a value is not an ndarray.
        """
        store = self._writer()
        if not isinstance(arrays, dict):
            raise ValueError("arrays must be a dictionary")
        items = [(name, check_array(name, value)) for name, value in arrays.items()]
        if self._batch is not None:
            self._batch._save(items)
        elif items:
            store.save([(name, storable(value)) for name, value in items])

    def append(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Append rows (axis 0) to existing arrays, in place.

        Parameters
        ----------
        arrays : dict of str to numpy.ndarray
            Rows to append; same ndim, trailing dimensions and dtype as the stored array.

        Raises
        ------
        ArrayNotFoundError
            If an array does not exist (append never creates arrays).
        TypeError
            If a dtype differs from the stored one (no casting; byte order is converted).
        ValueError
            If ``arrays`` is not a dict, or ndim / trailing dimensions differ.
        """
        store = self._writer()
        if not isinstance(arrays, dict):
            raise ValueError("arrays must be a dictionary")
        items = [(name, check_array(name, value)) for name, value in arrays.items()]
        names = [name for name, _ in items]
        self._settle(names)
        if items:
            # One engine call: every array is checked first, then all grow in one commit.
            store.append([(name, storable(value)) for name, value in items])
        self._settled(names)

    def replace(self, arrays: dict[str, npt.NDArray[Any]], indexes: Any) -> None:
        """Overwrite logical rows in place.

        Parameters
        ----------
        arrays : dict of str to numpy.ndarray
            New rows: ``len(indexes)`` rows, or a single row (or one row without the row axis)
            that is broadcast to every index.
        indexes : int, list of int, numpy.ndarray or slice
            Logical rows; negatives count from the end; slices may have any step.  A bool
            ndarray is a mask over the logical rows.  They are resolved by the engine under
            the store lock, against the array as the call finds it.

        Raises
        ------
        ValueError
            For another index type, a wrong number of rows, ndim or trailing dimensions.
        IndexOutOfRangeError
            If an index is out of range.
        TypeError
            If a dtype differs from the stored one.

        Notes
        -----
        All or nothing: every array is checked before any row is written, and a crash
        leaves every row of every array old or every row new.
        """
        store = self._writer()
        if not isinstance(arrays, dict):
            raise ValueError("arrays must be a dictionary")
        rows = parse_replace_indexes(indexes)
        items = [(name, check_array(name, value)) for name, value in arrays.items()]
        names = [name for name, _ in items]
        self._settle(names)
        if items:
            store.replace([(name, storable(value), rows) for name, value in items])
        self._settled(names)

    def drop(self, array_name: str | list[str], indexes: Any = None) -> None:
        """Delete whole arrays, or logical rows of arrays.

        Parameters
        ----------
        array_name : str or list of str
            Name(s) of the arrays.
        indexes : int, list, tuple, numpy.ndarray, slice or None, default None
            ``None`` deletes the arrays whole; names that do not exist are skipped silently.
            Otherwise the logical rows to delete (negatives from the end, slices of any step,
            a bool ndarray is a mask), resolved by the engine under the store lock; the arrays
            must exist, and all of them lose their rows in one commit.

        Raises
        ------
        ArrayNotFoundError
            If ``indexes`` is given and an array does not exist.
        IndexOutOfRangeError
            If an index is out of range.
        ValueError
            For another index type, or an array that is 0-d.
        """
        store = self._writer()
        names = check_names(array_name)
        if indexes is None:
            if self._batch is not None:
                self._batch._discard(names)
            store.drop_arrays(names)
            return
        rows: RowSpec = parse_drop_indexes(indexes)
        self._settle(names)
        if names:
            store.drop_rows([(name, rows) for name in names])
        self._settled(names)

    def update(self, array_name: str) -> None:
        """Compact an array: physically remove its deleted rows (no-op without deletions).

        Raises ``ArrayNotFoundError`` if the array does not exist.
        """
        store = self._writer()
        names = [check_name(array_name)]
        self._settle(names)
        store.compact(array_name)
        self._settled(names)

    def clone(self, source_name: str, target_name: str) -> None:
        """Copy an array under a new name (an independent, compacted copy).

        Raises ``ArrayNotFoundError`` if the source does not exist and ``ValueError`` if the
        target already exists.
        """
        store = self._writer()
        names = [check_name(source_name), check_name(target_name)]
        self._settle(names)
        store.clone(source_name, target_name)
        self._settled(names)

    def reset(self) -> None:
        """Remove every array (pending batch-mode arrays included)."""
        store = self._writer()
        if self._batch is not None:
            self._batch._discard(list(self._batch._cache))
        store.reset()

    # --- batch modes ---------------------------------------------------------------------

    def batch_mode(self, memory_limit: float | None = None) -> BatchModeContext:
        """Cache loaded and saved arrays in memory and write them when the block exits.

        See ``numpack.batch.BatchModeContext``.
        """
        if self._pin is not None:
            self._writer()
        return BatchModeContext(self, memory_limit)

    def writable_batch_mode(self) -> WritableBatchMode:
        """Hand out writable arrays mapped onto the data files.

        See ``numpack.batch.WritableBatchMode``.
        """
        if self._pin is not None:
            self._writer()
        return WritableBatchMode(self)


def _reopen_handle(
    path: str, strict: bool, force_gc: bool, version: int | None, opened: bool
) -> NumPack:
    npk = NumPack(
        path,
        strict_context_mode=strict,
        warn_no_context=False,
        force_gc_on_close=force_gc,
        version=version,
    )
    if opened:
        npk.open()
    return npk
