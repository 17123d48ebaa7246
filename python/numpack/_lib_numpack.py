"""Compatibility names for code that imported the published package's native module
(``numpack._lib_numpack``): the same classes as the public ``numpack`` API."""

from __future__ import annotations

from . import vector_engine
from .lazy_array import LazyArray
from .numpack import NumPack
from .vector_engine import StreamingVectorEngine, VectorEngine

__all__ = [
    "LazyArray",
    "NumPack",
    "StreamingVectorEngine",
    "VectorEngine",
    "force_cleanup_windows_handles",
    "vector_engine",
]


def force_cleanup_windows_handles() -> bool:
    """As ``numpack.force_cleanup_windows_handles``."""
    from . import force_cleanup_windows_handles as cleanup

    return cleanup()
