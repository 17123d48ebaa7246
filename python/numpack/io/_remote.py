"""fsspec URLs (``s3://``, ``gs://``, ``memory://``, ``file://``) for the foreign-format side
of every conversion.

A remote input is downloaded (streamed by fsspec, in blocks) to a temporary directory under
its own file name, so the importer names the array after the object's stem; a remote output
is written to a temporary local file and uploaded when it is complete (multipart for large
objects). Stores themselves stay local directories: they are memory-mapped.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from .._deps import require

__all__ = ["is_url", "local_input", "local_output", "remote_path", "upload"]

F = TypeVar("F", bound=Callable[..., Any])


def _text(path: Any) -> str | None:
    if isinstance(path, (str, os.PathLike)):
        s = os.fspath(path)
        return s if isinstance(s, str) else None
    return None


def is_url(path: Any) -> bool:
    """Whether ``path`` is an fsspec URL other than ``file://``."""
    s = _text(path)
    if s is None or "://" not in s:
        return False
    scheme = s.split("://", 1)[0].lower()
    return scheme not in ("file", "local") and scheme.replace("+", "").replace("-", "").isalnum()


def _local(path: Any) -> Any:
    """``file://`` URLs as plain local paths; anything else unchanged."""
    s = _text(path)
    if s is not None and s.lower().startswith(("file://", "local://")):
        return unquote(urlparse(s).path)
    return path


def _fs(url: str, fs: Any = None) -> tuple[Any, str]:
    if fs is not None:
        return fs, fs._strip_protocol(url)
    fsspec = require("fsspec")
    return fsspec.core.url_to_fs(url)


@contextlib.contextmanager
def local_input(url: str, fs: Any = None) -> Iterator[Path]:
    """Download ``url`` (a file or a directory such as a Zarr group) under its own name into a
    temporary directory; yield the local path; remove it afterwards."""
    fs, path = _fs(url, fs)
    if not fs.exists(path):
        raise FileNotFoundError(f"File not found: {url}")
    name = posixpath.basename(path.rstrip("/")) or "data"
    with tempfile.TemporaryDirectory(prefix="numpack-io-") as tmp:
        local = Path(tmp) / name
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(local), recursive=True)
        else:
            fs.get(path, str(local))
        yield local


@contextlib.contextmanager
def local_output(url: str, fs: Any = None) -> Iterator[Path]:
    """Yield a temporary local path named like ``url``; upload it there when the block
    succeeds (an existing object or directory at ``url`` is replaced)."""
    fs, path = _fs(url, fs)
    name = posixpath.basename(path.rstrip("/")) or "data"
    with tempfile.TemporaryDirectory(prefix="numpack-io-") as tmp:
        local = Path(tmp) / name
        yield local
        if local.is_dir():
            if fs.exists(path):
                fs.rm(path, recursive=True)
            fs.put(str(local) + "/", path.rstrip("/"), recursive=True)
        else:
            upload(local, fs, path)


#: Smallest part of a streamed upload (S3 multipart parts are at least 5 MiB, at most 10000).
UPLOAD_PART = 8 << 20


def upload(local: Path, fs: Any, path: str) -> None:
    """Stream the file ``local`` to ``path`` on ``fs`` one part at a time (a multipart
    upload on S3), so memory holds one part whatever the file size."""
    part = max(UPLOAD_PART, -(-local.stat().st_size // 9000))
    with open(local, "rb") as f, fs.open(path, "wb", block_size=part) as out:
        shutil.copyfileobj(f, out, 1 << 20)


def remote_path(arg: str, direction: str) -> Callable[[F], F]:
    """Decorator: let argument ``arg`` of a conversion be an fsspec URL.

    ``direction`` is ``"in"`` (the function reads that file) or ``"out"`` (it writes it).
    """
    if direction not in ("in", "out"):
        raise ValueError(direction)

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            value = bound.arguments.get(arg)
            if not is_url(value):
                if arg in bound.arguments:
                    bound.arguments[arg] = _local(value)
                return fn(*bound.args, **bound.kwargs)
            cm = local_input if direction == "in" else local_output
            with cm(str(value)) as local:
                bound.arguments[arg] = str(local)
                return fn(*bound.args, **bound.kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
