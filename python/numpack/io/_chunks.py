"""The one streaming, all-or-nothing helper behind every importer and exporter.

Importers write through an :class:`Import`: each new array is an :class:`ArraySink` that takes
rows batch by batch into a temporary file inside the store; nothing is visible until the
``with`` block ends without an exception, and then every array of the import appears at once
(replacing arrays of the same names whole). An exception anywhere leaves the store exactly as
it was: no partial array, other arrays untouched. With ``drop_if_exists=True`` the old
arrays are removed in that same final commit, so a failed import does not empty the store
either.

Exporters write through :func:`atomic_output`: a temporary file beside the target, renamed
onto it only when complete.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .. import _core
from .._attrs import attrs_json
from .._indexing import le_dtype
from ..numpack import NumPack
from ._progress import Progress, slices

T = TypeVar("T")

__all__ = [
    "ArraySink",
    "Import",
    "atomic_output",
    "chunk_rows",
    "is_storable",
    "naming",
    "prefetched",
]


def chunk_rows(row_bytes: int, chunk_size: int) -> int:
    """Rows per batch so one batch holds about ``chunk_size`` bytes (at least one row)."""
    if row_bytes <= 0:
        return 1 << 20
    return max(1, int(chunk_size) // int(row_bytes))


def is_storable(dtype: npt.DTypeLike) -> bool:
    """Whether a store can hold ``dtype`` (one of the 14 dtypes, any byte order)."""
    try:
        _core.dtype_code(le_dtype(np.dtype(dtype)))
    except (ValueError, TypeError):
        return False
    return True


@contextlib.contextmanager
def naming(file: str | os.PathLike[str], key: object = None) -> Iterator[None]:
    """Re-raise an exception of the block with ``file`` (and ``key``) at the start of its
    message, keeping its type where it can (``ImportError`` and ``OSError`` that already
    name a file pass unchanged)."""
    try:
        yield
    except (ImportError, Warning):
        raise
    except Exception as e:
        where = os.fspath(file) + (f" [{key}]" if key is not None else "")
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if where in text or (isinstance(e, OSError) and e.filename is not None):
            raise
        try:
            new = type(e)(f"{where}: {text}")
        except Exception:
            new = ValueError(f"{where}: {text}")
        raise new from e


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """Iterate ``items`` with the next one produced by a helper thread while the caller
    works on the current one (decoding overlaps writing; one extra item in memory).
    Exceptions of the producer are raised here; leaving the loop early stops it."""
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((0, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((1, None))
        except BaseException as e:  # handed to the consumer
            q.put((2, e))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
            del value
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            q.get_nowait()
        worker.join()


class ArraySink:
    """One array of an :class:`Import`, written in row batches (axis 0).

    ``row_shape`` is the shape of one row (``()`` for a 1-d array); ``None`` makes a 0-d
    array, which takes exactly one :meth:`write` of a 0-d array.
    """

    def __init__(
        self,
        writer: _core.ArrayWriter,
        name: str,
        dtype: np.dtype[Any],
        row_shape: tuple[int, ...] | None,
    ) -> None:
        self._writer = writer
        self.name = name
        self.dtype = le_dtype(np.dtype(dtype))
        self.row_shape = None if row_shape is None else tuple(int(d) for d in row_shape)
        self.rows = 0
        self._zero_d_written = False

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """The array's attributes once imported (replacing any the store had for it)."""
        self._writer.set_attrs(attrs_json(attrs))

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the array as written so far."""
        if self.row_shape is None:
            return ()
        return (self.rows, *self.row_shape)

    def write(self, rows: npt.ArrayLike) -> None:
        """Append ``rows`` (shape ``(n, *row_shape)``), cast to the sink's dtype only when the
        cast is exact (``same_kind`` casts that lose values raise ``TypeError``)."""
        a = np.asarray(rows)
        if self.row_shape is None:
            if a.ndim != 0 or self._zero_d_written:
                raise ValueError(f"array '{self.name}' is 0-d: write one 0-d array")
            self._zero_d_written = True
        elif a.shape[1:] != self.row_shape or a.ndim != len(self.row_shape) + 1:
            raise ValueError(
                f"array '{self.name}': rows of shape {self.row_shape} expected, "
                f"got a batch of shape {a.shape}"
            )
        if a.dtype != self.dtype:
            if not np.can_cast(a.dtype, self.dtype, casting="same_kind"):
                raise TypeError(
                    f"array '{self.name}' is {self.dtype}, cannot store a batch of {a.dtype}"
                )
            a = a.astype(self.dtype)
        self._writer.write(np.ascontiguousarray(a))
        if self.row_shape is not None:
            self.rows += a.shape[0]

    def copy_from_file(
        self,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        bar: Progress | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """Append ``length`` raw little-endian bytes of the file at ``path`` from ``offset``
        by kernel copies of whole rows, in slices of at most ``chunk_size`` bytes (see
        :func:`~numpack.io._progress.slices`), counting each on ``bar``. ``length`` must
        be whole rows."""
        row = self.dtype.itemsize * int(np.prod(self.row_shape or (), dtype=np.int64))
        if self.row_shape is None or (row and length % row):
            raise ValueError(f"array '{self.name}': {length} bytes are not whole rows")
        where = os.fspath(path)
        for start, n in slices(int(length), row, chunk_size):
            self._writer.copy_from(where, int(offset) + start, n)
            self.rows += n // row if row else 0
            if bar is not None:
                bar.update(n)


class Import:
    """An all-or-nothing import into the store at ``output_path``.

    Use as a context manager; ``npk`` is the open :class:`NumPack` while the block runs.
    ``keep_open=True`` leaves a fresh, open ``NumPack`` in :attr:`result` after a successful
    commit (for ``return_npk_obj``).
    """

    def __init__(
        self,
        output_path: str | os.PathLike[str],
        drop_if_exists: bool = False,
        keep_open: bool = False,
    ) -> None:
        self._path = Path(os.fspath(output_path))
        self._drop = bool(drop_if_exists)
        self._keep_open = keep_open
        self._sinks: dict[str, ArraySink] = {}
        self.npk: NumPack | None = None
        self.result: NumPack | None = None

    def __enter__(self) -> Import:
        if self._drop and self._path.exists() and not self._path.is_dir():
            # Not a store: nothing to preserve.
            self._path.unlink()
        self.npk = NumPack(self._path)
        self.npk.open()
        return self

    def array(
        self, name: str, dtype: npt.DTypeLike, row_shape: tuple[int, ...] | None
    ) -> ArraySink:
        """A new array ``name`` of ``dtype``; ``row_shape`` as in :class:`ArraySink`."""
        if not isinstance(name, str):
            raise TypeError(f"array name must be str, not {type(name).__name__}")
        if name in self._sinks:
            raise ValueError(f"array '{name}' is imported twice")
        dt = le_dtype(np.dtype(dtype))
        try:
            _core.dtype_code(dt)
        except (ValueError, TypeError):
            raise ValueError(f"Unsupported dtype: {dt} (array '{name}')") from None
        assert self.npk is not None, "use Import as a context manager"
        writer = self.npk._core_store().array_writer(name, dt)
        sink = ArraySink(writer, name, dt, row_shape)
        self._sinks[name] = sink
        return sink

    def sink(self, name: str) -> ArraySink:
        """The sink of array ``name``, imported in this block."""
        return self._sinks[name]

    def discard(self, name: str) -> None:
        """Forget array ``name`` (its written rows are removed; the name can be imported
        again)."""
        sink = self._sinks.pop(name, None)
        if sink is not None:
            sink._writer.abort()

    def save(
        self,
        name: str,
        array: npt.ArrayLike,
        chunk_size: int | None = None,
        bar: Progress | None = None,
    ) -> None:
        """Import an in-memory array (any shape, 0-d included); with ``chunk_size``, in
        batches of about that many bytes (so a non-contiguous or big-endian array is never
        copied whole), each counted on ``bar`` (in bytes)."""
        a = np.asarray(array)
        if a.ndim == 0:
            self.array(name, a.dtype, None).write(a)
            if bar is not None:
                bar.update(a.nbytes)
            return
        sink = self.array(name, a.dtype, a.shape[1:])
        n = a.shape[0]
        step = n if chunk_size is None else chunk_rows(a[:1].nbytes, chunk_size)
        if n == 0:
            sink.write(a)
        for start in range(0, n, max(1, step)):
            part = a[start : start + step]
            sink.write(part)
            if bar is not None:
                bar.update(part.nbytes)

    @property
    def path(self) -> Path:
        """The store directory."""
        return self._path

    @property
    def names(self) -> list[str]:
        """Names of the arrays imported so far."""
        return list(self._sinks)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        npk = self.npk
        assert npk is not None
        try:
            if exc_type is None:
                writers = [(s._writer, list(s.shape)) for s in self._sinks.values()]
                npk._core_store().commit_writers(writers, self._drop)
        finally:
            for s in self._sinks.values():
                s._writer.abort()
            npk.close()
        if exc_type is None and self._keep_open:
            self.result = NumPack(self._path)
            self.result.open()


@contextlib.contextmanager
def atomic_output(output_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``output_path``; rename it onto ``output_path`` when the
    block succeeds, remove it when it fails. Works for files and directories (Zarr)."""
    target = Path(os.fspath(output_path))
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (file or directory)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink() and tmp.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
