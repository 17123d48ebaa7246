"""Packed snapshots (``.npkg``) read from fsspec URLs by the distributed readers
(``numpack.dask``, ``numpack.ray``), so workers on machines that do not share the store's
file system read the same rows.

``Package.locate(url)`` names one object: its URL and what tells it from a later object at
the same URL (size and ETag, version id or modification time). The driver locates it once and
ships the ``Package`` to every task; a task calls ``local()``, which downloads the package and
unpacks it (checked like every unpack) into a per-machine cache, once per machine: the first
process fetches under a file lock, the others wait for it and reuse the store. A task that
finds a different object at the URL (it was replaced after the job began) raises rather than
mix two versions in one job.

The cache is ``$NUMPACK_CACHE_DIR`` (default ``~/.cache/numpack``), one directory per object
under ``packages/``; it may be removed whenever no job reads from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io._remote import _fs

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["Package", "cache_dir", "open_snapshot"]

# fsspec `info` keys that change when an object is replaced, most specific first.
_IDENTITY_KEYS = ("VersionId", "ETag", "etag", "md5Hash", "mtime", "LastModified", "created")


def cache_dir() -> Path:
    """Where fetched packages are unpacked (``$NUMPACK_CACHE_DIR`` or ``~/.cache/numpack``)."""
    root = os.environ.get("NUMPACK_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "numpack"


def _identity(info: dict[str, Any]) -> str:
    return next((str(info[k]) for k in _IDENTITY_KEYS if info.get(k) is not None), "")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Package:
    """One ``.npkg`` object at an fsspec URL (picklable: tasks fetch it themselves)."""

    url: str
    size: int
    identity: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def locate(cls, url: str, storage_options: dict[str, Any] | None = None) -> Package:
        """The object at ``url`` now (``FileNotFoundError`` when there is none)."""
        opts = dict(storage_options or {})
        fs, path = _fs(url, _filesystem(url, opts))
        if not fs.isfile(path):
            raise FileNotFoundError(f"no packed store (.npkg) at {url}")
        info = fs.info(path)
        return cls(url, int(info.get("size") or 0), _identity(info), opts)

    @property
    def key(self) -> str:
        """The cache directory's name: a hash, so no URL names a path."""
        text = f"{self.url}\0{self.size}\0{self.identity}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def local(self) -> Path:
        """The unpacked store of this object on this machine, fetched if not there yet."""
        root = cache_dir() / "packages"
        root.mkdir(parents=True, exist_ok=True)
        here = root / self.key
        done = here / "store"
        if (here / "complete").is_file():
            return done
        with _locked(root / f"{self.key}.lock"):
            if (here / "complete").is_file():
                return done
            shutil.rmtree(here, ignore_errors=True)
            self._fetch(root, here)
        return done

    def _fetch(self, root: Path, here: Path) -> None:
        from .package import unpack

        fs, path = _fs(self.url, _filesystem(self.url, self.storage_options))
        with tempfile.TemporaryDirectory(prefix=f"{self.key}.", dir=root) as tmp:
            self._check(fs.info(path))
            pkg = Path(tmp) / "package.npkg"
            fs.get_file(path, str(pkg))
            # Replaced while it was read: the bytes may mix two objects.
            self._check(fs.info(path))
            if pkg.stat().st_size != self.size:
                raise RuntimeError(
                    f"{self.url} gave {pkg.stat().st_size} bytes, not the {self.size} it had "
                    "when the job began; run the job again"
                )
            unpack(pkg, Path(tmp) / "out" / "store")
            pkg.unlink()
            (Path(tmp) / "out" / "complete").write_bytes(b"")
            os.rename(Path(tmp) / "out", here)

    def _check(self, info: dict[str, Any]) -> None:
        if int(info.get("size") or 0) != self.size or _identity(info) != self.identity:
            raise RuntimeError(
                f"the package at {self.url} was replaced after the job began (every task of "
                "a job reads one object); run the job again"
            )


def open_snapshot(
    path: str | os.PathLike[str] | None,
    url: str | None,
    storage_options: dict[str, Any] | None,
    version: int | None,
) -> Snapshot:
    """The snapshot a distributed reader reads: of the store at ``path`` at ``version``, or
    of the packed store at ``url`` (also when ``path`` is a URL)."""
    from .io._remote import is_url
    from .snapshot import Snapshot

    if path is not None and url is not None:
        raise TypeError("give the store's path or a package's url, not both")
    if url is None and is_url(path):
        url, path = os.fspath(path), None  # type: ignore[arg-type]
    if url is None:
        if path is None:
            raise TypeError("give the store's path, or url= of a packed store (.npkg)")
        if storage_options:
            raise TypeError("storage_options apply to url= only")
        return Snapshot.open(path, version)
    if version is not None:
        raise ValueError(
            "a packed store holds one version: version= does not apply to url= (pack the "
            "version wanted: numpack pack STORE@VERSION)"
        )
    return Snapshot.fetch(Package.locate(url, storage_options))


def _filesystem(url: str, storage_options: dict[str, Any]) -> Any:
    """fsspec's file system of ``url`` with these options (a fresh one: its cache of listings
    must not hide a replaced object)."""
    from ._deps import require

    fsspec = require("fsspec")
    protocol = url.split("://", 1)[0]
    return fsspec.filesystem(protocol, skip_instance_cache=True, **storage_options)
