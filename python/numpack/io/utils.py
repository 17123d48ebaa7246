"""Size helpers and the constants shared by every conversion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CHUNK_SIZE",
    "LARGE_FILE_THRESHOLD",
    "estimate_chunk_rows",
    "get_file_size",
    "is_large_file",
]

#: Inputs above this size (bytes) count as "large" (1 GiB), as in numpack 0.6.
LARGE_FILE_THRESHOLD = 1 << 30

#: Bytes per chunk of every streamed conversion: 64 MiB (numpack 0.6 documented 100 MiB).
#: Peak extra memory of a conversion stays below about ``2 * chunk_size + 64 MB``.
DEFAULT_CHUNK_SIZE = 64 << 20

#: Rows per batch where a row count rather than a byte count is asked for.
DEFAULT_BATCH_ROWS = 100_000


def get_file_size(path: str | os.PathLike[str]) -> int:
    """Size of a file in bytes; for a directory the sum over all files below it.

    Parameters
    ----------
    path : str or os.PathLike
        A file or directory.

    Returns
    -------
    int
        The size; ``0`` if ``path`` does not exist.
    """
    p = Path(os.fspath(path))
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        total = 0
        for root, _dirs, files in os.walk(p):
            for f in files:
                try:
                    total += (Path(root) / f).stat().st_size
                except OSError:
                    pass
        return total
    return 0


def is_large_file(path: str | os.PathLike[str], threshold: int = LARGE_FILE_THRESHOLD) -> bool:
    """Whether :func:`get_file_size` of ``path`` exceeds ``threshold`` bytes."""
    return get_file_size(path) > threshold


def estimate_chunk_rows(
    shape: tuple[int, ...], dtype: Any, target_chunk_bytes: int = DEFAULT_CHUNK_SIZE
) -> int:
    """Rows of an array of ``shape`` and ``dtype`` that fit in ``target_chunk_bytes``.

    Parameters
    ----------
    shape : tuple of int
        The array shape.
    dtype : numpy.dtype
        Its element type.
    target_chunk_bytes : int, optional
        Bytes per chunk.

    Returns
    -------
    int
        ``1`` for a 0-d shape; ``100000`` when a row holds no bytes; otherwise
        ``min(max(1, target_chunk_bytes // row_bytes), shape[0], 1_000_000)``, so ``0`` for
        a shape with 0 rows.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1
    itemsize = np.dtype(dtype).itemsize
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * itemsize if len(shape) > 1 else itemsize
    if row_bytes == 0:
        return 100_000
    return min(max(1, int(target_chunk_bytes) // row_bytes), shape[0], 1_000_000)
