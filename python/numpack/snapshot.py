"""``Snapshot``: the read API of a store pinned to one version while others keep writing.

A snapshot is made by ``NumPack.snapshot()`` (the current version, or an older one that
history still keeps) and released by ``close()``, by leaving its ``with`` block or by garbage
collection. While it is open, every commit of every process keeps what the snapshot needs
(the old rows of a replace, the old data file of an overwriting save), so its reads always
return the version it pinned. Pickling a snapshot gives ``(path, version)``: the copy, in a
worker process, pins the same version again (which history must still keep then: keep the
original open until the workers have opened theirs). A snapshot of a packed store fetched
from a URL (``Snapshot.fetch``) pickles as its package: a copy on another machine fetches it
there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._indexing import check_buffer_size, check_name, parse_getitem_indexes

if TYPE_CHECKING:
    from ._fetch import Package

__all__ = ["Snapshot", "SnapshotArray"]


class Snapshot:
    """One version of a store, read-only.  See the module documentation."""

    def __init__(self, path: str | os.PathLike[str], core: _core.Snapshot) -> None:
        self._path = Path(path)
        self._core = core
        self._package: Package | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], version: int | None = None) -> Snapshot:
        """Pin ``version`` (the current one when ``None``) of the store at ``path``."""
        store = _core.Store(str(path))
        return cls(path, store.snapshot(version))

    @classmethod
    def fetch(cls, package: Package) -> Snapshot:
        """The one version of a packed store at a URL, fetched into this machine's cache
        (see ``numpack._fetch``) if it is not there yet."""
        snap = cls.open(package.local())
        snap._package = package
        return snap

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._package is not None:
            return (Snapshot.fetch, (self._package,))
        return (_reopen, (str(self._path), self.version))

    @property
    def version(self) -> int:
        """The version this snapshot reads."""
        return self._core.version

    @property
    def path(self) -> Path:
        """The store directory."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once released."""
        return self._core.closed

    def close(self) -> None:
        """Release the version (history may then collect it).  Idempotent."""
        self._core.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"version={self.version}"
        return f"Snapshot({self._path}, {state})"

    def load(self, array_name: str, lazy: bool = False) -> npt.NDArray[Any] | SnapshotArray:
        """The array at this version (a new ndarray, or a ``SnapshotArray`` when ``lazy``)."""
        check_name(array_name)
        if lazy:
            return SnapshotArray(self, array_name)
        return self._core.load(array_name)

    def __getitem__(self, array_name: str) -> npt.NDArray[Any]:
        return self._core.load(check_name(array_name))

    def getitem(self, array_name: str, indexes: Any) -> npt.NDArray[Any]:
        """Selected logical rows at this version (as ``NumPack.getitem``)."""
        check_name(array_name)
        return self._core.getitem(array_name, parse_getitem_indexes(indexes))

    def stream_load(
        self, array_name: str, buffer_size: int | None = None
    ) -> Iterator[npt.NDArray[Any]]:
        """Batches of at most ``buffer_size`` logical rows at this version (new arrays)."""
        check_name(array_name)
        size = check_buffer_size(buffer_size)
        shape = self.get_shape(array_name)
        if not shape:
            raise TypeError(f"Cannot stream array '{array_name}': it is 0-d")
        return self._batches(array_name, shape[0], size)

    def _batches(self, name: str, rows: int, size: int) -> Iterator[npt.NDArray[Any]]:
        for start in range(0, rows, size):
            yield self._core.read_range(name, start, min(start + size, rows))

    def get_shape(self, array_name: str) -> tuple[int, ...]:
        """Logical shape at this version."""
        return tuple(self._core.shape(check_name(array_name)))

    def get_member_list(self) -> list[str]:
        """Sorted array names at this version."""
        return list(self._core.names())

    def has_array(self, array_name: str) -> bool:
        """Whether the array existed at this version."""
        return bool(self._core.has(check_name(array_name)))

    def __contains__(self, array_name: object) -> bool:
        return isinstance(array_name, str) and self._core.has(array_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.get_member_list())

    def __len__(self) -> int:
        return len(self._core.names())


def _reopen(path: str, version: int) -> Snapshot:
    return Snapshot.open(path, version)


class SnapshotArray:
    """An array of a snapshot, read on demand: ``len``, ``shape``, ``dtype``, row indexing
    (``a[i]``, ``a[i:j]``, ``a[[i, j]]``, ``a[mask]``) and ``np.asarray(a)``; every read
    copies rows of the snapshot's version."""

    def __init__(self, snapshot: Snapshot, name: str) -> None:
        self._snap = snapshot
        self._name = name
        self.shape: tuple[int, ...] = snapshot.get_shape(name)
        self.dtype: np.dtype[Any] = snapshot._core.dtype(name)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            head, rest = (key[0], key[1:]) if key else (slice(None), ())
            return (
                self[head][(slice(None), *rest)] if not isinstance(head, int) else self[head][rest]
            )
        if isinstance(key, (int, np.integer)):
            return self._snap.getitem(self._name, int(key))[0]
        return self._snap.getitem(self._name, key)

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        a = self._snap.load(self._name)
        assert isinstance(a, np.ndarray)
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"SnapshotArray({self._name!r}, shape={self.shape}, version={self._snap.version})"
