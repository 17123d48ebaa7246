"""Parquet files, read by record batches and written row group by row group (``pyarrow``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, atomic_output, chunk_rows, naming
from ._progress import Progress
from ._remote import remote_path
from ._source import Source, SourceLike
from .arrow import _column_dtype, arrow_schema, batch_nbytes, import_batches, record_batches
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_parquet", "to_parquet", "from_parquet_file", "to_parquet_file"]


@remote_path("input_path", "in")
def from_parquet(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    columns: list[str] | None = None,
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
    *,
    progress: bool = False,
) -> NumPack | None:
    """Import a Parquet file as one array, record batch by record batch.

    The columns (all, or ``columns`` in that order) become the columns of a 2-d array of
    their common dtype; a file written by numpack gets its exact array back.

    Parameters
    ----------
    input_path : str or os.PathLike
        The Parquet file, or an fsspec URL of one.
    output_path : str or os.PathLike
        The store directory.
    array_name : str, optional
        Default: the file stem.
    columns : list of str, optional
        Columns to import.
    drop_if_exists, chunk_size, return_npk_obj, progress
        As for :func:`numpack.io.from_npy`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If a column does not exist.
    ValueError
        For a non-numeric column, nulls in a non-float column, or a malformed file; the
        store is then unchanged.
    """
    pq = require("pyarrow.parquet")
    path = Path(os.fspath(input_path))
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {input_path}")
    with Progress(progress, None, path.name) as bar:
        with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp, naming(path):
            pf = pq.ParquetFile(path, memory_map=True)
            schema = pf.schema_arrow
            names = schema.names if columns is None else list(columns)
            fields = [schema.field(c) for c in names if c in schema.names]
            itemsize = max([_column_dtype(f, str(path)).itemsize for f in fields] or [8])
            # pyarrow's reader holds several batches (and a decoded column chunk per column)
            rows = chunk_rows(itemsize * max(1, len(names)), int(chunk_size) // 8)
            batches = pf.iter_batches(batch_size=rows, columns=names, use_threads=True)
            import_batches(imp, array_name or path.stem, schema, batches, str(path), columns,
                           bar, pf.metadata.num_rows)  # fmt: skip
    return imp.result


@remote_path("output_path", "out")
def to_parquet(
    input_path: SourceLike,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    compression: str | None = "snappy",
    row_group_size: int = 100_000,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    progress: bool = False,
) -> None:
    """Export one array as a Parquet file, chunk by chunk.

    A 1-d array is column ``data``, a 2-d array the columns ``col0..``, a 3-d or higher (or
    0-d) array one column ``data`` of its values; the shape is kept in the schema metadata.

    Parameters
    ----------
    input_path : str, os.PathLike or Snapshot
        The store directory, or a ``Snapshot`` of one (its version is exported).
    output_path : str or os.PathLike
        The Parquet file (replaced atomically), or an fsspec URL.
    array_name : str, optional
        Default: the only array of the store.
    compression : str or None, default "snappy"
        Parquet codec.
    row_group_size : int, default 100000
        Rows (values, for a flattened array) per row group.
    chunk_size, progress
        As for :func:`numpack.io.to_npy`.
    """
    pq = require("pyarrow.parquet")
    with Source(input_path) as src:
        name = src.single(array_name)
        dtype, shape = src.describe(name)
        schema = arrow_schema(dtype, shape, attrs=src.attrs(name))
        per_row = max(1, int(np.prod(shape[1:], dtype=np.int64))) if len(shape) != 2 else 1
        multiple = max(1, int(row_group_size) // per_row)
        label = Path(os.fspath(output_path)).name
        with Progress(progress, src.nbytes(name), label) as bar, atomic_output(output_path) as tmp:
            with pq.ParquetWriter(tmp, schema, compression=compression) as w:
                for batch in record_batches(src, name, schema, int(chunk_size), multiple):
                    w.write_batch(batch, row_group_size=int(row_group_size))
                    bar.update(batch_nbytes(batch, dtype))
                    del batch


from_parquet_file = from_parquet
to_parquet_file = to_parquet
