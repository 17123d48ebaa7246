"""CSV and text files, parsed and written in Rust (``numpack._core.CsvReader``/``CsvWriter``).

Import: the file is read in blocks of about ``chunk_size`` bytes cut at line boundaries; each
block is parsed in parallel straight into the array's dtype and appended to an all-or-nothing
import, so memory stays near two blocks whatever the file size, and a malformed line raises
``ValueError`` naming the file, the line (1-based, every physical line counted) and the
column, leaving the store exactly as it was.

Export: rows are read from a memory map of the array in batches, formatted in parallel and
written to a temporary file beside the target, renamed into place at the end. By default each
value is written in the shortest form that reads back to the same value (``0.1``, ``-0.0``,
``nan``, ``inf``); a printf ``fmt`` is applied as ``np.savetxt`` applies it.

Keyword arguments the Rust reader does not handle are passed to ``pandas.read_csv`` (read in
chunks) when pandas is installed.
"""

from __future__ import annotations

import codecs
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._deps import optional
from .._indexing import le_dtype
from ..numpack import NumPack
from ._chunks import ArraySink, Import, atomic_output, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_csv", "from_txt", "to_csv", "to_txt"]

#: File suffixes from which pandas infers a compression (``compression="infer"``).
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")

#: Text of about this many bytes per value is assumed when sizing export batches.
_TEXT_PER_VALUE = 24

#: Keyword arguments of ``np.loadtxt`` / ``pd.read_csv`` the Rust reader understands.
_NATIVE_KW = frozenset(
    {
        "comments", "comment", "usecols", "encoding", "header", "sep", "nrows", "ndmin",
        "quotechar", "delim_whitespace", "skip_blank_lines", "skipinitialspace", "index_col",
        "unpack",
    }
)  # fmt: skip


def _ascii_compatible(encoding: str | None) -> bool:
    """Whether numbers, delimiters and newlines are their ASCII bytes in ``encoding``."""
    if encoding is None:
        return True
    try:
        codecs.lookup(encoding)
        probe = "0123456789+-.eEjJnaif(), ;|:\t\n\r#\"'"
        return probe.encode(encoding) == probe.encode("ascii")
    except (LookupError, UnicodeError):
        return False


def _whitespace(delimiter: str | None) -> bool:
    return delimiter is None or delimiter in (" ", r"\s+", "\\s+")


def _native_options(kwargs: dict[str, Any], delimiter: str | None) -> dict[str, Any] | None:
    """The reader's options from the keyword arguments, or ``None`` when some argument
    needs pandas."""
    kw = dict(kwargs)
    if set(kw) - _NATIVE_KW:
        return None
    if "sep" in kw:
        delimiter = kw.pop("sep")
    if kw.pop("delim_whitespace", False):
        delimiter = None
    if kw.pop("unpack", False):
        raise ValueError("unpack=True is not supported: a store holds the rows as they are")
    if kw.pop("skip_blank_lines", True) is not True or kw.pop("index_col", None) not in (
        None,
        False,
    ):
        return None
    kw.pop("skipinitialspace", None)
    if "comments" in kw and "comment" in kw:
        raise TypeError("give either comments (np.loadtxt) or comment (pandas), not both")
    comments = kw.pop("comments", kw.pop("comment", "#"))
    if comments is None:
        comments = []
    elif isinstance(comments, (str, bytes)):
        comments = [comments]
    comments = [c.decode() if isinstance(c, bytes) else str(c) for c in comments]
    header = kw.pop("header", None)
    if header == "infer":
        header = 0
    if header is not None and (isinstance(header, bool) or not isinstance(header, int)):
        return None
    usecols = kw.pop("usecols", None)
    if usecols is not None:
        cols = [usecols] if isinstance(usecols, (int, np.integer)) else list(usecols)
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cols):
            return None
        if not cols:
            raise ValueError("usecols must name at least one column")
        usecols = [int(c) for c in cols]
    if not _ascii_compatible(kw.pop("encoding", None)):
        return None
    quote = kw.pop("quotechar", '"')
    if _whitespace(delimiter):
        delimiter = None
    elif not isinstance(delimiter, str) or len(delimiter.encode()) != 1:
        return None
    if quote is not None and (not isinstance(quote, str) or len(quote.encode()) != 1):
        return None
    return {
        "delimiter": delimiter,
        "comments": comments,
        "quote": quote,
        "header_lines": 0 if header is None else int(header) + 1,
        "usecols": usecols,
        "nrows": kw.pop("nrows", None),
        "ndmin": kw.pop("ndmin", None),
    }


