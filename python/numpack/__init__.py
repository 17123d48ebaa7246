"""numpack: a store of named NumPy arrays with a Rust core.

Arrays live in a directory (``*.npk``), one data file each; rows can be appended, replaced and
deleted in place, and arrays can be read eagerly, memory-mapped (``LazyArray``) or streamed.

>>> import numpy as np, tempfile, os
>>> import numpack
>>> with numpack.NumPack(os.path.join(tempfile.mkdtemp(), "demo.npk")) as npk:
...     npk.save({"x": np.zeros((2, 3), dtype=np.float32)})
...     npk.append({"x": np.ones((1, 3), dtype=np.float32)})
...     npk.get_shape("x")
(3, 3)
"""

from __future__ import annotations

import gc

from . import vector_engine
from .batch import BatchModeContext, WritableBatchMode
from .exceptions import (
    ArrayNotFoundError,
    CorruptStoreError,
    DependencyError,
    DtypeMismatchError,
    IndexOutOfRangeError,
    StoreLockedError,
)
from .lazy_array import LazyArray
from .numpack import NumPack
from .package import get_package_info, pack, unpack
from .snapshot import Snapshot, SnapshotArray

__version__ = "0.6.0"

__all__ = [
    "ArrayNotFoundError",
    "BatchModeContext",
    "CorruptStoreError",
    "DependencyError",
    "DtypeMismatchError",
    "IndexOutOfRangeError",
    "LazyArray",
    "NumPack",
    "Snapshot",
    "SnapshotArray",
    "StoreLockedError",
    "get_package_info",
    "pack",
    "unpack",
    "vector_engine",
    "WritableBatchMode",
    "__version__",
    "force_cleanup_windows_handles",
]


def __getattr__(name: str) -> object:
    # `numpack.io` after a bare `import numpack`, without importing it (and its optional
    # libraries' probes) for users who never convert.
    if name == "io":
        import importlib

        return importlib.import_module(".io", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def force_cleanup_windows_handles() -> bool:
    """Run the garbage collector so that unreferenced memory maps release their files.

    Useful on Windows, where a mapped file cannot be deleted; harmless elsewhere.

    Returns
    -------
    bool
        Always ``True``.
    """
    gc.collect()
    return True
