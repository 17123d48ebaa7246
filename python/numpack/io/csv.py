"""CSV and text files (a simple NumPy-based version, streamed in blocks of lines).

Placeholder until the Rust-backed parser lands: reading goes through ``np.loadtxt`` one
block of about ``chunk_size`` bytes at a time, writing through the shortest ``repr`` of each
value (exact round trip) or a given ``fmt``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..numpack import NumPack
from ._chunks import Import, atomic_output, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_csv", "from_txt", "to_csv", "to_txt"]

_LOADTXT_KW = ("comments", "usecols", "encoding", "quotechar", "converters")


def _blocks(f: IO[str], chunk_size: int, max_rows: int | None) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) blocks of about ``chunk_size`` characters."""
    lines = f if max_rows is None else itertools.islice(f, max_rows)
    block: list[str] = []
    size, first, n = 0, 1, 0
    for n, line in enumerate(lines, 1):
        block.append(line)
        size += len(line)
        if size >= chunk_size:
            yield first, block
            block, size, first = [], 0, n + 1
    if block:
        yield first, block


def _import_text(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None,
    drop_if_exists: bool,
    dtype: Any,
    delimiter: str | None,
    skiprows: int,
    max_rows: int | None,
    chunk_size: int,
    return_npk_obj: bool,
    progress: bool,
    kwargs: dict[str, Any],
) -> NumPack | None:
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    kw = {k: v for k, v in kwargs.items() if k in _LOADTXT_KW}
    dt = np.dtype(dtype if dtype is not None else np.float64)
    encoding = kw.pop("encoding", None) or "utf-8"
    with (
        Progress(progress, path.stat().st_size, path.name) as bar,
        Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp,
        open(path, encoding=encoding) as f,
    ):
        for _ in range(int(skiprows)):
            f.readline()
        sink = None
        for first, block in _blocks(f, int(chunk_size), max_rows):
            line = first + int(skiprows)
            with naming(path, f"lines {line}-{line + len(block) - 1}"):
                a = np.loadtxt(block, dtype=dt, delimiter=delimiter, ndmin=2, **kw)
                if a.shape[0] == 0:
                    continue
                if sink is None:
                    sink = imp.array(array_name or path.stem, dt, a.shape[1:])
                sink.write(a)
            bar.update(sum(len(x) for x in block))
        if sink is None:
            imp.save(array_name or path.stem, np.empty((0, 0), dt))
    return imp.result


@remote_path("input_path", "in")
def from_csv(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    dtype: Any = None,
    delimiter: str = ",",
    skiprows: int = 0,
    max_rows: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> NumPack | None:
    """Import a CSV file as one 2-d array (name: ``array_name`` or the file stem).

    ``dtype`` defaults to float64; ``comments``, ``usecols``, ``encoding`` pass to
    ``np.loadtxt``. A malformed line raises ``ValueError`` naming the file and lines and
    leaves the store unchanged.
    """
    args = (array_name, drop_if_exists, dtype, delimiter, skiprows, max_rows, chunk_size)
    return _import_text(input_path, output_path, *args, return_npk_obj, progress, kwargs)


@remote_path("input_path", "in")
def from_txt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    dtype: Any = None,
    delimiter: str | None = None,
    skiprows: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> NumPack | None:
    """Import a whitespace-delimited text file (``delimiter=None``: any whitespace)."""
    args = (array_name, drop_if_exists, dtype, delimiter, skiprows, None, chunk_size)
    return _import_text(input_path, output_path, *args, return_npk_obj, progress, kwargs)


def _format_rows(a: np.ndarray[Any, Any], delimiter: str, fmt: str | None) -> str:
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    if fmt is not None:
        return "".join(delimiter.join(fmt % v for v in row) + "\n" for row in a.tolist())
    return "".join(delimiter.join(map(repr, row)) + "\n" for row in a.tolist())


@remote_path("output_path", "out")
def to_csv(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    delimiter: str = ",",
    header: bool = False,
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> None:
    """Export one array as CSV (rows of a 1-d array are single values; >= 3-d arrays are
    flattened per row). ``fmt=None`` writes the shortest text that reads back to the same
    value; ``header=True`` writes ``# col0,col1,...`` first."""
    with Source(input_path) as src:
        name = src.single(array_name)
        _dtype, shape = src.describe(name)
        cols = 1 if len(shape) < 2 else int(np.prod(shape[1:]))
        label = Path(os.fspath(output_path)).name
        with (
            Progress(progress, src.nbytes(name), label) as bar,
            atomic_output(output_path) as tmp,
            open(tmp, "w", encoding="utf-8") as f,
        ):
            if header:
                f.write("# " + delimiter.join(f"col{i}" for i in range(cols)) + "\n")
            for chunk in src.chunks(name, int(chunk_size) // 8 or 1):
                f.write(_format_rows(chunk.reshape(-1, cols), delimiter, fmt))
                bar.update(chunk.nbytes)


@remote_path("output_path", "out")
def to_txt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    delimiter: str = " ",
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> None:
    """Export one array as whitespace-delimited text (``to_csv`` without a header)."""
    to_csv(input_path, output_path, array_name, delimiter, False, fmt, chunk_size,
           progress=progress, **kwargs)  # fmt: skip
