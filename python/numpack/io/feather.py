"""Feather (v2, i.e. the Arrow IPC file format) and Arrow IPC streams, by record batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output, chunk_rows, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike
from .arrow import arrow_schema, batch_nbytes, import_batches, record_batches
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_feather", "to_feather", "from_feather_file", "to_feather_file"]

#: Rows per record batch written (as ``pyarrow.feather.write_feather``).
BATCH_ROWS = 65_536


def _open(pa: Any, path: Path) -> tuple[Any, Iterator[Any], int | None]:
    """``(schema, batches, rows)`` of a Feather v2 / IPC file, an IPC stream or a Feather v1
    file; ``rows`` is ``None`` when only reading every batch would tell (a stream, or a
    pyarrow without ``RecordBatchFileReader.count_rows``, which reads only metadata)."""
    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_file(source)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        count = getattr(reader, "count_rows", None)
        return reader.schema, batches, None if count is None else int(count())
    except pa.ArrowInvalid:
        pass
    try:
        stream = pa.ipc.open_stream(pa.memory_map(str(path)))
        return stream.schema, iter(stream), None
    except pa.ArrowInvalid:
        table = require("pyarrow.feather").read_table(str(path), memory_map=True)
        return table.schema, iter(table.to_batches()), table.num_rows


def _split(batches: Iterator[Any], columns: list[str] | None, rows: int) -> Iterator[Any]:
    for b in batches:
        if columns is not None:
            b = b.select(columns)
        for start in range(0, b.num_rows, rows):
            yield b.slice(start, rows)


@remote_path("input_path", "in")
def from_feather(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    columns: list[str] | None = None,
    drop_if_exists: bool = False,
    return_npk_obj: bool = False,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> NumPack | None:
    """Import a Feather / Arrow IPC file as one array, record batch by record batch.

    Conversion rules as :func:`numpack.io.from_parquet`. Each record batch is decompressed
    on its own (memory-mapped when uncompressed), so memory stays about one batch.

    Parameters
    ----------
    input_path : str or os.PathLike
        The Feather file, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory.
    array_name : str, optional
        Default: the file stem.
    columns : list of str, optional
        Columns to import.
    drop_if_exists, return_npk_obj, chunk_size, progress
        As for :func:`numpack.io.from_npy`.
    """
    pa = require("pyarrow")
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    with Progress(progress, None, path.name) as bar:
        with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp, naming(path):
            schema, batches, total_rows = _open(pa, path)
            if columns is not None:
                missing = [c for c in columns if c not in schema.names]
                if missing:
                    raise KeyError(f"column(s) {missing} not found; available: {schema.names}")
            width = len(schema.names if columns is None else columns)
            rows = chunk_rows(8 * max(1, width), int(chunk_size) // 2)
            batches = _split(batches, None if columns is None else list(columns), rows)
            import_batches(imp, array_name or path.stem, schema, batches, str(path), columns,
                           bar, total_rows)  # fmt: skip
    return imp.result


@remote_path("output_path", "out")
def to_feather(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    compression: str | None = "zstd",
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> None:
    """Export one array as a Feather v2 file (record batches of 65536 rows).

    Column layout as :func:`numpack.io.to_parquet`; ``compression`` is ``"zstd"``,
    ``"lz4"`` or ``None`` / ``"uncompressed"``.
    """
    pa = require("pyarrow")
    codec = None if compression in (None, "uncompressed") else compression
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with Source(input_path) as src:
        name = src.single(array_name)
        dtype, shape = src.describe(name)
        schema = arrow_schema(dtype, shape, attrs=src.attrs(name))
        label = Path(os.fspath(output_path)).name
        with Progress(progress, src.nbytes(name), label) as bar, atomic_output(output_path) as tmp:
            with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, schema, options=options) as w:
                for batch in record_batches(src, name, schema, int(chunk_size), BATCH_ROWS):
                    for start in range(0, batch.num_rows, BATCH_ROWS):
                        part = batch.slice(start, BATCH_ROWS)
                        w.write_batch(part)
                        bar.update(batch_nbytes(part, dtype))
                    del batch


from_feather_file = from_feather
to_feather_file = to_feather