def _set_shape(sink: ArraySink, rows: int, width: int, ndmin: int | None) -> None:
    """The final shape: ``(rows, width)``, squeezed like ``np.loadtxt`` for ``ndmin`` 0/1."""
    if ndmin is None or int(ndmin) >= 2:
        return
    dims = [d for d in (rows, width) if d != 1]
    if int(ndmin) == 1 and not dims:
        dims = [1]
    if rows == 0:
        dims = [0]
    if not dims:
        sink.row_shape = None
    else:
        sink.rows, sink.row_shape = (dims[0], ()) if len(dims) == 1 else (rows, (width,))


def _import_native(
    path: Path,
    imp: Import,
    name: str,
    dt: np.dtype[Any],
    opts: dict[str, Any],
    skiprows: int,
    max_rows: int | None,
    chunk_size: int,
    bar: Progress,
) -> None:
    reader = _core.CsvReader(
        str(path),
        dt,
        opts["delimiter"],
        opts["comments"],
        opts["quote"],
        int(skiprows),
        opts["header_lines"],
        None if max_rows is None else int(max_rows),
        opts["usecols"],
        max(1, int(chunk_size)),
    )
    # The width is known only after the first row: the sink's shape is set at the end.
    sink = imp.array(name, dt, (0,))
    seen = 0
    while reader.read_into(sink._writer) is not None:
        bar.update(reader.position - seen)
        seen = reader.position
    width = reader.width
    if width is None:
        width = len(opts["usecols"]) if opts["usecols"] else 0
    sink.rows, sink.row_shape = int(reader.rows), (int(width),)
    _set_shape(sink, sink.rows, int(width), opts["ndmin"])


