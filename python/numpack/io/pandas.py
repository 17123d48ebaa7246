"""pandas DataFrames (in memory by nature; imported in row blocks, so no second full copy)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._deps import require
from ..numpack import NumPack
from ._chunks import Import, chunk_rows, is_storable, naming
from ._source import Source, SourceLike
from .utils import DEFAULT_CHUNK_SIZE

__all__ = ["from_dataframe", "to_dataframe"]


def from_dataframe(
    df: Any,
    output_path: str | os.PathLike[str],
    array_name: str = "data",
    drop_if_exists: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    return_npk_obj: bool = False,
) -> NumPack | None:
    """Import a DataFrame's values as one 2-d array ``(rows, columns)``.

    Parameters
    ----------
    df : pandas.DataFrame
        Numeric or bool columns (their common NumPy dtype is stored).
    output_path : str or os.PathLike
        The store directory.
    array_name : str, default "data"
        Name of the array.
    drop_if_exists, chunk_size, return_npk_obj
        As for :func:`numpack.io.from_npy`.

    Raises
    ------
    ValueError
        If the columns have no common storable dtype (strings, mixed types, datetimes,
        missing values in integer columns); the columns at fault are named.
    """
    pd = require("pandas")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Expected pandas.DataFrame, got {type(df).__name__}")
    dtypes = {str(c): df[c].iloc[:0].to_numpy().dtype for c in df.columns}
    bad = [f"{c} ({t})" for c, t in dtypes.items() if not is_storable(t)]
    if bad:
        raise ValueError(f"Unsupported dtype: DataFrame column(s) {', '.join(bad)}")
    dtype = np.result_type(*dtypes.values()) if dtypes else np.dtype(np.float64)
    step = chunk_rows(dtype.itemsize * max(1, df.shape[1]), int(chunk_size))
    with Import(output_path, drop_if_exists, keep_open=return_npk_obj) as imp:
        sink = imp.array(array_name, dtype, (df.shape[1],))
        if len(df) == 0:
            sink.write(np.empty((0, df.shape[1]), dtype))
        for start in range(0, len(df), step):
            with naming("<DataFrame>", f"rows {start}-{min(start + step, len(df)) - 1}"):
                sink.write(df.iloc[start : start + step].to_numpy(dtype=dtype))
    return imp.result


def to_dataframe(
    input_path: SourceLike,
    array_name: str | None = None,
    columns: list[str] | None = None,
) -> Any:
    """Export one array as a DataFrame.

    A 2-d array gets the columns ``col0..`` (or ``columns``); a 1-d or 0-d array one column
    ``data``; a 3-d or higher array is flattened to ``(rows, -1)``.
    """
    pd = require("pandas")
    with Source(input_path) as src:
        name = src.single(array_name)
        a = src.load(name)
    if a.ndim <= 1:
        return pd.DataFrame(a.reshape(-1, 1), columns=columns or ["data"], copy=False)
    a = a.reshape(a.shape[0], -1)
    cols = columns if columns is not None else [f"col{i}" for i in range(a.shape[1])]
    return pd.DataFrame(a, columns=cols, copy=False)
