"""PyTorch tensors and ``.pt`` files (``torch``).

``.pt`` files are opened with ``torch.load(mmap=True)``, so their tensors are views of the
mapped file and are copied into the store chunk by chunk; exports hand ``torch.save``
tensors that are views of the store's memory-mapped data files. Neither holds a whole
tensor in anonymous memory.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output, is_storable, naming
from ._progress import Progress, slices
from ._remote import remote_path
from ._source import Source, SourceLike
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_tensor", "to_tensor", "from_pt", "to_pt", "tensor_to_numpy"]


#: torch dtypes that NumPy holds only through ``ml_dtypes`` (the ``ml`` extra), by name.
_ML = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def _ml_torch(torch: Any, name: str) -> tuple[Any, Any, np.dtype[Any]]:
    """The torch dtype ``name``, the torch and NumPy integer dtypes of its bytes."""
    size = 2 if name == "bfloat16" else 1
    return (getattr(torch, name), torch.int16 if size == 2 else torch.uint8,
            np.dtype(np.int16 if size == 2 else np.uint8))  # fmt: skip


def numpy_to_tensor(torch: Any, a: npt.NDArray[Any]) -> Any:
    """``torch.from_numpy(a)``, also for the ``ml_dtypes`` types (their bytes, viewed)."""
    if a.dtype.name not in _ML:
        return torch.from_numpy(a)
    t_dtype, _t_int, np_int = _ml_torch(torch, a.dtype.name)
    return torch.from_numpy(a.view(np_int)).view(t_dtype)


def tensor_to_numpy(tensor: Any, where: str) -> npt.NDArray[Any]:
    """A NumPy view (a copy for GPU tensors) of ``tensor``: bfloat16 and float8 tensors as
    ``ml_dtypes`` arrays; ``ValueError`` naming ``where`` for a dtype numpack cannot store
    (quantized, float8 variants other than e4m3fn / e5m2, ...)."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_sparse:
        raise ValueError(f"{where}: sparse tensors cannot be stored; call .to_dense() first")
    if t.is_conj() or t.is_neg():
        t = t.resolve_conj().resolve_neg()
    name = str(t.dtype).removeprefix("torch.")
    try:
        if name in _ML:
            ml = require("ml_dtypes")
            _t, t_int, _np = _ml_torch(require("torch"), name)
            return t.contiguous().view(t_int).numpy().view(getattr(ml, name))
        a = t.numpy()
    except (TypeError, RuntimeError):
        raise ValueError(f"{where}: tensor dtype {t.dtype} cannot be stored by numpack") from None
    if not is_storable(a.dtype):
        raise ValueError(f"{where}: tensor dtype {t.dtype} cannot be stored by numpack")
    return a


def from_tensor(
    tensor: Any,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    return_npk_obj: bool = False,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> NumPack | None:
    """Import a tensor (detached; GPU tensors are copied to the CPU) as array ``array_name``
    (default ``"data"``), in chunks of rows.

    Raises
    ------
    TypeError
        If ``tensor`` is not a ``torch.Tensor``.
    ValueError
        If its dtype cannot be stored (e.g. ``bfloat16``).
    """
    torch = require("torch")
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"Expected torch.Tensor, got {type(tensor).__name__}")
    name = array_name or "data"
    a = tensor_to_numpy(tensor, f"tensor '{name}'")
    with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
        imp.save(name, a, chunk_size=int(chunk_size))
    return imp.result


def to_tensor(
    input_path: SourceLike,
    array_name: str | None = None,
    device: Any = None,
    dtype: Any = None,
) -> Any:
    """Load one array as a tensor (sharing the loaded array's memory), optionally cast to
    ``dtype`` and moved to ``device``."""
    torch = require("torch")
    with Source(input_path) as src:
        a = src.load(src.single(array_name))
    t = numpy_to_tensor(torch, a)
    if dtype is not None:
        t = t.to(dtype)
    if device is not None and str(device) != "cpu":
        t = t.to(device)
    return t


def _load(torch: Any, path: Path, weights_only: bool) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=weights_only)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
        # A legacy (non-zip) file cannot be mapped: it is read into memory.
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as e:
        if not weights_only:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise pickle.UnpicklingError(
            f"{path}: the file holds objects other than tensors and plain containers, which "
            "are not unpickled by default (that can run code); if you trust the file, pass "
            f"weights_only=False to numpack.io.from_pt. torch said: {first}"
        ) from e


