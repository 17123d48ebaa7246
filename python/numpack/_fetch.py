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
under ``packages/``, private to its user (mode 0700; a cache directory owned by someone else is
refused); it may be removed whenever no job reads from it. An object whose file system reports
nothing that changes with its contents (no ETag, version, generation or modification time) is
fetched again by every job, under a key of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["Package", "cache_dir", "open_snapshot"]

# fsspec `info` keys that change when an object is replaced, most specific first.
_IDENTITY_KEYS = ("VersionId", "generation", "ETag", "etag", "md5Hash", "mtime", "LastModified",
                  "created")  # fmt: skip
#: The identity of an object whose file system reports none: unique to one job.
_NO_IDENTITY = "job:"


def cache_dir() -> Path:
    """Where fetched packages are unpacked (``$NUMPACK_CACHE_DIR`` or ``~/.cache/numpack``)."""
    root = os.environ.get("NUMPACK_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "numpack"


def _identity(info: dict[str, Any]) -> str:
    return next((str(info[k]) for k in _IDENTITY_KEYS if info.get(k) is not None), "")


def _private_dir(path: Path) -> Path:
    """``path`` created (mode 0700) if missing; refused unless it is a directory of this
    user's that no one else can write (another user could plant a store in it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"the package cache {path} is not a private directory of this user (mode 0700); "
            "remove it or set NUMPACK_CACHE_DIR"
        )
    return path


def _sync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (a cached store outlives a power loss
    whole, or its marker is not there)."""
    for d, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(d, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        fs, path = _filesystem(url, opts)
        if not fs.isfile(path):
            raise FileNotFoundError(f"no packed store (.npkg) at {url}")
        info = fs.info(path)
        identity = _identity(info) or f"{_NO_IDENTITY}{uuid.uuid4().hex}"
        return cls(url, int(info.get("size") or -1), identity, opts)

    @property
    def key(self) -> str:
        """The cache directory's name: a hash of the URL, the file system's options (two
        endpoints may serve one URL) and the object's identity, so no URL names a path."""
        opts = json.dumps(self.storage_options, sort_keys=True, default=repr)
        text = f"{self.url}\0{opts}\0{self.size}\0{self.identity}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def local(self) -> Path:
        """The unpacked store of this object on this machine, fetched if not there yet."""
        _private_dir(cache_dir())
        root = _private_dir(cache_dir() / "packages")
        here = root / self.key
        done = here / "store"
        if (here / "complete").is_file():
            return done
        with _locked(root / f"{self.key}.lock"):
            if (here / "complete").is_file():
                return done
            # What a fetcher killed midway left (its temporary directory, a partial store).
            for left in root.glob(f"{self.key}.*"):
                if left.is_dir() and not left.is_symlink():
                    shutil.rmtree(left, ignore_errors=True)
            shutil.rmtree(here, ignore_errors=True)
            self._fetch(root, here)
        return done

    def _fetch(self, root: Path, here: Path) -> None:
        from .package import unpack

        fs, path = _filesystem(self.url, self.storage_options)
        with tempfile.TemporaryDirectory(prefix=f"{self.key}.", dir=root) as tmp:
            self._check(fs.info(path))
            pkg = Path(tmp) / "package.npkg"
            fs.get_file(path, str(pkg))
            # Replaced while it was read: the bytes may mix two objects.
            self._check(fs.info(path))
            if self.size >= 0 and pkg.stat().st_size != self.size:
                raise RuntimeError(
                    f"{self.url} gave {pkg.stat().st_size} bytes, not the {self.size} it had "
                    "when the job began; run the job again"
                )
            unpack(pkg, Path(tmp) / "out" / "store")
            pkg.unlink()
            _sync_tree(Path(tmp) / "out")
            (Path(tmp) / "out" / "complete").write_bytes(b"")
            _sync_tree(Path(tmp) / "out")
            os.rename(Path(tmp) / "out", here)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _check(self, info: dict[str, Any]) -> None:
        size = int(info.get("size") or -1)
        same = self.identity.startswith(_NO_IDENTITY) or _identity(info) == self.identity
        if size != self.size or not same:
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


def _filesystem(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """fsspec's file system of ``url`` (chained URLs such as ``simplecache::s3://`` too) with
    these options, and the path on it; its listing cache is dropped, so a replaced object is
    seen."""
    from ._deps import require

    fsspec = require("fsspec")
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    fs.invalidate_cache()
    return fs, path
