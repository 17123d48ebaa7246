"""Arrow record batches <-> store arrays: the conversion rules shared by Parquet, Feather and
in-memory ``pyarrow.Table`` objects.

Arrow to NumPy (numpack 0.6 rule): the selected columns become the columns of one 2-d array
``(rows, ncols)`` of their common dtype; a table with no rows or no columns becomes an empty
float64 array. NumPy to Arrow: a 1-d array is one column ``data``, a 2-d array the columns
``col0..col{n-1}``, a 3-d or higher array one column ``data`` of its flattened values. Tables
written by numpack also carry the array's shape and dtype in the schema metadata
(``b"numpack"``), so reading them back (all columns) restores the exact array, 0-d and n-d
included. Batches are converted one at a time, so memory stays bounded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .._attrs import ATTRS_KEY, attrs_from_json, attrs_json, importable_attrs
from .._deps import require
from ..numpack import NumPack
from ._chunks import ArraySink, Import, naming
from ._progress import Progress
from ._source import Source, SourceLike

__all__ = [
    "from_table",
    "to_table",
    "from_parquet_table",
    "to_parquet_table",
    "arrow_schema",
    "batch_nbytes",
    "import_batches",
    "record_batches",
]

_META = b"numpack"


def _pa() -> Any:
    return require("pyarrow")


#: Field metadata key naming the ``ml_dtypes`` type of a fixed-size binary column (Arrow has
#: no bfloat16 or float8 type: their bytes are kept as ``fixed_size_binary(itemsize)``).
_DTYPE_KEY = b"numpack.dtype"
_ML = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def _ml_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(getattr(require("ml_dtypes"), name))


def _column_dtype(field: Any, where: str) -> np.dtype[Any]:
    pa = _pa()
    t = field.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.dtype(t.to_pandas_dtype())
    ml = (field.metadata or {}).get(_DTYPE_KEY, b"").decode("utf-8", "replace")
    if pa.types.is_fixed_size_binary(t) and ml in _ML and _ml_dtype(ml).itemsize == t.byte_width:
        return _ml_dtype(ml)
    raise ValueError(
        f"{where}: column '{field.name}' has Arrow type {t}, which numpack cannot store"
    )


def _saved_layout(schema: Any) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """The (shape, dtype) numpack wrote into ``schema``'s metadata, if any."""
    raw = (schema.metadata or {}).get(_META)
    if raw is None:
        return None
    try:
        d = json.loads(raw)
        dtype = _ml_dtype(d["dtype"]) if d["dtype"] in _ML else np.dtype(d["dtype"])
        return tuple(int(x) for x in d["shape"]), dtype
    except (ValueError, KeyError, TypeError):
        return None


class _Rows:
    """Takes flat values of a table of ``(rows, *row_shape)`` and writes whole rows."""

    def __init__(self, sink: ArraySink, row_shape: tuple[int, ...]) -> None:
        self.sink = sink
        self.row_shape = row_shape
        self.per_row = int(np.prod(row_shape, dtype=np.int64))
        self.rest: npt.NDArray[Any] | None = None

    def add(self, flat: npt.NDArray[Any]) -> None:
        if self.rest is not None and self.rest.size:
            flat = np.concatenate([self.rest, flat])
        n = flat.size // self.per_row if self.per_row else 0
        self.sink.write(flat[: n * self.per_row].reshape((n, *self.row_shape)))
        self.rest = flat[n * self.per_row :].copy()

    def finish(self, where: str) -> None:
        if self.rest is not None and self.rest.size:
            raise ValueError(f"{where}: {self.rest.size} values left over after the last row")


def _layout(schema: Any, ncols: int, dtype: np.dtype[Any]) -> tuple[int, ...] | None:
    """The shape numpack saved in ``schema`` when it fits ``ncols`` columns of ``dtype``."""
    layout = _saved_layout(schema)
    if layout is None or layout[1] != dtype:
        return None
    shape = layout[0]
    if (len(shape) == 2 and ncols == shape[1]) or (len(shape) != 2 and ncols == 1):
        return shape
    return None


def import_batches(
    imp: Import,
    name: str,
    schema: Any,
    batches: Iterable[Any],
    where: str,
    columns: list[str] | None,
    bar: Progress | None = None,
    num_rows: int | None = None,
) -> None:
    """Import record ``batches`` (holding the ``columns`` of ``schema``, in that order, or
    all of them) as array ``name``; the shape numpack saved in the schema metadata is
    restored when all columns are read, and the attributes it saved always. ``bar`` counts
    the bytes of the values converted; its total is set from ``num_rows``, the table's row
    count, when that is known."""
    _import_batches(imp, name, schema, batches, where, columns, bar, num_rows)
    attrs = attrs_from_json((schema.metadata or {}).get(ATTRS_KEY.encode()))
    attrs = None if attrs is None else importable_attrs(attrs, where)
    if attrs:
        imp.sink(name).set_attrs(attrs)


