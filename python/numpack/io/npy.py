"""NumPy ``.npy`` and ``.npz`` files, streamed.

An ``.npy`` file in little-endian C order is imported by a kernel copy of its payload
(``copy_file_range``) after the header is parsed; big-endian or Fortran-order files are
memory-mapped and converted chunk by chunk. An ``.npz`` archive is imported member by member,
each decompressed as a stream. Exports write the header, then copy the store's data file in
the kernel (or stream the rows when rows were deleted); ``.npz`` members are compressed as
they stream into the archive.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..numpack import NumPack
from ._chunks import ArraySink, Import, atomic_output, chunk_rows, is_storable, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike, copy_payload
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_npy", "to_npy", "read_npy_header", "npy_header"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20


def read_npy_header(f: IO[bytes], where: str) -> tuple[np.dtype[Any], tuple[int, ...], bool]:
    """Parse an NPY header (versions 1.0, 2.0 and 3.0) from the start of ``f``.

    Returns ``(dtype, shape, fortran_order)``; ``f`` is left at the first payload byte.
    Raises ``ValueError`` naming ``where`` for anything that is not a valid header.
    """
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != _MAGIC:
        raise ValueError(f"{where}: not an NPY file (bad magic bytes)")
    major = magic[6]
    if major == 1:
        (n,) = struct.unpack("<H", f.read(2).ljust(2, b"\0"))
    elif major in (2, 3):
        (n,) = struct.unpack("<I", f.read(4).ljust(4, b"\0"))
    else:
        raise ValueError(f"{where}: unsupported NPY format version {major}.{magic[7]}")
    if n > _MAX_HEADER:
        raise ValueError(f"{where}: NPY header of {n} bytes is too large")
    raw = f.read(n)
    if len(raw) < n:
        raise ValueError(f"{where}: truncated NPY header")
    try:
        d = ast.literal_eval(raw.decode("utf8" if major == 3 else "latin1"))
        shape = tuple(int(x) for x in d["shape"])
        fortran = d["fortran_order"]
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except Exception as e:
        raise ValueError(f"{where}: malformed NPY header: {e}") from None
    if not isinstance(fortran, bool) or any(x < 0 for x in shape):
        raise ValueError(f"{where}: malformed NPY header")
    return dtype, shape, fortran


def npy_header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """The header of a C-order NPY file (version 1.0, or 2.0 when it must be), 64-aligned."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if not is_storable(dtype):
        raise ValueError(f"{where}: dtype {dtype} cannot be stored by numpack")


def _input(input_path: str | os.PathLike[str]) -> Path:
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"Unsupported file format: {path.suffix}. Use .npy or .npz files.")
    return path


def _row_bytes(dtype: np.dtype[Any], shape: tuple[int, ...]) -> int:
    return dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))


def _import_mapped(
    sink: ArraySink,
    path: Path,
    offset: int,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    fortran: bool,
    chunk_size: int,
    bar: Progress,
) -> None:
    """Rows of a memory-mapped payload converted chunk by chunk (big-endian, Fortran)."""
    mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                   order="F" if fortran else "C")  # fmt: skip
    step = chunk_rows(_row_bytes(dtype, shape), chunk_size)
    for start in range(0, shape[0], step):
        part = mm[start : start + step]
        sink.write(np.ascontiguousarray(part))
        bar.update(part.nbytes)
    del mm


def _import_npy(imp: Import, path: Path, name: str, chunk_size: int, bar: Progress) -> None:
    where = str(path)
    with open(path, "rb") as f:
        dtype, shape, fortran = read_npy_header(f, where)
        offset = f.tell()
    _check_dtype(dtype, where)
    nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    have = path.stat().st_size - offset
    if have < nbytes:
        raise ValueError(
            f"{where}: truncated NPY file: the header promises {nbytes} data bytes, "
            f"the file holds {have}"
        )
    bar.update(offset)  # the header
    if not shape:
        a = np.fromfile(path, dtype=dtype, count=1, offset=offset).reshape(())
        imp.save(name, a, bar=bar)
        return
    sink = imp.array(name, dtype, shape[1:])
    if nbytes == 0:
        sink.write(np.empty(shape, dtype))
    elif (dtype.byteorder == "<" or dtype.byteorder == "|" or dtype.isnative) and (
        not fortran or len(shape) <= 1
    ):
        sink.copy_from_file(path, offset, nbytes, bar, chunk_size)
    else:
        _import_mapped(sink, path, offset, dtype, shape, fortran, chunk_size, bar)


def _read_exact(f: IO[bytes], n: int, where: str) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise ValueError(f"{where}: truncated member ({len(buf)} of {n} bytes)")
    return buf


