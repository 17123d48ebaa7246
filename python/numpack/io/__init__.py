"""Conversions between numpack stores and other formats, streamed with bounded memory.

Every importer writes through an all-or-nothing import (a failure leaves the store exactly as
it was) and every exporter through a temporary file renamed into place; both stream in
chunks of about ``chunk_size`` bytes, so files larger than memory convert. The libraries of
the formats are optional (``pip install numpack[parquet]``, ``[hdf5]``, ``[zarr]``,
``[torch]``, ``[safetensors]``, ``[s3]``, ``[all]``) and imported only when used.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from .._deps import DependencyError
from ..package import get_package_info, pack, unpack
from .arrow import from_parquet_table, from_table, to_parquet_table, to_table
from .csv import from_csv, from_txt, to_csv, to_txt
from .feather import from_feather, from_feather_file, to_feather, to_feather_file
from .hdf5 import from_hdf5, to_hdf5
from .npy import from_npy, to_npy
from .pandas import from_dataframe, to_dataframe
from .parquet import from_parquet, from_parquet_file, to_parquet, to_parquet_file
from .s3 import from_s3, to_s3
from .safetensors import (
    from_safetensors_file,
    from_tensor_dict,
    get_safetensors_metadata,
    iter_safetensors,
    to_safetensors_file,
    to_tensor_dict,
)
from .torch import from_pt, from_tensor, to_pt, to_tensor
from .utils import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CHUNK_SIZE,
    LARGE_FILE_THRESHOLD,
    estimate_chunk_rows,
    get_file_size,
    is_large_file,
)
from .zarr import from_zarr, to_zarr
from .zero_copy import (
    DLPackBuffer,
    ZeroCopyArray,
    arrow_to_numpy_zero_copy,
    from_dlpack,
    numpy_to_arrow_zero_copy,
    numpy_to_torch_zero_copy,
    table_to_numpy_zero_copy,
    to_dlpack,
    torch_to_numpy_zero_copy,
    wrap_for_zero_copy,
)


def _deprecated(alias: str, target: Callable[..., Any]) -> Callable[..., Any]:
    """``alias`` of ``target`` that emits the 0.6 ``DeprecationWarning`` on each call."""

    @functools.wraps(target)
    def call(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{alias}() is deprecated and will be removed in version 0.6.0. "
            f"Use {target.__name__}() instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return target(*args, **kwargs)

    call.__name__ = call.__qualname__ = alias
    call.__doc__ = f"Deprecated alias of :func:`{target.__name__}`."
    return call


from_numpy = _deprecated("from_numpy", from_npy)
to_numpy = _deprecated("to_numpy", to_npy)
from_arrow = _deprecated("from_arrow", from_table)
to_arrow = _deprecated("to_arrow", to_table)
from_pandas = _deprecated("from_pandas", from_dataframe)
to_pandas = _deprecated("to_pandas", to_dataframe)
from_torch = _deprecated("from_torch", from_tensor)
to_torch = _deprecated("to_torch", to_tensor)
from_torch_file = _deprecated("from_torch_file", from_pt)
to_torch_file = _deprecated("to_torch_file", to_pt)
from_pytorch = _deprecated("from_pytorch", from_pt)
to_pytorch = _deprecated("to_pytorch", to_pt)
from_safetensors = _deprecated("from_safetensors", from_tensor_dict)
to_safetensors = _deprecated("to_safetensors", to_tensor_dict)

#: The 70 public names of numpack 0.6's ``numpack.io``, in its order.
__all__ = [
    "DependencyError", "get_file_size", "is_large_file", "estimate_chunk_rows",
    "from_npy", "to_npy", "from_numpy", "to_numpy",
    "from_csv", "to_csv", "from_txt", "to_txt",
    "from_hdf5", "to_hdf5", "from_zarr", "to_zarr",
    "from_parquet", "to_parquet", "from_parquet_file", "to_parquet_file",
    "from_parquet_table", "to_parquet_table",
    "from_feather", "to_feather", "from_feather_file", "to_feather_file",
    "from_table", "to_table", "from_arrow", "to_arrow",
    "from_dataframe", "to_dataframe", "from_pandas", "to_pandas",
    "from_pt", "to_pt", "from_torch_file", "to_torch_file", "from_pytorch", "to_pytorch",
    "from_tensor", "to_tensor", "from_torch", "to_torch",
    "from_safetensors_file", "to_safetensors_file", "from_tensor_dict", "to_tensor_dict",
    "from_safetensors", "to_safetensors", "get_safetensors_metadata", "iter_safetensors",
    "from_s3", "to_s3",
    "pack", "unpack", "get_package_info",
    "LARGE_FILE_THRESHOLD", "DEFAULT_CHUNK_SIZE", "DEFAULT_BATCH_ROWS",
    "DLPackBuffer", "to_dlpack", "from_dlpack",
    "numpy_to_arrow_zero_copy", "arrow_to_numpy_zero_copy", "table_to_numpy_zero_copy",
    "numpy_to_torch_zero_copy", "torch_to_numpy_zero_copy",
    "ZeroCopyArray", "wrap_for_zero_copy",
]  # fmt: skip
