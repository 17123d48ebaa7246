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
from .csv import from_csv, from_txt, to_csv, to_txt
from .npy import from_npy, to_npy
from .utils import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CHUNK_SIZE,
    LARGE_FILE_THRESHOLD,
    estimate_chunk_rows,
    get_file_size,
    is_large_file,
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

__all__ = [
    # utilities
    "DependencyError",
    "get_file_size",
    "is_large_file",
    "estimate_chunk_rows",
    # NumPy files
    "from_npy",
    "to_npy",
    "from_numpy",
    "to_numpy",
    # CSV / TXT
    "from_csv",
    "to_csv",
    "from_txt",
    "to_txt",
    # packages
    "pack",
    "unpack",
    "get_package_info",
    # constants
    "LARGE_FILE_THRESHOLD",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_BATCH_ROWS",
]
