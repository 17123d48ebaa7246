"""The exporters' side: an existing store read array by array, in chunks of rows."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .. import _core
from ..exceptions import ArrayNotFoundError, CorruptStoreError
from ..numpack import NumPack
from ..snapshot import Snapshot
from . import _progress
from ._chunks import chunk_rows
from ._progress import Progress

__all__ = ["Source", "SourceLike", "copy_payload"]

#: What an exporter reads: a store directory, or a :class:`~numpack.Snapshot` of one.
SourceLike = str | os.PathLike[str] | Snapshot


#: NumPy names of the ``ml_dtypes`` types numpack stores.
_ML_NAMES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


class _SnapshotStore:
    """The part of the store interface exporters use, over a pinned version: every read is
    a copy of that version (there is no data file to map or copy whole)."""

    def __init__(self, snap: Snapshot) -> None:
        self._core = snap._core
        self._path = snap.path

    def names(self) -> list[str]:
        return list(self._core.names())

    def describe(self, name: str) -> tuple[Any, list[int]]:
        return self._core.dtype(name), list(self._core.shape(name))

    def load(self, name: str) -> npt.NDArray[Any]:
        return self._core.load(name)

    def read_range(self, name: str, start: int, stop: int) -> npt.NDArray[Any]:
        return self._core.read_range(name, start, stop)

    def info(self, name: str) -> dict[str, Any]:
        # No payload file: exporters then copy rows, as for an array with deleted rows.
        return {"deleted_rows": 1, "data_file": ""}

    def attrs(self, name: str) -> str:
        # Attributes are not versioned: the array's current ones, if it still exists.
        store = _core.Store(os.fspath(self._path))
        try:
            return str(store.attrs(name))
        except KeyError:
            return "{}"
        finally:
            store.close()


class Source:
    """An existing store opened for export (``FileNotFoundError`` if there is none), or a
    :class:`~numpack.Snapshot` of one (every array read at its version).

    Use as a context manager; the store is closed on exit (a snapshot passed in is left
    open: it belongs to the caller).
    """

    def __init__(self, input_path: SourceLike) -> None:
        self.snapshot = input_path if isinstance(input_path, Snapshot) else None
        self.path = Path(
            input_path.path if isinstance(input_path, Snapshot) else os.fspath(input_path)
        )
        if self.snapshot is None and not (self.path / "metadata.npkm").is_file():
            raise FileNotFoundError(f"NumPack store not found: {self.path}")
        self._npk = NumPack(self.path)
        self.store: Any

    def __enter__(self) -> Source:
        if self.snapshot is not None:
            if self.snapshot.closed:
                raise ValueError("the snapshot is closed; open a new one with snapshot()")
            self.store = _SnapshotStore(self.snapshot)
            return self
        self._npk.open()
        self.store = self._npk._core_store()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.snapshot is None:
            self._npk.close()

    @property
    def npk(self) -> NumPack:
        """The open store."""
        return self._npk

    def names(self, array_names: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
        """``array_names`` checked to exist (a str counts as one name); ``None``: all arrays."""
        have = self.store.names()
        if array_names is None:
            return have
        wanted = [array_names] if isinstance(array_names, str) else list(array_names)
        missing = [n for n in wanted if n not in have]
        if missing:
            raise ArrayNotFoundError(
                f"Array(s) {missing} not found in {self.path}; available: {have}"
            )
        return wanted

    def single(self, array_name: str | None = None) -> str:
        """``array_name``, or the only array of the store when it is ``None``."""
        if array_name is not None:
            return self.names([array_name])[0]
        have = self.store.names()
        if len(have) != 1:
            what = "no arrays" if not have else f"multiple arrays {have}"
            raise ValueError(f"NumPack contains {what}; please provide the array_name argument.")
        return have[0]

    def refuse_ml_dtypes(self, names: list[str], fmt: str) -> None:
        """``ValueError`` when one of ``names`` is bfloat16 / float8 and ``fmt`` has no such
        type (its file would not read back as the same values)."""
        bad = [f"'{n}' ({d})" for n in names if (d := self.describe(n)[0]).name in _ML_NAMES]
        if bad:
            raise ValueError(
                f"{fmt} has no type for array(s) {', '.join(bad)}: export them to SafeTensors, "
                "Parquet, Feather or torch, or convert them with astype first"
            )

    def attrs(self, name: str) -> dict[str, Any]:
        """The attributes of array ``name`` (a new dict); a damaged attributes file is
        skipped with a warning (the data still exports)."""
        try:
            out: dict[str, Any] = json.loads(self.store.attrs(name))
        except CorruptStoreError as e:
            warnings.warn(f"attributes of array '{name}' not exported: {e}", stacklevel=3)
            return {}
        return out

    def describe(self, name: str) -> tuple[np.dtype[Any], tuple[int, ...]]:
        """``(dtype, logical shape)`` of array ``name``."""
        dtype, shape = self.store.describe(name)
        return np.dtype(dtype), tuple(int(d) for d in shape)

    def nbytes(self, name: str) -> int:
        """Bytes of the logical array ``name``."""
        dtype, shape = self.describe(name)
        return dtype.itemsize * int(np.prod(shape, dtype=np.int64))

    def load(self, name: str) -> npt.NDArray[Any]:
        """The whole array in memory (for small arrays and 0-d ones)."""
        return self.store.load(name)

    def rows_per_chunk(self, name: str, chunk_size: int, multiple: int = 1) -> int:
        """Rows per chunk of about ``chunk_size`` bytes, a multiple of ``multiple`` when that
        is at least one chunk's worth of rows."""
        dtype, shape = self.describe(name)
        row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        n = chunk_rows(row, chunk_size)
        multiple = max(1, int(multiple))
        return max(multiple, n // multiple * multiple) if n >= multiple else n

    def chunks(self, name: str, chunk_size: int, multiple: int = 1) -> Iterator[npt.NDArray[Any]]:
        """The logical rows of ``name`` in consecutive chunks (nothing for 0 rows; the 0-d
        array itself for a 0-d array)."""
        _dtype, shape = self.describe(name)
        if not shape:
            yield self.load(name)
            return
        step = self.rows_per_chunk(name, chunk_size, multiple)
        for start in range(0, shape[0], step):
            yield self.store.read_range(name, start, min(start + step, shape[0]))

    def payload_file(self, name: str) -> Path | None:
        """The data file of ``name`` when it holds exactly the array's C-order bytes from
        offset 0 (no deleted rows), else ``None``."""
        info = self.store.info(name)
        if int(info.get("deleted_rows", 0)) or int(info.get("segments", 0)):
            return None
        dtype, shape = self.describe(name)
        need = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        path = Path(info["data_file"])
        if not path.is_absolute():
            path = self.path / path
        if need and (not path.is_file() or path.stat().st_size < need):
            return None
        return path


def copy_payload(src: Path, dst: IO[bytes], nbytes: int, bar: Progress | None = None) -> None:
    """Append ``nbytes`` of ``src`` from offset 0 to ``dst`` (a kernel copy where possible),
    in slices of at most :data:`~numpack.io._progress.SLICE_BYTES`, each counted on
    ``bar``."""
    dst.flush()
    out = dst.fileno()
    pos = os.lseek(out, 0, os.SEEK_CUR)
    # Blocks reserved up front: ext4 then skips delayed allocation, whose forced flush made
    # the final rename over an existing file take as long as the copy itself.
    _core.preallocate(out, pos, nbytes)
    done = 0
    step = _progress.SLICE_BYTES
    with open(src, "rb") as f:
        inp = f.fileno()
        with contextlib.suppress(OSError, AttributeError):
            while done < nbytes:
                n = os.copy_file_range(inp, out, min(nbytes - done, step), done, pos + done)
                if n <= 0:
                    break
                done += n
                if bar is not None:
                    bar.update(n)
        f.seek(done)
        os.lseek(out, pos + done, os.SEEK_SET)
        while done < nbytes:
            buf = f.read(min(nbytes - done, step, 16 << 20))
            if not buf:
                raise ValueError(f"{src}: data file shorter than the array")
            dst.write(buf)
            done += len(buf)
            if bar is not None:
                bar.update(len(buf))
    dst.flush()
    os.lseek(out, pos + nbytes, os.SEEK_SET)
