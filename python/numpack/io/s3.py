"""S3 objects (``s3fs``): thin wrappers over the file converters and fsspec URLs.

An object is downloaded (streamed) under its own file name, so the array is named after the
object key's stem, then imported by the converter of its format; an export is written to a
temporary file and uploaded part by part (multipart).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any

from .._deps import require
from ..numpack import NumPack
from ._remote import local_input, local_output
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_s3", "to_s3", "FORMATS"]

#: Object suffix -> format name (``format="auto"``); any other suffix means ``"numpy"``.
FORMATS = {
    ".npy": "numpy", ".npz": "numpy", ".csv": "csv", ".txt": "txt", ".parquet": "parquet",
    ".feather": "feather", ".arrow": "feather", ".h5": "hdf5", ".hdf5": "hdf5",
    ".zarr": "zarr", ".safetensors": "safetensors", ".pt": "pt", ".pth": "pt",
}  # fmt: skip


def _format(url: str, fmt: str) -> str:
    if fmt == "auto":
        suffix = posixpath.splitext(url.rstrip("/"))[1].lower()
        return FORMATS.get(suffix, "numpy")
    if fmt not in set(FORMATS.values()):
        raise ValueError(f"Unsupported format: {fmt}. Use one of {sorted(set(FORMATS.values()))}")
    return fmt


def _url(s3_path: str) -> str:
    s = os.fspath(s3_path)
    return s if s.startswith("s3://") else f"s3://{s.lstrip('/')}"


def from_s3(
    s3_path: str,
    output_path: str | os.PathLike[str],
    format: str = "auto",
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
    **s3_kwargs: Any,
) -> NumPack | None:
    """Import an S3 object (or a Zarr prefix) in any supported format.

    Parameters
    ----------
    s3_path : str
        ``s3://bucket/key`` or ``bucket/key``.
    output_path : str or os.PathLike
        The store directory.
    format : str, default "auto"
        ``"auto"`` (by suffix), ``"numpy"``, ``"csv"``, ``"txt"``, ``"parquet"``,
        ``"feather"``, ``"hdf5"``, ``"zarr"``, ``"safetensors"`` or ``"pt"``.
    drop_if_exists, chunk_size, return_npk_obj, progress
        As for :func:`numpack.io.from_npy`.
    **s3_kwargs
        Passed to ``s3fs.S3FileSystem`` (``key``, ``secret``, ``client_kwargs``, ...).
    """
    s3fs = require("s3fs")
    from . import csv, feather, hdf5, npy, parquet, safetensors, torch, zarr

    url = _url(s3_path)
    importers: dict[str, Callable[..., Any]] = {
        "numpy": npy.from_npy, "csv": csv.from_csv, "txt": csv.from_txt,
        "parquet": parquet.from_parquet, "feather": feather.from_feather,
        "hdf5": hdf5.from_hdf5, "zarr": zarr.from_zarr,
        "safetensors": safetensors.from_safetensors_file, "pt": torch.from_pt,
    }  # fmt: skip
    fn = importers[_format(url, format)]
    fs = s3fs.S3FileSystem(**s3_kwargs)
    with local_input(url, fs, progress) as local:
        kw: dict[str, Any] = {"progress": True} if progress else {}
        return fn(local, output_path, drop_if_exists=drop_if_exists, chunk_size=chunk_size,
                  return_npk_obj=return_npk_obj, **kw)  # fmt: skip


def to_s3(
    input_path: str | os.PathLike[str],
    s3_path: str,
    format: str = "auto",
    array_name: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
    **s3_kwargs: Any,
) -> None:
    """Export from a store to an S3 object (a prefix for Zarr), uploaded part by part.

    Parameters
    ----------
    input_path : str or os.PathLike
        The store directory.
    s3_path : str
        ``s3://bucket/key`` or ``bucket/key``; its suffix selects the format with
        ``format="auto"``.
    format : str, default "auto"
        As for :func:`from_s3`.
    array_name : str, optional
        The array to export (formats of several arrays: only this one); default: the only
        array, or all arrays for NPZ, HDF5, Zarr, SafeTensors and ``.pt``.
    chunk_size, progress
        As for :func:`numpack.io.to_npy`.
    **s3_kwargs
        Passed to ``s3fs.S3FileSystem``.
    """
    s3fs = require("s3fs")
    from . import csv, feather, hdf5, npy, parquet, safetensors, torch, zarr

    url = _url(s3_path)
    fmt = _format(url, format)
    names = None if array_name is None else [array_name]
    fs = s3fs.S3FileSystem(**s3_kwargs)
    with local_output(url, fs, progress) as local:
        kw: dict[str, Any] = {"chunk_size": chunk_size, **({"progress": True} if progress else {})}
        if fmt == "numpy":
            npy.to_npy(input_path, local, array_names=names, **kw)
        elif fmt in ("csv", "txt"):
            (csv.to_csv if fmt == "csv" else csv.to_txt)(input_path, local, array_name, **kw)
        elif fmt in ("parquet", "feather"):
            single: Callable[..., Any] = (
                parquet.to_parquet if fmt == "parquet" else feather.to_feather
            )
            single(input_path, local, array_name, **kw)
        else:
            many: dict[str, Callable[..., Any]] = {
                "hdf5": hdf5.to_hdf5, "zarr": zarr.to_zarr, "pt": torch.to_pt,
                "safetensors": safetensors.to_safetensors_file,
            }  # fmt: skip
            many[fmt](input_path, local, array_names=names, **kw)