@remote_path("input_path", "in")
def from_pt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    key: str | None = None,
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    weights_only: bool = True,
    progress: bool = False,
) -> NumPack | None:
    """Import a ``.pt`` / ``.pth`` file written by ``torch.save``.

    A dict imports every tensor value under its key (other values are skipped), or only
    ``key``; a bare tensor imports under the file stem. Tensors are memory-mapped
    (``torch.load(mmap=True)``) and copied chunk by chunk.

    Parameters
    ----------
    input_path : str or os.PathLike
        The file, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory.
    key : str, optional
        The one dict entry to import.
    drop_if_exists, chunk_size, return_npk_obj, progress
        As for :func:`numpack.io.from_npy`.
    weights_only : bool, default True
        Passed to ``torch.load``: ``True`` refuses pickled code (safe for untrusted
        files); ``False`` loads anything, as numpack 0.6 did.

    Raises
    ------
    KeyError
        If ``key`` is missing.
    TypeError
        If ``key`` is not a tensor, or the file holds neither a dict nor a tensor.
    ValueError
        If a tensor's dtype cannot be stored (all such keys are named; nothing imports).
    """
    torch = require("torch")
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    with naming(path):
        obj = _load(torch, path, weights_only)
        if isinstance(obj, torch.Tensor):
            items = [(path.stem, obj)]
        elif isinstance(obj, dict):
            if key is not None:
                if key not in obj:
                    raise KeyError(f"key '{key}' not found; available: {list(obj)}")
                if not isinstance(obj[key], torch.Tensor):
                    raise TypeError(f"'{key}' is not a tensor but {type(obj[key]).__name__}")
                items = [(key, obj[key])]
            else:
                items = [(str(k), v) for k, v in obj.items() if isinstance(v, torch.Tensor)]
        else:
            raise TypeError(f"Unsupported PyTorch data type: {type(obj).__name__}")
        arrays, bad = [], []
        for name, t in items:
            try:
                arrays.append((name, tensor_to_numpy(t, name)))
            except ValueError:
                bad.append(f"'{name}' ({t.dtype})")
        if bad:
            raise ValueError(
                f"tensor(s) {', '.join(bad)} hold dtypes numpack cannot store; nothing was imported"
            )
        total = sum(a.nbytes for _n, a in arrays)
        with (
            Progress(progress, total, path.name) as bar,
            Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp,
        ):
            for name, a in arrays:
                with naming(path, name):
                    imp.save(name, a, chunk_size=int(chunk_size), bar=bar)
    return imp.result


def _spills(src: Source, name: str) -> bool:
    """Whether the array must first be written out as its logical rows (deleted rows)."""
    return bool(src.describe(name)[1]) and bool(src.nbytes(name)) and src.payload_file(name) is None


def _mapped_tensor(
    torch: Any, src: Source, name: str, spill: Path, chunk_size: int, bar: Progress
) -> Any:
    """A tensor over a memory map of the array's logical rows: the store's data file, or
    (with deleted rows) a file of the logical rows written chunk by chunk, counted on
    ``bar``."""
    dtype, shape = src.describe(name)
    a: npt.NDArray[Any]
    if _spills(src, name):
        a = np.memmap(spill / f"{len(os.listdir(spill))}.bin", dtype=dtype, mode="w+",
                      shape=shape)  # fmt: skip
        start = 0
        for chunk in src.chunks(name, chunk_size):
            a[start : start + len(chunk)] = chunk
            start += len(chunk)
            bar.update(chunk.nbytes)
        a.flush()
    elif src.payload_file(name) is not None and src.nbytes(name):
        a, _active = src.store.view(name)
    else:
        a = src.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only maps: torch.save only reads
        return numpy_to_tensor(torch, a)


class _Counted:
    """A file for ``torch.save`` that writes each buffer in slices of at most
    :data:`~numpack.io._progress.SLICE_BYTES` (a tensor arrives as one buffer), counting
    each on ``bar``."""

    def __init__(self, f: IO[bytes], bar: Progress) -> None:
        self._f = f
        self._bar = bar

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start, n in slices(len(view)):
            self._f.write(view[start : start + n])
            self._bar.update(n)
        return len(view)

    def flush(self) -> None:
        self._f.flush()


@remote_path("output_path", "out")
def to_pt(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_names: str | list[str] | None = None,
    as_dict: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
) -> None:
    """Export arrays with ``torch.save``: a dict ``{name: tensor}``, or with
    ``as_dict=False`` and exactly one array, the bare tensor (several arrays are saved as
    the dict whatever ``as_dict`` says, as numpack 0.6 does).

    The tensors are views of the store's memory-mapped data files, so the export holds no
    array in anonymous memory.
    """
    torch = require("torch")
    out = Path(os.fspath(output_path))
    with Source(input_path) as src:
        names = src.names(array_names)
        # As 0.6: the bare tensor only for exactly one array, else the dict.
        bare = not as_dict and len(names) == 1
        # The bar counts the tensors' bytes as torch.save writes them (and the rows of
        # arrays with deleted rows as they are first written out).
        total = sum(src.nbytes(n) * (2 if _spills(src, n) else 1) for n in names)
        with Progress(progress, total, out.name) as bar, atomic_output(out) as tmp:
            with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".pt-spill-") as spill:
                tensors = {n: _mapped_tensor(torch, src, n, Path(spill), int(chunk_size), bar)
                           for n in names}  # fmt: skip
                with open(tmp, "wb") as f:
                    torch.save(tensors[names[0]] if bare else tensors, _Counted(f, bar))
                del tensors
