"""fsspec URLs (``s3://``, ``gs://``, ``memory://``, ``file://``) for the foreign-format side
of every conversion.

A remote input is downloaded (streamed by fsspec, in blocks) to a temporary directory under
its own file name, so the importer names the array after the object's stem; a remote output
is written to a temporary local file and uploaded when it is complete (multipart for large
objects). Stores themselves stay local directories: they are memory-mapped.

With ``progress=True`` the transfer has its own bar ("download <name>", "upload <name>"):
bytes for a file, files for a directory (a Zarr group).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from .._deps import require
from ._progress import Progress

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


def _callback(bar: Progress) -> Any:
    """An fsspec transfer callback that moves ``bar`` (its size becomes the bar's total)."""
    callbacks = require("fsspec.callbacks")

    def hook(size: int | None, value: int, **_kw: Any) -> None:
        if size is not None and size != bar.total:
            bar.set_total(size)
        bar.update(value - bar.n)

    return callbacks.Callback(hooks={"progress": hook})


@contextlib.contextmanager
def local_input(url: str, fs: Any = None, progress: bool = False) -> Iterator[Path]:
    """Download ``url`` (a file or a directory such as a Zarr group) under its own name into a
    temporary directory; yield the local path; remove it afterwards."""
    fs, path = _fs(url, fs)
    if not fs.exists(path):
        raise FileNotFoundError(f"File not found: {url}")
    name = posixpath.basename(path.rstrip("/")) or "data"
    with tempfile.TemporaryDirectory(prefix="numpack-io-") as tmp:
        local = Path(tmp) / name
        if fs.isdir(path):
            with Progress(progress, None, f"download {name}", unit="files") as bar:
                fs.get(path.rstrip("/") + "/", str(local), recursive=True, callback=_callback(bar))
        else:
            with Progress(progress, fs.size(path), f"download {name}") as bar:
                fs.get_file(path, str(local), callback=_callback(bar))
        yield local


@contextlib.contextmanager
def local_output(url: str, fs: Any = None, progress: bool = False) -> Iterator[Path]:
    """Yield a temporary local path named like ``url``; upload it there when the block
    succeeds (an existing object or directory at ``url`` is replaced)."""
    fs, path = _fs(url, fs)
    name = posixpath.basename(path.rstrip("/")) or "data"
    with tempfile.TemporaryDirectory(prefix="numpack-io-") as tmp:
        local = Path(tmp) / name
        yield local
        if local.is_dir():
            files = sum(1 for p in local.rglob("*") if p.is_file())
            with Progress(progress, files, f"upload {name}", unit="files") as bar:
                if fs.exists(path):
                    fs.rm(path, recursive=True)
                fs.put(str(local) + "/", path.rstrip("/"), recursive=True, callback=_callback(bar))
        else:
            with Progress(progress, local.stat().st_size, f"upload {name}") as bar:
                upload(local, fs, path, bar)


#: Smallest part of a streamed upload (S3 multipart parts are at least 5 MiB, at most 10000).
UPLOAD_PART = 8 << 20


def upload(local: Path, fs: Any, path: str, bar: Progress | None = None) -> None:
    """Stream the file ``local`` to ``path`` on ``fs`` one part at a time (a multipart
    upload on S3), so memory holds one part whatever the file size; ``bar`` counts the
    bytes handed over (a part is sent as soon as it is full)."""
    part = max(UPLOAD_PART, -(-local.stat().st_size // 9000))
    with open(local, "rb") as f, fs.open(path, "wb", block_size=part) as out:
        while buf := f.read(1 << 20):
            out.write(buf)
            if bar is not None:
                bar.update(len(buf))


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
            with cm(str(value), progress=bool(bound.arguments.get("progress"))) as local:
                bound.arguments[arg] = str(local)
                return fn(*bound.args, **bound.kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
