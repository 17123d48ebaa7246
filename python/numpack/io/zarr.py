"""Zarr groups and arrays (``zarr`` 3; reads format v2 and v3), in slabs aligned to the
chunks (or shards)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._attrs import importable_attrs
from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output, chunk_rows, is_storable, naming, prefetched
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_zarr", "to_zarr"]

#: Target bytes of one Zarr chunk written by :func:`to_zarr`.
ZARR_CHUNK_BYTES = 4 << 20


def _dtype(arr: Any) -> np.dtype[Any] | None:
    try:
        return np.dtype(arr.dtype)
    except TypeError:
        return None


def _arrays(zarr: Any, path: Path, names: Any, group: str) -> list[tuple[str, Any]]:
    root = zarr.open(store=str(path), mode="r")
    if isinstance(root, zarr.Array):
        return [(path.stem, root)]
    g = root if group in ("/", "") else root.get(group.strip("/"))
    if not isinstance(g, zarr.Group):
        raise KeyError(f"group '{group}' not found")
    if names is None:
        return [(k, g[k]) for k in sorted(g.array_keys())]
    out = []
    for n in [names] if isinstance(names, str) else list(names):
        obj = g.get(n)
        if not isinstance(obj, zarr.Array):
            raise KeyError(f"array '{n}' not found in group '{group}'")
        out.append((n, obj))
    return out


def _nbytes(arr: Any) -> int:
    return np.dtype(arr.dtype).itemsize * int(np.prod(arr.shape, dtype=np.int64))


def _import_array(imp: Import, name: str, arr: Any, chunk_size: int, bar: Progress) -> None:
    _import_rows(imp, name, arr, chunk_size, bar)
    attrs = importable_attrs(dict(arr.attrs), f"zarr array '{name}'")
    if attrs:
        imp.sink(name).set_attrs(attrs)


def _import_rows(imp: Import, name: str, arr: Any, chunk_size: int, bar: Progress) -> None:
    shape = tuple(int(d) for d in arr.shape)
    dtype = np.dtype(arr.dtype)
    if not shape:
        imp.save(name, np.asarray(arr[()], dtype=dtype), bar=bar)
        return
    sink = imp.array(name, dtype, shape[1:])
    if 0 in shape:
        sink.write(np.empty(shape, dtype))
        return
    # zarr holds about four times a selection while decoding it (the chunks in flight, the
    # output), and the next slab is decoded while one is written: slabs of an eighth chunk.
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    step = chunk_rows(row, max(1, chunk_size // 8))
    grid = getattr(arr, "shards", None) or arr.chunks
    c = int(grid[0]) if grid else 1
    if step >= c:
        step = step // c * c
    slabs = (np.asarray(arr[a : a + step]) for a in range(0, shape[0], step))
    for part in prefetched(slabs):  # decode the next slab while this one is written
        sink.write(part)
        bar.update(part.nbytes)
        del part


@remote_path("input_path", "in")
def from_zarr(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    group: str = "/",
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
) -> NumPack | None:
    """Import the arrays of a Zarr group (format v2 or v3), in slabs aligned to the chunks.

    Parameters
    ----------
    input_path : str or os.PathLike
        The Zarr group (or single array) directory, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory.
    array_names : str or list of str, optional
        Arrays of ``group`` to import (default: all arrays directly in it). A path that
        holds a single array imports it under the directory's stem.
    group : str, default "/"
        The group to read.
    drop_if_exists, chunk_size, return_npk_obj, progress
        As for :func:`numpack.io.from_npy`.

    Raises
    ------
    KeyError
        If the group or a named array does not exist.
    ValueError
        If an array holds a dtype numpack cannot store (strings, structured, ...): such
        arrays are listed by name and nothing is imported.
    """
    zarr = require("zarr")
    path = Path(os.fspath(input_path))
    if not path.exists():
        raise FileNotFoundError(f"File not found: {input_path}")
    # The bar counts the arrays' decoded bytes.
    with Progress(progress, None, path.name) as bar, naming(path):
        items = _arrays(zarr, path, array_names, group)
        bad = [f"'{n}' ({a.dtype})" for n, a in items
               if (dt := _dtype(a)) is None or not is_storable(dt)]  # fmt: skip
        if bad:
            raise ValueError(
                f"array(s) {', '.join(bad)} hold dtypes numpack cannot store; nothing was imported"
            )
        bar.set_total(sum(_nbytes(a) for _n, a in items))
        with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
            for name, arr in items:
                with naming(path, name):
                    _import_array(imp, name, arr, int(chunk_size), bar)
    return imp.result


def _compressors(zarr: Any, compressor: Any) -> Any:
    if isinstance(compressor, str) and compressor == "default":
        return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    return compressor


def _zarr_chunks(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, ...]:
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, min(shape[0], ZARR_CHUNK_BYTES // max(1, row)))
    return (rows, *(max(1, d) for d in shape[1:]))


@remote_path("output_path", "out")
def to_zarr(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    group: str = "/",
    compressor: Any = "default",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
) -> None:
    """Export arrays into a new Zarr v3 group (about 4 MiB chunks, written in slabs).

    Parameters
    ----------
    input_path : str, os.PathLike or Snapshot
        The store directory, or a ``Snapshot`` of one (its version is exported).
    output_path : str or os.PathLike
        The Zarr directory (replaced atomically), or an fsspec URL.
    array_names : str or list of str, optional
        Arrays to export (default: all).
    group : str, default "/"
        Sub-group of the arrays (created).
    compressor : default "default"
        ``"default"``: Blosc zstd level 3 with bit shuffle; ``None``: uncompressed; any
        other value is passed to ``create_array(compressors=...)``.
    chunk_size, progress
        As for :func:`numpack.io.to_npy`.
    """
    zarr = require("zarr")
    codecs = _compressors(zarr, compressor)
    out = Path(os.fspath(output_path))
    with Source(input_path) as src:
        names = src.names(array_names)
        src.refuse_ml_dtypes(names, "Zarr")
        total = sum(src.nbytes(n) for n in names)
        with Progress(progress, total, out.name) as bar, atomic_output(out) as tmp:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
            g = root if group in ("/", "") else root.require_group(group.strip("/"))
            for name in names:
                dtype, shape = src.describe(name)
                chunks = _zarr_chunks(shape, dtype) if shape else ()
                arr = g.create_array(name, shape=shape, dtype=dtype, chunks=chunks,
                                     compressors=codecs, overwrite=True)  # fmt: skip
                attrs = src.attrs(name)
                if attrs:
                    arr.attrs.update(attrs)
                if not shape:
                    arr[()] = src.load(name)
                    bar.update(src.nbytes(name))
                    continue
                start = 0
                for chunk in src.chunks(name, max(1, int(chunk_size) // 4), chunks[0]):
                    arr[start : start + len(chunk)] = chunk
                    start += len(chunk)
                    bar.update(chunk.nbytes)
