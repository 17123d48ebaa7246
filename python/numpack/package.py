"""``.npkg`` packages: a whole store in one file (``pack``, ``unpack``, ``get_package_info``).

The byte layout is the published NumPack version 2 (version 3 with ``shuffle=True``), so
packages move both ways.  The work is done in Rust, streaming member by member through bounded
buffers; this module only resolves paths and defaults.
"""

from __future__ import annotations

import operator
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .snapshot import Snapshot

__all__ = ["get_package_info", "pack", "unpack"]

ProgressCallback = Callable[[int, int], None]


def pack(
    source: str | os.PathLike[str] | Snapshot,
    target: str | os.PathLike[str] | None = None,
    compression: bool = True,
    overwrite: bool = False,
    *,
    level: int = 3,
    shuffle: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Pack the store directory ``source`` into one ``.npkg`` file.

    Parameters
    ----------
    source : path-like or Snapshot
        The store directory (must hold ``metadata.npkm``), or a ``Snapshot`` of one: its
        version is packed (copied first into a temporary store beside the target, which needs
        that much free space, and removed after).
    target : path-like, optional
        The package file; default ``<source>.npkg`` beside the store (``<source>.v<N>.npkg``
        for a snapshot of version N).  ``.npkg`` is appended when the name has no suffix.
    compression : bool, default True
        zstd-compress each member (members that do not shrink are stored raw).
    overwrite : bool, default False
        Replace an existing target.
    level : int, default 3
        zstd level, 1 to 22 (each large member uses the cheapest level up to this one that
        compresses its samples as well, see docs/FORMAT.md).
    shuffle : bool, default False
        Byte-shuffle numeric data by item size before compressing: a markedly better ratio
        for floating-point data.  Writes format version 3, which older readers reject.
    progress : callable, optional
        Called as ``progress(bytes_done, bytes_total)``.

    Returns
    -------
    pathlib.Path
        The package written.  The store lock is held while reading, so the package is one
        consistent state of the store; the file is written to a temporary name, fsynced and
        renamed.

    Raises
    ------
    ValueError
        ``source`` is missing, not a directory, or has no ``metadata.npkm``; ``level`` is
        not 1 to 22.
    FileExistsError
        ``target`` exists and ``overwrite`` is false.
    """
    if isinstance(source, Snapshot):
        return _pack_version(source, target, compression, overwrite, level, shuffle, progress)
    src = Path(source)
    if not src.exists():
        raise ValueError(f"Source path does not exist: {src}")
    if not src.is_dir():
        raise ValueError(f"Source path is not a directory: {src}")
    if not (src / "metadata.npkm").is_file():
        raise ValueError(f"Not a NumPack store (no metadata.npkm): {src}")
    if target is None:
        dst = src.parent / f"{src.name}.npkg"
    else:
        dst = Path(target)
        if not dst.suffix:
            dst = dst.with_name(dst.name + ".npkg")
    lvl = _check_level(level)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"Target file already exists: {dst} (pass overwrite=True)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    _core.pack(str(src), str(dst), bool(compression), lvl, bool(shuffle), progress)
    return dst


def _check_level(level: int) -> int:
    try:
        lvl = operator.index(level)
    except TypeError:
        raise TypeError(f"level must be an int, not {type(level).__name__}") from None
    if isinstance(level, bool) or not 1 <= lvl <= 22:
        raise ValueError(f"level must be a zstd level from 1 to 22, got {level!r}")
    return lvl


def _pack_version(
    snap: Snapshot,
    target: str | os.PathLike[str] | None,
    compression: bool,
    overwrite: bool,
    level: int,
    shuffle: bool,
    progress: ProgressCallback | None,
) -> Path:
    """``pack`` of a snapshot: its arrays copied, in chunks, into a temporary store beside
    the target, which is then packed and removed."""
    from .io._chunks import Import, chunk_rows  # the streaming import helper

    if snap.closed:
        raise ValueError("the snapshot is closed; open a new one with snapshot()")
    _check_level(level)
    src = snap.path
    dst = Path(target) if target is not None else src.parent / f"{src.name}.v{snap.version}"
    if not dst.suffix or target is None:
        dst = dst.with_name(dst.name + ".npkg")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"Target file already exists: {dst} (pass overwrite=True)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".numpack-pack-", dir=dst.parent))
    try:
        store = tmp / "store.npk"
        with Import(store) as imp:
            for name in snap.get_member_list():
                shape = snap.get_shape(name)
                if not shape:
                    imp.save(name, snap.load(name))
                    continue
                dtype = np.dtype(snap._core.dtype(name))
                sink = imp.array(name, dtype, tuple(shape[1:]))
                row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
                step = chunk_rows(row, 64 << 20)
                if shape[0] == 0:
                    sink.write(snap._core.read_range(name, 0, 0))
                for start in range(0, shape[0], step):
                    sink.write(snap._core.read_range(name, start, min(start + step, shape[0])))
        return pack(store, dst, compression, overwrite, level=level, shuffle=shuffle,
                    progress=progress)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _default_target(src: Path) -> Path:
    stem = src.stem
    return src.parent / (stem if stem.endswith(".npk") else f"{stem}.npk")


def unpack(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    verify: bool = True,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Unpack a ``.npkg`` file into a store directory.

    Everything is written into a temporary directory beside the target and renamed into place
    only when every member decoded to its declared size and (with ``verify``) the checksum
    matched: a failed unpack leaves nothing behind and never touches an existing target.

    Parameters
    ----------
    source : path-like
        The package file.
    target : path-like, optional
        The store directory; default: ``x.npkg`` → ``x.npk``, ``data.npk.npkg`` → ``data.npk``.
    overwrite : bool, default False
        Replace an existing target (only by a complete, checked store).
    verify : bool, default True
        Check the CRC32 checksum.
    progress : callable, optional
        Called as ``progress(bytes_done, bytes_total)``.

    Returns
    -------
    pathlib.Path
        The store directory.

    Raises
    ------
    ValueError
        Missing source, not a package (``Invalid .npkg file``), unsupported version, hostile
        or malformed members (``CorruptStoreError``, a ``ValueError``).
    FileExistsError
        ``target`` exists and ``overwrite`` is false.
    RuntimeError
        ``Checksum verification failed``.
    """
    src = Path(source)
    if not src.is_file():
        raise ValueError(f"Package file does not exist or is not a file: {src}")
    dst = Path(target) if target is not None else _default_target(src)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"Target already exists: {dst} (pass overwrite=True)")
    _core.unpack(str(src), str(dst), bool(overwrite), bool(verify), progress)
    return dst


def get_package_info(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a package without extracting it.

    Returns
    -------
    dict
        ``version``, ``compression`` (int), ``compression_name`` (``'zstd'`` or ``'none'``),
        ``file_count``, ``files`` (``name``, ``original_size``, ``compressed_size``,
        ``actual_size``), ``total_original_size``, ``total_compressed_size`` (bytes stored)
        and ``compression_ratio`` (stored / original, 1.0 for an empty package).
    """
    src = Path(source)
    if not src.is_file():
        raise ValueError(f"Package file does not exist or is not a file: {src}")
    info = _core.package_info(str(src))
    files = [
        {k: f[k] for k in ("name", "original_size", "compressed_size", "actual_size")}
        for f in info["files"]
    ]
    original = sum(f["original_size"] for f in files)
    stored = sum(f["actual_size"] for f in files)
    return {
        "version": info["version"],
        "compression": info["compression"],
        "compression_name": "zstd" if info["compression"] == 1 else "none",
        "file_count": len(files),
        "files": files,
        "total_original_size": original,
        "total_compressed_size": stored,
        "compression_ratio": stored / original if original else 1.0,
    }
