"""HDF5 files (``h5py``), read and written in slabs of rows aligned to the dataset chunks."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._attrs import ATTRS_KEY, attrs_from_json, attrs_json, importable_attrs
from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output, chunk_rows, is_storable, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike, copy_payload
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_hdf5", "to_hdf5"]

#: Target bytes of one HDF5 chunk written by :func:`to_hdf5`.
H5_CHUNK_BYTES = 1 << 20


def _slab_rows(ds: Any, chunk_size: int) -> int:
    """Rows per read: about ``chunk_size`` bytes, whole chunks along axis 0 when they fit."""
    row = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
    step = chunk_rows(row, chunk_size)
    if ds.chunks is not None:
        c = int(ds.chunks[0])
        if step >= c:
            step = step // c * c
    return step


def _datasets(h5py: Any, f: Any, path: Path, names: Any, group: str) -> list[tuple[str, Any]]:
    g = f if group in ("/", "") else f.get(group)
    if not isinstance(g, h5py.Group):
        raise KeyError(f"{path}: group '{group}' not found")
    if names is None:
        return [(k, v) for k, v in g.items() if isinstance(v, h5py.Dataset)]
    out = []
    for n in [names] if isinstance(names, str) else list(names):
        obj = g.get(n)
        if obj is None:
            raise KeyError(f"{path}: dataset '{n}' not found in group '{group}'")
        if not isinstance(obj, h5py.Dataset):
            warnings.warn(f"{path}: '{n}' is not a dataset; skipped", UserWarning, stacklevel=3)
            continue
        out.append((n, obj))
    return out


def _raw_extents(ds: Any) -> list[tuple[int, int]] | None:
    """``[(file offset, bytes)]`` of the rows of an unfiltered little-endian dataset stored
    contiguously or in chunks of whole rows, in row order; ``None`` when it is not so."""
    dt = ds.dtype
    if ds.compression is not None or ds.shuffle or ds.fletcher32 or ds.scaleoffset is not None:
        return None
    if dt.byteorder == ">" or (dt.byteorder == "=" and not np.little_endian) or ds.external:
        return None
    row = dt.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
    n = int(ds.shape[0])
    if ds.chunks is None:
        off = ds.id.get_offset()
        return None if off is None else [(int(off), n * row)]
    if tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return None
    c = int(ds.chunks[0])
    infos = sorted((ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())),
                   key=lambda x: x.chunk_offset[0])  # fmt: skip
    if len(infos) != -(-n // c) or any(x.filter_mask for x in infos):
        return None  # unallocated (fill-value) chunks or filtered ones: let HDF5 read them
    return [(int(x.byte_offset), min(c, n - x.chunk_offset[0]) * row) for x in infos]


def _copy_raw(sink: Any, ds: Any, chunk_size: int, bar: Progress) -> bool:
    """Kernel copies of the dataset's bytes when HDF5 stores them as plain rows."""
    if ds.dtype.kind not in "biufc" or ds.dtype.names is not None:
        return False
    extents = _raw_extents(ds)
    if extents is None:
        return False
    for off, length in extents:
        sink.copy_from_file(ds.file.filename, off, length, bar, chunk_size)
    return True


def _h5_attrs(ds: Any) -> dict[str, Any]:
    """A dataset's attributes as JSON values: the exact ones numpack wrote, else each
    attribute JSON can hold (strings, numbers, booleans, arrays of them as lists)."""
    saved = attrs_from_json(ds.attrs.get(ATTRS_KEY))
    if saved is not None:
        return importable_attrs(saved, f"HDF5 dataset {ds.name}")
    out: dict[str, Any] = {}
    for k, v in ds.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, (np.generic, np.ndarray)):
            if v.dtype.kind not in "biufU":
                continue
            v = v.tolist()
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return importable_attrs(out, f"HDF5 dataset {ds.name}")


def _put_h5_attrs(ds: Any, attrs: dict[str, Any]) -> None:
    """Writes attributes onto a dataset: strings, numbers and booleans as native HDF5
    attributes, other values as their JSON text, and all of them exactly under
    ``numpack.attrs``."""
    if not attrs:
        return
    for k, v in attrs.items():
        native = isinstance(v, (str, bool, float)) or (isinstance(v, int) and -(2**63) <= v < 2**63)
        try:
            ds.attrs[k] = v if native else json.dumps(v)
        except (ValueError, TypeError, RuntimeError, KeyError):
            pass  # a name or value HDF5 cannot hold (empty, NUL): kept in the JSON below
    ds.attrs[ATTRS_KEY] = attrs_json(attrs)


def _import_dataset(imp: Import, name: str, ds: Any, chunk_size: int, bar: Progress) -> None:
    _import_rows(imp, name, ds, chunk_size, bar)
    attrs = _h5_attrs(ds)
    if attrs:
        imp.sink(name).set_attrs(attrs)


def _import_rows(imp: Import, name: str, ds: Any, chunk_size: int, bar: Progress) -> None:
    shape = tuple(ds.shape)
    dtype = ds.dtype.newbyteorder("<")
    if not shape:
        imp.save(name, np.asarray(ds[()], dtype=dtype), bar=bar)
        return
    sink = imp.array(name, dtype, shape[1:])
    if ds.size == 0:
        sink.write(np.empty(shape, dtype))
        return
    if _copy_raw(sink, ds, chunk_size, bar):
        return
    step = _slab_rows(ds, chunk_size)
    buf = np.empty((min(step, shape[0]), *shape[1:]), dtype)
    for start in range(0, shape[0], step):
        out = buf[: min(step, shape[0] - start)]
        ds.read_direct(out, np.s_[start : start + len(out)])
        sink.write(out)
        bar.update(out.nbytes)