def _import_member(
    imp: Import,
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    key: str,
    head: tuple[np.dtype[Any], tuple[int, ...], bool],
    chunk_size: int,
    bar: Progress,
    tmp_dir: Path,
) -> None:
    where = f"{zf.filename} [{key}]"
    dtype, shape, fortran = head
    with zf.open(info) as f:
        read_npy_header(f, where)
        bar.update(f.tell())  # the header
        if not shape:
            buf = _read_exact(f, dtype.itemsize, where)
            imp.save(key, np.frombuffer(buf, dtype).reshape(()), bar=bar)
            f.read()  # let zipfile check the CRC
            return
        sink = imp.array(key, dtype, shape[1:])
        row = _row_bytes(dtype, shape)
        if row == 0:
            sink.write(np.empty(shape, dtype))
        elif fortran and len(shape) > 1:
            # Rows of a Fortran-order payload are scattered: spill it to disk, then map it.
            with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".npy") as t:
                shutil.copyfileobj(f, t, 1 << 20)
                t.flush()
                total = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
                if os.fstat(t.fileno()).st_size < total:
                    raise ValueError(f"{where}: truncated member")
                _import_mapped(sink, Path(t.name), 0, dtype, shape, True, chunk_size, bar)
        else:
            step = chunk_rows(row, chunk_size)
            for start in range(0, shape[0], step):
                n = min(step, shape[0] - start)
                buf = _read_exact(f, n * row, where)
                sink.write(np.frombuffer(buf, dtype).reshape((n, *shape[1:])))
                bar.update(len(buf))
        f.read()  # let zipfile check the CRC of the whole member


def _import_npz(imp: Import, path: Path, chunk_size: int, bar: Progress) -> None:
    with zipfile.ZipFile(path) as zf:
        heads = []
        for info in zf.infolist():
            if info.is_dir():
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with naming(path, key), zf.open(info) as f:
                heads.append((info, key, read_npy_header(f, f"{path} [{key}]")))
        bad = [f"'{k}' ({h[0]})" for _i, k, h in heads if not is_storable(h[0])]
        if bad:
            raise ValueError(
                f"{path}: member(s) {', '.join(bad)} hold dtypes numpack cannot store; "
                "nothing was imported"
            )
        # The bar counts the members' bytes as they are decompressed.
        bar.set_total(sum(info.file_size for info, _k, _h in heads))
        tmp_dir = imp.path.parent if imp.path.parent.is_dir() else Path(tempfile.gettempdir())
        for info, key, head in heads:
            with naming(path, key):
                _import_member(imp, zf, info, key, head, chunk_size, bar, tmp_dir)


@remote_path("input_path", "in")
def from_npy(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
) -> NumPack | None:
    """Import a ``.npy`` file (one array) or an ``.npz`` archive (every member) into a store.

    Parameters
    ----------
    input_path : str or os.PathLike
        The ``.npy`` / ``.npz`` file, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory (created if needed).
    array_name : str, optional
        Name of the array of a ``.npy`` file (default: the file stem); ignored for ``.npz``,
        whose members keep their keys.
    drop_if_exists : bool, default False
        Replace the whole store (in the same commit as the import).
    chunk_size : int, optional
        Bytes per streamed chunk.
    return_npk_obj : bool, default False
        Return a new, open :class:`~numpack.NumPack` on the store (the caller closes it).
    progress : bool, default False
        Show a progress bar (bytes) when ``tqdm`` is installed.

    Returns
    -------
    NumPack or None

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For another suffix, a malformed or truncated file, or a dtype numpack cannot store
        (an ``.npz`` with any such member imports nothing). The store is then unchanged.
    """
    path = _input(input_path)
    with Progress(progress, path.stat().st_size, path.name) as bar:
        with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
            if path.suffix.lower() == ".npy":
                _import_npy(imp, path, array_name or path.stem, int(chunk_size), bar)
            else:
                _import_npz(imp, path, int(chunk_size), bar)
    return imp.result


def _write_npy(src: Source, name: str, f: IO[bytes], chunk_size: int, bar: Progress) -> None:
    dtype, shape = src.describe(name)
    f.write(npy_header(dtype, shape))
    nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    payload = src.payload_file(name) if nbytes else None
    if payload is not None and isinstance(f, io.BufferedWriter):
        copy_payload(payload, f, nbytes, bar)
        return
    for chunk in src.chunks(name, chunk_size):
        f.write(np.ascontiguousarray(chunk).data)
        bar.update(chunk.nbytes)


@remote_path("output_path", "out")
def to_npy(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    compressed: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
) -> None:
    """Export arrays of a store to a ``.npy`` file (exactly one array) or an ``.npz`` archive.

    Parameters
    ----------
    input_path : str, os.PathLike or Snapshot
        The store directory, or a ``Snapshot`` of one (its version is exported).
    output_path : str or os.PathLike
        The ``.npy`` / ``.npz`` file to write (replaced atomically), or an fsspec URL.
    array_names : str or list of str, optional
        Arrays to export (default: all).
    compressed : bool, default True
        Deflate the members of an ``.npz`` archive.
    chunk_size : int, optional
        Bytes per streamed chunk.
    progress : bool, default False
        Show a progress bar (bytes) when ``tqdm`` is installed.

    Raises
    ------
    ValueError
        For another suffix, or for ``.npy`` with other than one array.
    ArrayNotFoundError
        If a named array does not exist.
    """
    out = Path(os.fspath(output_path))
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"Unsupported file format: {out.suffix}. Use .npy or .npz files.")
    with Source(input_path) as src:
        names = src.names(array_names)
        src.refuse_ml_dtypes(names, "NPY")
        if suffix == ".npy" and len(names) != 1:
            raise ValueError(
                f"The .npy format can only store one array, but {len(names)} arrays were "
                "provided. Use the .npz format to store several arrays."
            )
        total = sum(src.nbytes(n) for n in names)
        with Progress(progress, total, out.name) as bar, atomic_output(out) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as f:
                    _write_npy(src, names[0], f, int(chunk_size), bar)
                return
            mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
            with zipfile.ZipFile(tmp, "w", compression=mode, allowZip64=True) as zf:
                for name in names:
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as m:
                        _write_npy(src, name, m, int(chunk_size), bar)
