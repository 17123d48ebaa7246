"""SafeTensors files, read and written by byte ranges.

The format is an 8-byte little-endian header length, a JSON header (``{name: {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``) and the little-endian
C-order payloads. numpack parses and writes it itself, so imports are kernel copies of each
tensor's byte range and exports kernel copies of the store's data files: no tensor is ever
held in memory, and the ``safetensors`` package is not needed (files are checked against it
in the tests).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._attrs import ATTRS_KEY, attrs_from_json, attrs_json, importable_attrs
from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike, copy_payload
from .utils import DEFAULT_CHUNK_SIZE

__all__ = [
    "from_safetensors_file",
    "to_safetensors_file",
    "from_tensor_dict",
    "to_tensor_dict",
    "get_safetensors_metadata",
    "iter_safetensors",
]

#: SafeTensors dtype codes numpack can store, and their NumPy dtypes.
CODES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "<u2", "I16": "<i2", "U32": "<u4",
    "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8",
    "C64": "<c8",
}  # fmt: skip
_NAMES = {np.dtype(v): k for k, v in CODES.items()}
#: SafeTensors codes of the ``ml_dtypes`` types numpack stores (that package is needed to
#: hold them in NumPy: the ``ml`` extra).
ML_CODES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_ML_NAMES = {v: k for k, v in ML_CODES.items()}


def _dtype_of(code: str) -> np.dtype[Any] | None:
    if code in CODES:
        return np.dtype(CODES[code])
    if code in ML_CODES:
        return np.dtype(getattr(require("ml_dtypes"), ML_CODES[code]))
    return None


def _code_of(dtype: np.dtype[Any]) -> str | None:
    return _NAMES.get(dtype) or _ML_NAMES.get(dtype.name)


_MAX_HEADER = 100 << 20


class _Entry:
    def __init__(self, name: str, raw: Any, start: int, size: int, where: str) -> None:
        try:
            self.code = str(raw["dtype"])
            self.shape = tuple(int(d) for d in raw["shape"])
            begin, end = (int(x) for x in raw["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: malformed header entry '{name}'") from None
        self.name = name
        self.dtype = _dtype_of(self.code)
        self.offset = start + begin
        self.length = end - begin
        if begin < 0 or end < begin or start + end > size or any(d < 0 for d in self.shape):
            raise ValueError(f"{where}: tensor '{name}' lies outside the file (truncated?)")
        if self.dtype is not None:
            need = self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64))
            if need != self.length:
                raise ValueError(
                    f"{where}: tensor '{name}' has {self.length} bytes, its shape needs {need}"
                )


def _read_header(path: Path) -> tuple[list[_Entry], dict[str, str]]:
    where = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{where}: not a SafeTensors file (too short)")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise ValueError(f"{where}: not a SafeTensors file (header length {n})")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise ValueError(f"{where}: malformed SafeTensors header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: malformed SafeTensors header")
    meta = header.pop("__metadata__", None) or {}
    entries = [_Entry(k, v, 8 + n, size, where) for k, v in header.items()]
    return entries, dict(meta)


def _check_path(input_path: str | os.PathLike[str]) -> Path:
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    return path


def _select(entries: list[_Entry], keys: Any) -> list[_Entry]:
    if keys is None:
        return sorted(entries, key=lambda e: e.name)  # safe_open's key order
    wanted = [keys] if isinstance(keys, str) else list(keys)
    by_name = {e.name: e for e in entries}
    missing = {k for k in wanted if k not in by_name}
    if missing:
        raise KeyError(f"Keys not found: {missing}. Available: {sorted(by_name)}")
    return [by_name[k] for k in wanted]


@remote_path("input_path", "in")
def from_safetensors_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    keys: str | list[str] | None = None,
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
) -> NumPack | None:
    """Import the tensors of a SafeTensors file (or only ``keys``), each by a kernel copy
    of its byte range.

    Raises
    ------
    KeyError
        ``"Keys not found: {...}. Available: [...]"`` for unknown keys.
    ValueError
        For a malformed or truncated file, or tensors of a dtype numpack cannot store
        (``F8_E8M0``, ``F4``, ...): these are named and nothing is imported. ``BF16``,
        ``F8_E4M3`` and ``F8_E5M2`` are stored as ``ml_dtypes`` arrays (the ``ml`` extra).
    """
    path = _check_path(input_path)
    all_entries, meta = _read_header(path)
    entries = _select(all_entries, keys)
    bad = [f"'{e.name}' ({e.code})" for e in entries if e.dtype is None]
    if bad:
        raise ValueError(
            f"{path}: tensor(s) {', '.join(bad)} hold dtypes numpack cannot store; "
            "nothing was imported"
        )
    with (
        Progress(progress, sum(e.length for e in entries), path.name) as bar,
        Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp,
    ):
        for e in entries:
            assert e.dtype is not None
            attrs = attrs_from_json(meta.get(f"{ATTRS_KEY}.{e.name}"))
            attrs = None if attrs is None else importable_attrs(attrs, f"{path}: '{e.name}'")
            if not e.shape:
                a = np.fromfile(path, e.dtype, 1, offset=e.offset).reshape(())
                imp.save(e.name, a, bar=bar)
                if attrs is not None:
                    imp.sink(e.name).set_attrs(attrs)
                continue
            sink = imp.array(e.name, e.dtype, e.shape[1:])
            if attrs is not None:
                sink.set_attrs(attrs)
            if e.length == 0:
                sink.write(np.empty(e.shape, e.dtype))
                continue
            sink.copy_from_file(path, e.offset, e.length, bar, int(chunk_size))
    return imp.result


@remote_path("output_path", "out")
def to_safetensors_file(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    metadata: dict[str, str] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> None:
    """Export arrays as a SafeTensors file (tensors ordered by alignment, then name, as the
    ``safetensors`` writer does), copying each payload from the store's data file.

    Raises
    ------
    ValueError
        For ``complex128`` (no SafeTensors code), or ``metadata`` that is not str to str.
    """
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("metadata must be a dict of str to str")
    with Source(input_path) as src:
        names = src.names(array_names)
        info = {n: src.describe(n) for n in names}
        bad = [f"'{n}' ({d})" for n, (d, _s) in info.items() if _code_of(d) is None]
        if bad:
            raise ValueError(f"SafeTensors cannot hold array(s) {', '.join(bad)}")
        order = sorted(names, key=lambda n: (-info[n][0].itemsize, n))
        carried = {f"{ATTRS_KEY}.{n}": attrs_json(a) for n in names if (a := src.attrs(n))}
        meta = {**carried, **(metadata or {})}
        header: dict[str, Any] = {"__metadata__": meta} if meta else {}
        pos = 0
        for n in order:
            dtype, shape = info[n]
            size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            header[n] = {
                "dtype": _code_of(dtype),
                "shape": list(shape),
                "data_offsets": [pos, pos + size],
            }
            pos += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        out = Path(os.fspath(output_path))
        with (
            Progress(progress, pos, out.name) as bar,
            atomic_output(out) as tmp,
            open(tmp, "wb") as f,
        ):
            f.write(struct.pack("<Q", len(raw)) + raw)
            for n in order:
                nbytes = src.nbytes(n)
                payload = src.payload_file(n) if nbytes else None
                if payload is not None:
                    copy_payload(payload, f, nbytes, bar)
                    continue
                for chunk in src.chunks(n, int(chunk_size)):
                    f.write(np.ascontiguousarray(chunk).data)
                    bar.update(chunk.nbytes)


def from_tensor_dict(
    tensors: dict[str, Any],
    output_path: str | os.PathLike[str],
    drop_if_exists: bool = False,
    return_npk_obj: bool = False,
) -> NumPack | None:
    """Import a dict of ndarrays and/or torch tensors, all in one all-or-nothing commit."""
    if not isinstance(tensors, dict):
        raise TypeError(f"Expected a dict of tensors, got {type(tensors).__name__}")
    arrays = []
    for k, v in tensors.items():
        if isinstance(v, np.ndarray):
            arrays.append((k, v))
        elif type(v).__module__.startswith("torch") and hasattr(v, "detach"):
            from .torch import tensor_to_numpy

            arrays.append((k, tensor_to_numpy(v, f"tensor '{k}'")))
        else:
            raise TypeError(f"Unsupported tensor type: {type(v).__name__} (key '{k}')")
    with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
        for k, a in arrays:
            imp.save(k, a, chunk_size=DEFAULT_CHUNK_SIZE)
    return imp.result


def to_tensor_dict(
    input_path: SourceLike, array_names: str | list[str] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """Load arrays (default: all) as a dict of C-contiguous ndarrays."""
    with Source(input_path) as src:
        return {n: src.load(n) for n in src.names(array_names)}


def get_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{'tensors': {name: {'dtype', 'shape'}}, 'metadata': {...}}`` from the header alone
    (``dtype`` is the NumPy name, or the SafeTensors code for dtypes NumPy lacks)."""
    entries, meta = _read_header(_check_path(path))
    tensors = {e.name: {"dtype": e.dtype.name if e.dtype is not None else e.code,
                        "shape": e.shape}
               for e in sorted(entries, key=lambda e: e.name)}  # fmt: skip
    return {"tensors": tensors, "metadata": meta}


def iter_safetensors(
    path: str | os.PathLike[str], keys: str | list[str] | None = None
) -> Iterator[tuple[str, npt.NDArray[Any]]]:
    """Yield ``(name, ndarray)`` one tensor at a time (the header is read on the first
    ``next()``); a tensor of a dtype NumPy lacks raises ``ValueError`` when reached."""
    p = _check_path(path)
    for e in _select(_read_header(p)[0], keys):
        if e.dtype is None:
            raise ValueError(f"{p}: tensor '{e.name}' has dtype {e.code}, which numpack lacks")
        count = int(np.prod(e.shape, dtype=np.int64))
        a = np.fromfile(p, e.dtype, count, offset=e.offset) if count else np.empty(0, e.dtype)
        yield e.name, a.reshape(e.shape)