@remote_path("input_path", "in")
def from_hdf5(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    dataset_names: str | list[str] | None = None,
    group: str = "/",
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
) -> NumPack | None:
    """Import the datasets of an HDF5 group, each in slabs aligned to its chunks.

    Parameters
    ----------
    input_path : str or os.PathLike
        The HDF5 file, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory.
    dataset_names : str or list of str, optional
        Datasets of ``group`` to import (default: every dataset directly in it); named
        objects that are not datasets are skipped with a ``UserWarning``.
    group : str, default "/"
        The group to read.
    drop_if_exists, chunk_size, return_npk_obj, progress
        As for :func:`numpack.io.from_npy`.

    Raises
    ------
    KeyError
        If the group or a named dataset does not exist.
    ValueError
        If a dataset holds a dtype numpack cannot store (strings, compound, references):
        such datasets are listed by name and nothing is imported. The store is unchanged
        after any failure.
    """
    h5py = require("h5py")
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    cache = max(1 << 20, int(chunk_size))
    # The bar counts the datasets' bytes (as stored in the array, whatever the filters).
    with Progress(progress, None, path.name) as bar, naming(path):
        with h5py.File(path, "r", rdcc_nbytes=cache, rdcc_nslots=10007, rdcc_w0=1.0) as f:
            items = _datasets(h5py, f, path, dataset_names, group)
            bad = [f"'{n}' ({ds.dtype})" for n, ds in items
                   if ds.shape is None or not is_storable(ds.dtype)]  # fmt: skip
            if bad:
                raise ValueError(
                    f"dataset(s) {', '.join(bad)} hold dtypes numpack cannot store; "
                    "nothing was imported"
                )
            bar.set_total(sum(int(ds.size) * ds.dtype.itemsize for _n, ds in items))
            with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
                for name, ds in items:
                    with naming(path, ds.name):
                        _import_dataset(imp, name, ds, int(chunk_size), bar)
    return imp.result


def _contiguous(h5py: Any, g: Any, name: str, dtype: np.dtype[Any], shape: Any) -> int:
    """A contiguous dataset whose storage is allocated now and never filled; its offset."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    ds = g.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl)
    return int(ds.id.get_offset())


def _h5_chunks(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, ...]:
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, min(shape[0], H5_CHUNK_BYTES // max(1, row)))
    return (rows, *shape[1:])


@remote_path("output_path", "out")
def to_hdf5(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    group: str = "/",
    compression: str | None = "gzip",
    compression_opts: Any = 4,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
) -> None:
    """Export arrays as datasets of a new HDF5 file: compressed, in chunks of about 1 MiB
    written in slabs; uncompressed (``compression=None``), as contiguous datasets filled by
    kernel copies of the store's data files.

    Parameters
    ----------
    input_path : str, os.PathLike or Snapshot
        The store directory, or a ``Snapshot`` of one (its version is exported).
    output_path : str or os.PathLike
        The HDF5 file (replaced atomically), or an fsspec URL.
    array_names : str or list of str, optional
        Arrays to export (default: all).
    group : str, default "/"
        Group of the datasets (created).
    compression : str or None, default "gzip"
        HDF5 filter (``"gzip"``, ``"lzf"``, ...; ``None`` for none).
    compression_opts : optional
        Filter option (gzip level), used with ``"gzip"`` and ``"szip"``.
    chunk_size, progress
        As for :func:`numpack.io.to_npy`.
    """
    h5py = require("h5py")
    out = Path(os.fspath(output_path))
    with Source(input_path) as src:
        names = src.names(array_names)
        src.refuse_ml_dtypes(names, "HDF5")
        total = sum(src.nbytes(n) for n in names)
        with Progress(progress, total, out.name) as bar, atomic_output(out) as tmp:
            raw: list[tuple[int, Path, int]] = []
            with h5py.File(tmp, "w") as f:
                g = f if group in ("/", "") else f.require_group(group)
                for name in names:
                    dtype, shape = src.describe(name)
                    if not shape or 0 in shape:
                        g.create_dataset(name, data=src.load(name))
                        bar.update(src.nbytes(name))
                        continue
                    payload = None if compression else src.payload_file(name)
                    if payload is not None:
                        # Uncompressed: a contiguous dataset, filled below by a kernel copy.
                        offset = _contiguous(h5py, g, name, dtype, shape)
                        raw.append((offset, payload, src.nbytes(name)))
                        continue
                    kw: dict[str, Any] = {"chunks": _h5_chunks(shape, dtype)}
                    if compression:
                        kw["compression"] = compression
                        if compression in ("gzip", "szip"):
                            kw["compression_opts"] = compression_opts
                    ds = g.create_dataset(name, shape=shape, dtype=dtype, **kw)
                    start = 0
                    for chunk in src.chunks(name, int(chunk_size), kw["chunks"][0]):
                        ds.write_direct(chunk, dest_sel=np.s_[start : start + len(chunk)])
                        start += len(chunk)
                        bar.update(chunk.nbytes)
                for name in names:
                    _put_h5_attrs(g[name], src.attrs(name))
            with open(tmp, "r+b") as out_file:
                for offset, payload, nbytes in raw:
                    out_file.seek(offset)
                    copy_payload(payload, out_file, nbytes, bar)