def _import_batches(
    imp: Import,
    name: str,
    schema: Any,
    batches: Iterable[Any],
    where: str,
    columns: list[str] | None,
    bar: Progress | None,
    num_rows: int | None,
) -> None:
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise KeyError(f"{where}: column(s) {missing} not found; available: {schema.names}")
    fields = [schema.field(c) for c in (schema.names if columns is None else columns)]
    names = [f.name for f in fields]
    dtypes = [_column_dtype(f, where) for f in fields]
    if not fields:
        imp.save(name, np.empty((sum(b.num_rows for b in batches), 0)))
        return
    dtype = np.result_type(*dtypes)
    if bar is not None and num_rows is not None:
        bar.set_total(int(num_rows) * len(fields) * dtype.itemsize)
    shape = _layout(schema, len(fields), dtype) if columns is None else None
    if shape is None or len(shape) == 2:
        sink = None
        for batch in batches:
            out = np.empty((batch.num_rows, len(fields)), dtype)
            for j, col in enumerate(batch.columns):
                out[:, j] = _values(col, names[j], dtype, where)
            if sink is None:
                sink = imp.array(name, dtype, (len(fields),))
            sink.write(out)
            if bar is not None:
                bar.update(out.nbytes)
            del batch, out  # free before the next batch is decoded
        if sink is None:  # no rows: numpack 0.6 made these float64 unless we wrote them
            imp.save(name, np.empty((0, len(fields)), dtype if shape else np.float64))
        return
    if not shape:  # 0-d
        values = [_values(b.column(0), names[0], dtype, where) for b in batches]
        flat = np.concatenate(values) if values else np.empty(0, dtype)
        if flat.size != 1:
            raise ValueError(f"{where}: a 0-d array needs one value, the table has {flat.size}")
        imp.save(name, flat.reshape(()), bar=bar)
        return
    rows = _Rows(imp.array(name, dtype, shape[1:]), shape[1:])
    if not rows.per_row:
        rows.sink.write(np.empty(shape, dtype))
        return
    for batch in batches:
        flat = _values(batch.column(0), names[0], dtype, where)
        rows.add(flat)
        if bar is not None:
            bar.update(flat.nbytes)
        del batch, flat
    rows.finish(where)
    if rows.sink.rows != shape[0]:
        raise ValueError(f"{where}: {rows.sink.rows} rows, the metadata says {shape[0]}")


def _values(col: Any, name: str, dtype: np.dtype[Any], where: str) -> npt.NDArray[Any]:
    if col.null_count and not _pa().types.is_floating(col.type):
        raise ValueError(f"{where}: column '{name}' has {col.null_count} null values")
    if dtype.name in _ML:
        # A fixed-size binary column of the type's bytes (chunks joined, offsets applied).
        parts = col.chunks if hasattr(col, "chunks") else [col]
        out = [np.frombuffer(p.buffers()[1], np.uint8)[p.offset * dtype.itemsize:]
               [: len(p) * dtype.itemsize].view(dtype) for p in parts]  # fmt: skip
        return np.concatenate(out) if out else np.empty(0, dtype)
    a = col.to_numpy(zero_copy_only=False)
    return a if a.dtype == dtype else a.astype(dtype)


