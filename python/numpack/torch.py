"""PyTorch datasets over a store, pinned to one version (extra ``numpack[torch]``).

``NumPackDataset`` is map-style: ``ds[i]`` is one logical row of each array, and a
``DataLoader`` with ``batch_size`` gathers a whole batch with one engine call per array
(``__getitems__``); pass ``collate_fn=numpack.torch.collate`` to turn that batch into tensors
without stacking rows one by one. ``NumPackIterableDataset`` streams chunks of rows, sharded
by DataLoader worker and by ``torch.distributed`` rank, with a seeded shuffle of the chunk
order and of rows within a buffer (``set_epoch`` changes the order each epoch).

Both read one version for their whole life: the one current when the dataset is made (or the
``version`` given). The process that makes a dataset pins that version until the dataset is
closed or collected, so history keeps it while workers read; each worker (forked or spawned)
opens the store again and pins the same version itself, so no handle, mapping or lock crosses
a fork. Pickling a dataset gives ``(path, arrays, version, options)``.

For DDP with the map-style dataset, use ``torch.utils.data.DistributedSampler(ds)``: it
only needs ``len(ds)``. When a process group is initialised and no ``version`` is given,
every rank reads rank 0's current version (broadcast at creation: a collective call, so
make the dataset on every rank).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from ._deps import require
from .snapshot import Snapshot

__all__ = ["Batch", "NumPackDataset", "NumPackIterableDataset", "collate"]

require("torch")  # a DependencyError naming the extra when torch is missing

import torch as _torch  # noqa: E402
from torch.utils import data as _data  # noqa: E402

Transform = Callable[[Any], Any]


def _names(arrays: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(arrays, str):
        return (arrays,), True
    names = tuple(arrays)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError("arrays must be an array name or a non-empty sequence of names")
    if len(set(names)) != len(names):
        raise ValueError(f"arrays names an array twice: {list(names)}")
    return names, False


def _rank0_version(path: str) -> int | None:
    """Under ``torch.distributed``, rank 0's current version, so that every rank reads the
    same one (a commit between the ranks' datasets would give them different versions)."""
    dist = _torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    box: list[int | None] = [None]
    if dist.get_rank() == 0:
        with Snapshot.open(path) as snap:
            box[0] = snap.version
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _Pinned:
    """The dataset's view of the store: a snapshot opened in the current process (reopened
    after a fork or in a spawned worker) and the row count the arrays share."""

    def __init__(
        self, path: str | os.PathLike[str], arrays: str | Sequence[str], version: int | None
    ):
        self.path = os.fspath(path)
        self.names, self.single = _names(arrays)
        if version is None:
            version = _rank0_version(self.path)
        self._snap: Snapshot | None = Snapshot.open(self.path, version)
        self._pid = os.getpid()
        self.version = self._snap.version
        rows = set()
        for n in self.names:
            shape = self._snap.get_shape(n)
            if not shape:
                raise ValueError(f"array '{n}' is 0-d: a dataset needs rows")
            rows.add(shape[0])
        if len(rows) != 1:
            counts = {n: self._snap.get_shape(n)[0] for n in self.names}
            raise ValueError(f"the arrays of a dataset must have the same number of rows: {counts}")
        self.rows = rows.pop()

    def snap(self) -> Snapshot:
        if self._snap is None or self._pid != os.getpid():
            # A forked child does not use the parent's handle (its lock descriptor and pin
            # belong to the parent): it pins the same version itself.
            self._snap = Snapshot.open(self.path, self.version)
            self._pid = os.getpid()
        return self._snap

    def close(self) -> None:
        if self._snap is not None and self._pid == os.getpid():
            self._snap.close()
        self._snap = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_snap"] = None
        return state

    def gather(self, rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], ...]:
        snap = self.snap()
        return tuple(snap.getitem(n, rows) for n in self.names)

    def span(self, start: int, stop: int) -> tuple[npt.NDArray[Any], ...]:
        snap = self.snap()
        return tuple(snap._core.read_range(n, start, stop) for n in self.names)