def _import_pandas(
    path: Path,
    imp: Import,
    name: str,
    dtype: Any,
    delimiter: str | None,
    skiprows: int,
    max_rows: int | None,
    chunk_size: int,
    kwargs: dict[str, Any],
    bar: Progress,
) -> None:
    pd = optional("pandas")
    if pd is None:
        raise TypeError(
            f"from_csv(): the keyword arguments {sorted(set(kwargs) - _NATIVE_KW)} are "
            "pandas.read_csv options; install pandas to use them"
        )
    kw = dict(kwargs)
    kw.setdefault("header", None)
    if "sep" not in kw and not kw.get("delim_whitespace"):
        kw["sep"] = r"\s+" if _whitespace(delimiter) else delimiter
    rows = max(1000, int(chunk_size) // 100)
    dt = None if dtype is None else np.dtype(dtype)
    sink = None
    infer = kw.get("compression", "infer") == "infer"
    with contextlib.ExitStack() as stack:
        # pandas reads an open file as it goes, so the file's position is the progress (a
        # path only where pandas infers a compression from the file name).
        f = None
        if not (infer and path.suffix.lower() in _COMPRESSED):
            f = stack.enter_context(open(path, "rb"))
        chunks = pd.read_csv(f if f is not None else path, skiprows=skiprows, nrows=max_rows,
                             dtype=dt, chunksize=rows, **kw)  # fmt: skip
        stack.enter_context(chunks)
        for df in chunks:
            a = np.ascontiguousarray(df.to_numpy(dtype=dt if dt is not None else np.float64))
            if sink is None:
                sink = imp.array(name, a.dtype, a.shape[1:])
            sink.write(a)
            if f is not None:
                bar.update(f.tell() - bar.n)
    if sink is None:
        imp.save(name, np.empty((0, 0), dt if dt is not None else np.float64))


@remote_path("input_path", "in")
def from_csv(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    dtype: npt.DTypeLike | None = None,
    delimiter: str | None = ",",
    skiprows: int = 0,
    max_rows: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> NumPack | None:
    """Import a CSV file as one array.

    Parameters
    ----------
    input_path : str or os.PathLike
        The CSV file (or an fsspec URL).
    output_path : str or os.PathLike
        The store directory (created if needed).
    array_name : str, optional
        Name of the array; the file stem by default.
    drop_if_exists : bool, optional
        Replace every array of the store (in the same all-or-nothing commit).
    dtype : dtype-like, optional
        Element type; values are parsed straight into it, integers with overflow checks
        (``1.0`` and ``1.5e+03`` are accepted as integers). By default it is inferred as
        pandas would: int64 when every field of the first 64 KiB is a plain integer, bool
        when every one is ``true``/``false``, else float64 (an int64 or bool guess that a
        later field contradicts re-reads the file as float64).
    delimiter : str or None, optional
        One character; ``None`` or ``' '``: runs of whitespace.
    skiprows : int, optional
        Physical lines skipped first (comments and blank lines included).
    max_rows : int, optional
        Read at most this many rows (``nrows`` is an alias).
    chunk_size : int, optional
        Bytes of text per block.
    return_npk_obj : bool, optional
        Return a new, opened ``NumPack`` on the store (the caller closes it).
    progress : bool, optional
        Show a progress bar (needs ``tqdm``).
    **kwargs
        ``comments`` (``'#'``; a string, a list of strings or ``None``) or ``comment``,
        ``header`` (``header=0``: the first line holding fields is a header and is
        skipped), ``usecols`` (column indices, negative from the end), ``quotechar``,
        ``encoding`` (any ASCII-compatible one), ``ndmin`` (``0``/``1`` squeeze a single
        row or column as ``np.loadtxt`` does; the default is always 2-d), ``sep``; any
        other ``pandas.read_csv`` option sends the file through pandas, in chunks.

    Returns
    -------
    NumPack or None
        The opened store with ``return_npk_obj=True``.

    Notes
    -----
    The array is 2-d ``(rows, columns)``. Empty fields read as NaN for float dtypes;
    ``nan``, ``inf``, ``infinity`` (any case, signed) are read as such. A file without rows
    gives a ``(0, 0)`` array.
    """
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    kwargs = dict(kwargs)
    if "nrows" in kwargs and max_rows is None:
        max_rows = kwargs.pop("nrows")
    opts = _native_options(kwargs, delimiter)
    name = array_name if array_name is not None else path.stem
    with (
        Progress(progress, path.stat().st_size, path.name) as bar,
        Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp,
    ):
        if opts is None:
            with naming(path):
                _import_pandas(
                    path, imp, name, dtype, delimiter, skiprows, max_rows, chunk_size, kwargs, bar
                )
        else:
            if max_rows is None:
                max_rows = opts["nrows"]
            guess = _infer_dtype(path, opts, skiprows) if dtype is None else dtype
            dt = le_dtype(np.dtype(guess))
            try:
                _import_native(path, imp, name, dt, opts, skiprows, max_rows, chunk_size, bar)
            except ValueError:
                if dtype is not None or dt == np.float64:
                    raise
                # The sample looked like integers or booleans but a later field is not:
                # float64 as pandas would give (nothing of the first try was committed).
                dt = np.dtype("<f8")
                imp.discard(name)
                bar.reset()
                _import_native(path, imp, name, dt, opts, skiprows, max_rows, chunk_size, bar)
    return imp.result


_INFER_BYTES = 1 << 16


def _infer_dtype(path: Path, opts: dict[str, Any], skiprows: int) -> np.dtype[Any]:
    """The dtype pandas would give a file of numbers, from its first 64 KiB: int64 when every
    field there is a plain integer, bool when every field is ``true``/``false`` (any case),
    else float64."""
    with open(path, "rb") as f:
        sample = f.read(_INFER_BYTES)
    sample = sample.removeprefix(codecs.BOM_UTF8)
    lines = sample.split(b"\n")
    if len(sample) == _INFER_BYTES and len(lines) > 1:
        lines.pop()  # cut mid-line
    markers = [c.encode() for c in opts["comments"] if c]
    delim = None if opts["delimiter"] is None else opts["delimiter"].encode()
    quote = None if opts["quote"] is None else opts["quote"].encode()
    header_left = opts["header_lines"]
    kinds: set[str] = set()
    for raw in lines[int(skiprows) :]:
        line = raw
        for m in markers:
            cut = line.find(m)
            if cut >= 0:
                line = line[:cut]
        line = line.strip()
        if not line:
            continue
        if header_left:
            header_left -= 1
            continue
        for field in line.split(delim):
            field = field.strip()
            if quote and len(field) >= 2 and field[:1] == quote and field[-1:] == quote:
                field = field[1:-1].strip()
            digits = field[1:] if field[:1] in (b"+", b"-") else field
            if digits.isdigit() and digits.isascii():
                kinds.add("i")
            elif field.lower() in (b"true", b"false"):
                kinds.add("b")
            else:
                return np.dtype(np.float64)
    if kinds == {"i"}:
        return np.dtype(np.int64)
    if kinds == {"b"}:
        return np.dtype(np.bool_)
    return np.dtype(np.float64)


@remote_path("input_path", "in")
def from_txt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    drop_if_exists: bool = False,
    dtype: npt.DTypeLike | None = None,
    delimiter: str | None = None,
    skiprows: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> NumPack | None:
    """Import a text file as one array: :func:`from_csv` with ``delimiter=None`` (runs of
    whitespace) by default. ``max_rows`` may be given as a keyword."""
    max_rows = kwargs.pop("max_rows", None)
    return from_csv(
        input_path, output_path, array_name, drop_if_exists, dtype, delimiter, skiprows,
        max_rows, chunk_size, return_npk_obj, progress=progress, **kwargs,
    )  # fmt: skip


def _row_format(fmt: Any, width: int, delimiter: str) -> str:
    """The whole-row printf format, by ``np.savetxt``'s rules."""
    if isinstance(fmt, bytes):
        fmt = fmt.decode("latin1")
    if isinstance(fmt, (list, tuple)):
        if len(fmt) != width:
            raise ValueError(f"fmt has wrong shape.  {fmt}")
        return delimiter.join(str(f) for f in fmt)
    if not isinstance(fmt, str):
        raise ValueError(f"invalid fmt: {fmt!r}")
    n = fmt.count("%")
    if n == 1:
        return delimiter.join([fmt] * width)
    if n != width:
        raise ValueError(f"fmt has wrong number of % formats:  {fmt}")
    return fmt


def _comment_lines(text: str, comments: str, newline: str) -> str:
    return comments + text.replace("\n", "\n" + comments) + newline if text else ""


@remote_path("output_path", "out")
def to_csv(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    delimiter: str = ",",
    header: bool | str = False,
    fmt: str | Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> None:
    """Export one array as CSV.

    Parameters
    ----------
    input_path : str, os.PathLike or Snapshot
        The store directory, or a ``Snapshot`` of one (its version is exported).
    output_path : str or os.PathLike
        The CSV file (or an fsspec URL); written to a temporary file renamed into place.
    array_name : str, optional
        The array; by default the only array of the store.
    delimiter : str, optional
        Between values.
    header : bool or str, optional
        ``True``: a line ``# col0,col1,...``; a string: that text as comment lines.
    fmt : str or sequence of str, optional
        ``None`` (default): the shortest text that reads back to the same value. Otherwise
        a printf format as ``np.savetxt`` takes it (``'%.6f'``, ``'%d'``, ``'%.18e'``, one
        per column, or a whole row such as ``'%d;%.3f'``).
    chunk_size : int, optional
        Bytes of text per batch, about.
    progress : bool, optional
        Show a progress bar (needs ``tqdm``).
    **kwargs
        ``np.savetxt``'s ``newline``, ``footer``, ``comments`` (prefix of header and
        footer lines, ``'# '``) and ``encoding``.

    Notes
    -----
    A 1-d array is written one value per line, a 0-d array as one line, and an array of 3
    or more dimensions with each row flattened. NaN, inf and -0.0 are written as ``nan``,
    ``inf``/``-inf`` and ``-0.0``; bools as ``1``/``0``; complex values as ``1.5-2.0j``.
    """
    newline = str(kwargs.pop("newline", "\n"))
    footer = str(kwargs.pop("footer", ""))
    comments = str(kwargs.pop("comments", "# "))
    encoding = kwargs.pop("encoding", None)
    if kwargs:
        raise TypeError(f"to_csv() got unexpected keyword arguments {sorted(kwargs)}")
    with Source(input_path) as src:
        name = src.single(array_name)
        dtype, shape = src.describe(name)
        width = 1 if len(shape) < 2 else int(np.prod(shape[1:], dtype=np.int64))
        if header is True:
            header = delimiter.join(f"col{i}" for i in range(width))
        head = _comment_lines(header or "", comments, newline)
        tail = _comment_lines(footer, comments, newline)
        row_fmt = None if fmt is None else _row_format(fmt, width, delimiter)
        native = _ascii_compatible(encoding) and (
            row_fmt is None or (dtype.kind != "c" and _core.csv_format_columns(row_fmt) == width)
        )
        rows = shape[0] if shape else 1
        label = Path(os.fspath(output_path)).name
        with Progress(progress, rows, label, unit="rows") as bar, atomic_output(output_path) as tmp:
            enc = encoding or "utf-8"
            if native:
                head_b, tail_b = head.encode(enc), tail.encode(enc)
                _export_native(src, name, tmp, dtype, shape, width, delimiter, newline,
                               row_fmt, head_b, tail_b, chunk_size, bar)  # fmt: skip
            else:
                _export_savetxt(src, name, tmp, shape, width, fmt, delimiter, newline,
                                head, tail, encoding, chunk_size, bar)  # fmt: skip


def _export_native(
    src: Source,
    name: str,
    tmp: Path,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    width: int,
    delimiter: str,
    newline: str,
    row_fmt: str | None,
    head: bytes,
    tail: bytes,
    chunk_size: int,
    bar: Progress,
) -> None:
    writer = _core.CsvWriter(str(tmp), dtype, width, delimiter, newline, row_fmt, name)
    try:
        writer.write_raw(head)
        rows = shape[0] if shape else 1
        if width == 0:
            writer.write_blank(rows)
            bar.update(rows)
        step = max(1, int(chunk_size) // max(1, width * _TEXT_PER_VALUE))
        if src.snapshot is not None:
            # A version is read as copies, chunk by chunk.
            for start in range(0, rows if width else 0, step):
                stop = min(start + step, rows)
                part = src.load(name) if not shape else src.store.read_range(name, start, stop)
                writer.write(part.reshape(stop - start, width))
                bar.update(stop - start)
        else:
            data, active = src.store.view(name)
            flat = data.reshape(1 if not shape else int(data.shape[0]), width)
            for start in range(0, rows if width else 0, step):
                stop = min(start + step, rows)
                if active is None:
                    writer.write(flat[start:stop])
                else:
                    writer.write(flat, active[start:stop])
                bar.update(stop - start)
        writer.write_raw(tail)
    finally:
        writer.close()


def _export_savetxt(
    src: Source,
    name: str,
    tmp: Path,
    shape: tuple[int, ...],
    width: int,
    fmt: Any,
    delimiter: str,
    newline: str,
    head: str,
    tail: str,
    encoding: str | None,
    chunk_size: int,
    bar: Progress,
) -> None:
    """``np.savetxt`` batch by batch: formats the Rust writer does not take (``%r``,
    complex values with a ``fmt``) and encodings that are not ASCII-compatible."""
    enc = encoding or "utf-8"
    if fmt is None:
        fmt = "%s"  # str() of a NumPy scalar: its shortest round-trip text
    itemsize = src.describe(name)[0].itemsize
    with open(tmp, "wb") as f:
        f.write(head.encode(enc))
        for chunk in src.chunks(name, max(1, int(chunk_size) * itemsize // _TEXT_PER_VALUE)):
            rows = chunk.reshape(-1, width) if shape else chunk.reshape(1, 1)
            np.savetxt(f, rows, fmt=fmt, delimiter=delimiter, newline=newline, encoding=enc)
            bar.update(rows.shape[0])
        f.write(tail.encode(enc))


@remote_path("output_path", "out")
def to_txt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    delimiter: str = " ",
    fmt: str | Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
    **kwargs: Any,
) -> None:
    """Export one array as whitespace-delimited text: :func:`to_csv` without a header."""
    to_csv(input_path, output_path, array_name, delimiter, False, fmt, chunk_size,
           progress=progress, **kwargs)  # fmt: skip