def arrow_schema(
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    column_names: list[str] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Any:
    """The Arrow schema numpack writes for an array (with the shape, and the attributes when
    it has some, in its metadata)."""
    pa = _pa()
    if dtype.kind == "c":
        raise ValueError(f"Arrow has no {dtype} type: complex arrays cannot be exported")
    ml = dtype.name in _ML
    t = pa.binary(dtype.itemsize) if ml else pa.from_numpy_dtype(dtype)
    field_meta = {_DTYPE_KEY: dtype.name.encode()} if ml else None
    names = (
        [f"col{i}" for i in range(shape[1])] if len(shape) == 2 else ["data"]
    ) if column_names is None else list(column_names)  # fmt: skip
    want = shape[1] if len(shape) == 2 else 1
    if len(names) != want:
        raise ValueError(f"{len(names)} column names given for {want} columns")
    saved = dtype.name if ml else dtype.str
    meta = {_META: json.dumps({"shape": list(shape), "dtype": saved}).encode()}
    if attrs:
        meta[ATTRS_KEY.encode()] = attrs_json(attrs).encode()
    return pa.schema([pa.field(n, t, metadata=field_meta) for n in names], metadata=meta)


def _column(pa: Any, values: npt.NDArray[Any], t: Any) -> Any:
    """An Arrow array of 1-d ``values`` of the field type ``t``."""
    if not pa.types.is_fixed_size_binary(t):
        return pa.array(values)
    raw = np.ascontiguousarray(values).view(np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(t, len(values), [None, pa.py_buffer(raw)])


def record_batches(
    src: Source, name: str, schema: Any, chunk_size: int, multiple: int = 1
) -> Iterator[Any]:
    """The array ``name`` as record batches of ``schema``, about ``chunk_size`` bytes of
    memory at a time (a half-chunk of rows and its column-major copy); the caller drops
    each batch before asking for the next."""
    pa = _pa()
    _dtype, shape = src.describe(name)
    for chunk in src.chunks(name, max(1, chunk_size // 2), multiple):
        if len(shape) == 2:
            cols = np.ascontiguousarray(chunk.T)
            del chunk
            arrays = [_column(pa, cols[j], schema.field(j).type) for j in range(cols.shape[0])]
            del cols
        else:
            arrays = [_column(pa, np.ascontiguousarray(chunk).reshape(-1), schema.field(0).type)]
            del chunk
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        del arrays
        yield batch
        del batch


def batch_nbytes(batch: Any, dtype: np.dtype[Any]) -> int:
    """Bytes of the array's values in a record batch of :func:`record_batches` (Arrow's own
    sizes differ: bools are bits there)."""
    return int(batch.num_rows) * int(batch.num_columns) * dtype.itemsize


def _table_batches(table: Any, columns: list[str] | None, chunk_size: int) -> Iterator[Any]:
    width = max(1, len(table.column_names) if columns is None else len(columns))
    rows = max(1, chunk_size // (8 * width))
    yield from table.to_batches(max_chunksize=rows)


def from_table(
    table: Any,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    columns: list[str] | None = None,
    drop_if_exists: bool = False,
    return_npk_obj: bool = False,
    *,
    chunk_size: int = 64 << 20,
) -> NumPack | None:
    """Import an in-memory ``pyarrow.Table`` (or ``RecordBatch``) as one array.

    Parameters
    ----------
    table : pyarrow.Table or pyarrow.RecordBatch
        Numeric (bool, integer, floating) columns; nulls only in floating columns (NaN).
    output_path : str or os.PathLike
        The store directory.
    array_name : str, optional
        Default ``"data"``.
    columns : list of str, optional
        Columns to import, in this order (default: all).
    drop_if_exists, return_npk_obj : bool
        As for :func:`numpack.io.from_npy`.
    chunk_size : int, optional
        Bytes per converted batch.

    Returns
    -------
    NumPack or None
    """
    pa = _pa()
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"Expected pyarrow.Table, got {type(table).__name__}")
    where = "<pyarrow.Table>"
    with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp, naming(where):
        if columns is not None:
            missing = [c for c in columns if c not in table.column_names]
            if missing:
                raise KeyError(f"column(s) {missing} not found; available: {table.column_names}")
            batches = _table_batches(table.select(columns), columns, int(chunk_size))
        else:
            batches = _table_batches(table, columns, int(chunk_size))
        import_batches(imp, array_name or "data", table.schema, batches, where, columns)
    return imp.result


def to_table(
    input_path: SourceLike,
    array_name: str | None = None,
    column_names: list[str] | None = None,
) -> Any:
    """Export one array as an in-memory ``pyarrow.Table`` (1-d: column ``data``; 2-d:
    ``col0..``; n-d: ``data`` flattened; ``column_names`` override the names)."""
    pa = _pa()
    with Source(input_path) as src:
        name = src.single(array_name)
        dtype, shape = src.describe(name)
        schema = arrow_schema(dtype, shape, column_names, src.attrs(name))
        batches = list(record_batches(src, name, schema, 128 << 20))
    return pa.Table.from_batches(batches, schema=schema)


def from_parquet_table(
    table: Any,
    output_path: str | os.PathLike[str],
    array_name: str | None = None,
    columns: list[str] | None = None,
    drop_if_exists: bool = False,
    return_npk_obj: bool = False,
) -> NumPack | None:
    """Import an in-memory ``pyarrow.Table`` (same as :func:`from_table`)."""
    return from_table(table, output_path, array_name, columns, drop_if_exists, return_npk_obj)


def to_parquet_table(
    input_path: str | os.PathLike[str],
    array_name: str | None = None,
    column_names: list[str] | None = None,
) -> Any:
    """Export one array as an in-memory ``pyarrow.Table`` (same as :func:`to_table`)."""
    return to_table(input_path, array_name, column_names)