class Batch(Sequence[Any]):
    """What ``NumPackDataset.__getitems__`` returns: the batch as a sequence of samples (so
    any ``collate_fn`` works; rows are made on access), with the gathered arrays in
    ``columns``, which :func:`collate` turns into tensors without touching rows one by one.
    With a ``transform``, the samples are the rows of what it returned for the batch."""

    def __init__(self, columns: tuple[Any, ...], single: bool, transformed: Any = None) -> None:
        self.columns = columns
        self.single = single
        self.transformed = transformed
        if transformed is not None:
            out = transformed if isinstance(transformed, tuple) else (transformed,)
            self._rows, self._single = out, not isinstance(transformed, tuple)
        else:
            self._rows, self._single = columns, single
        self._n = len(columns[0])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"batch index {i} out of range for {self._n} rows")
        return self._rows[0][i] if self._single else tuple(c[i] for c in self._rows)


def _tensor(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        # bfloat16 / float8 arrays (ml_dtypes) become tensors of those dtypes.
        from .io.torch import numpy_to_tensor

        return numpy_to_tensor(_torch, np.ascontiguousarray(a))
    return a


def collate(batch: Any) -> Any:
    """Tensors of a :class:`Batch` (one per array, the batch's rows in order); any other
    batch goes to torch's ``default_collate``."""
    if isinstance(batch, Batch):
        if batch.transformed is not None:
            return batch.transformed
        cols = tuple(_tensor(c) for c in batch.columns)
        return cols[0] if batch.single else cols
    return _data.default_collate(batch)


class NumPackDataset(_data.Dataset[Any]):
    """Map-style dataset: ``ds[i]`` is logical row ``i`` of each array (a tuple, or one
    array when ``arrays`` is a name), read at one version.

    ``transform`` gets what a read returns (a sample for ``ds[i]``, the tuple of batch arrays
    for ``__getitems__``) and returns what the loader yields.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        arrays: str | Sequence[str] = ("x", "y"),
        version: int | None = None,
        transform: Transform | None = None,
    ) -> None:
        self._pinned = _Pinned(path, arrays, version)
        self.transform = transform

    @property
    def version(self) -> int:
        """The version the dataset reads."""
        return self._pinned.version

    @property
    def arrays(self) -> tuple[str, ...]:
        return self._pinned.names

    def __len__(self) -> int:
        return self._pinned.rows

    def _rows(self, index: Any) -> npt.NDArray[np.int64]:
        rows = np.asarray(index)
        if rows.dtype.kind not in "iu" or rows.ndim > 1:
            raise TypeError(f"dataset indices must be integers, got {type(index).__name__}")
        # Out-of-range rows are the engine's IndexOutOfRangeError (an IndexError).
        return rows.astype(np.int64, copy=False).reshape(-1)

    def __getitem__(self, index: Any) -> Any:
        scalar = isinstance(index, (int, np.integer))
        cols = self._pinned.gather(self._rows(index))
        if scalar:
            cols = tuple(c[0] for c in cols)
        out: Any = cols[0] if self._pinned.single else cols
        return self.transform(out) if self.transform is not None else out

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        cols = self._pinned.gather(self._rows(list(indices)))
        if self.transform is not None:
            out = cols[0] if self._pinned.single else cols
            return Batch(cols, self._pinned.single, self.transform(out))
        return Batch(cols, self._pinned.single)

    def close(self) -> None:
        """Release the pinned version (workers already running keep theirs)."""
        self._pinned.close()

    def __repr__(self) -> str:
        p = self._pinned
        names = list(p.names)
        return f"NumPackDataset({p.path!r}, arrays={names}, version={p.version}, rows={p.rows})"


def _shard() -> tuple[int, int]:
    """(this reader's number, readers) over DataLoader workers and distributed ranks."""
    info = _data.get_worker_info()
    wid, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    dist = _torch.distributed
    rank, world = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank * workers + wid, world * workers


class NumPackIterableDataset(_data.IterableDataset[Any]):
    """Streams the rows of one version in chunks of ``chunk_rows``.

    Chunks are dealt round-robin to the readers (DataLoader workers times distributed ranks),
    so every row is read exactly once per epoch by one of them. With ``shuffle``, the chunk
    order is a permutation seeded by ``seed + epoch`` (the same in every reader), and rows are
    shuffled within a buffer of ``shuffle_buffer`` rows. ``batch_size`` yields batches (use
    ``DataLoader(ds, batch_size=None)``); without it, single rows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        arrays: str | Sequence[str] = ("x", "y"),
        version: int | None = None,
        chunk_rows: int = 65536,
        batch_size: int | None = None,
        shuffle: bool = False,
        shuffle_buffer: int = 65536,
        seed: int = 0,
        transform: Transform | None = None,
    ) -> None:
        for name, v in (("chunk_rows", chunk_rows), ("shuffle_buffer", shuffle_buffer)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self._pinned = _Pinned(path, arrays, version)
        self.chunk_rows = chunk_rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = 0
        self.transform = transform

    @property
    def version(self) -> int:
        return self._pinned.version

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffle of the next pass (call it before each epoch, as with
        ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Rows of the version (over all readers)."""
        return self._pinned.rows

    def chunks(self, reader: int = 0, readers: int = 1) -> list[tuple[int, int]]:
        """The ``(start, stop)`` row ranges reader ``reader`` of ``readers`` reads this epoch."""
        n, size = self._pinned.rows, self.chunk_rows
        spans = [(s, min(s + size, n)) for s in range(0, n, size)]
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(spans))
            spans = [spans[i] for i in order]
        return spans[reader::readers]

    def __iter__(self) -> Iterator[Any]:
        reader, readers = _shard()
        rng = np.random.default_rng([self.seed, self.epoch, reader])
        for cols in self._buffers(self.chunks(reader, readers), rng):
            yield from self._emit(cols)

    def _buffers(
        self, spans: list[tuple[int, int]], rng: np.random.Generator
    ) -> Iterator[tuple[npt.NDArray[Any], ...]]:
        pending: list[tuple[npt.NDArray[Any], ...]] = []
        held = 0
        for start, stop in spans:
            pending.append(self._pinned.span(start, stop))
            held += stop - start
            if not self.shuffle or held >= self.shuffle_buffer:
                yield self._mix(pending, rng)
                pending, held = [], 0
        if pending:
            yield self._mix(pending, rng)

    def _mix(
        self, parts: list[tuple[npt.NDArray[Any], ...]], rng: np.random.Generator
    ) -> tuple[npt.NDArray[Any], ...]:
        cols = parts[0] if len(parts) == 1 else tuple(np.concatenate(c) for c in zip(*parts))
        if self.shuffle:
            order = rng.permutation(len(cols[0]))
            cols = tuple(c[order] for c in cols)
        return cols

    def _emit(self, cols: tuple[npt.NDArray[Any], ...]) -> Iterator[Any]:
        single = self._pinned.single
        n = len(cols[0])
        step = self.batch_size or 1
        for s in range(0, n, step):
            part = tuple(c[s : s + step] for c in cols)
            if self.batch_size is None:
                item: Any = part[0][0] if single else tuple(c[0] for c in part)
            else:
                t = tuple(_tensor(c) for c in part)
                item = t[0] if single else t
            yield self.transform(item) if self.transform is not None else item

    def close(self) -> None:
        self._pinned.close()

    def __repr__(self) -> str:
        p = self._pinned
        return (
            f"NumPackIterableDataset({p.path!r}, arrays={list(p.names)}, version={p.version}, "
            f"rows={p.rows}, chunk_rows={self.chunk_rows})"
        )
