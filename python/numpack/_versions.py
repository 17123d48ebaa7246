"""The versions API of ``NumPack`` (``version``, ``snapshot``, ``versions``, tags,
``restore``, the history setting and ``gc``): a mixin over the handle's store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _core
from ._indexing import check_name
from .snapshot import Snapshot

if TYPE_CHECKING:
    from .batch import BatchModeContext

__all__ = ["VersionsMixin"]


class VersionsMixin:
    """Versions of the store a ``NumPack`` handle has open."""

    _path: Path
    _snap: Snapshot | None
    _batch: BatchModeContext | None

    if TYPE_CHECKING:

        def _core_store(self) -> _core.Store: ...
        def _writer(self) -> _core.Store: ...
        def _pinned(self) -> Snapshot | None: ...
        def _settle(self, names: list[str]) -> None: ...
        def _settled(self, names: list[str]) -> None: ...
        def get_member_list(self) -> list[str]: ...

    @property
    def version(self) -> int:
        """The version this handle reads: the store's current one, or the pinned one."""
        snap = self._pinned()
        if snap is not None:
            return snap.version
        return int(self._core_store().version())

    def snapshot(self, version: int | None = None, tag: str | None = None) -> Snapshot:
        """Pin a version for reading while others write (see ``numpack.snapshot``).

        Parameters
        ----------
        version : int or None
            The version to read (history must keep it); ``None`` is the current one.
        tag : str or None
            A tag naming the version, instead of ``version``.

        Examples
        --------
        >>> with npk.snapshot() as snap:       # doctest: +SKIP
        ...     x = snap.load("x")             # the same version, whatever others commit
        """
        store = self._core_store()
        if tag is not None:
            if version is not None:
                raise ValueError("give version or tag, not both")
            version = store.tagged(tag)
        elif version is None and self._snap is not None:
            version = self._snap.version
        return Snapshot(self._path, store.snapshot(version))

    def versions(self) -> list[dict[str, Any]]:
        """Every readable version, oldest first, the current one last: dicts with
        ``version``, ``time`` (seconds since the epoch, ``None`` when unknown),
        ``operation``, ``arrays`` (touched), ``bytes_kept`` (what history keeps to read the
        version before it), ``tags`` and ``aborted`` (an interrupted mutation whose state
        equals the version before)."""
        out = []
        for v, t, op, arrays, kept, tags, aborted in self._core_store().versions():
            out.append(
                {
                    "version": v,
                    "time": t / 1e6 if t else None,
                    "operation": op or None,
                    "arrays": list(arrays),
                    "bytes_kept": kept,
                    "tags": list(tags),
                    "aborted": aborted,
                }
            )
        return out

    def tag(self, name: str, version: int | None = None) -> int:
        """Name ``version`` (the current one when ``None``); history keeps a tagged version
        until ``untag``.  Returns the version tagged."""
        return int(self._writer().tag(check_name(name, "tag"), version))

    def untag(self, name: str) -> None:
        """Remove a tag."""
        self._writer().untag(check_name(name, "tag"))

    def tags(self) -> dict[str, int]:
        """Tags and the versions they name."""
        return dict(self._core_store().tags())

    def restore(self, version: int | str) -> int:
        """Make the current state equal to ``version`` (or a tag's version) as one new
        commit; the versions in between stay in history.  Returns the new version."""
        store = self._writer()
        self._settle(self.get_member_list())
        v = store.tagged(version) if isinstance(version, str) else version
        new = int(store.restore(v))
        self._settled(list(self._batch._cache) if self._batch is not None else [])
        return new

    def set_history(self, keep_last: int) -> None:
        """Keep the last ``keep_last`` versions from now on (persisted in the store; 0,
        the default of a new store, keeps none: snapshots still work)."""
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValueError(f"keep_last must be an int >= 0, not {keep_last!r}")
        self._writer().set_history(keep_last)

    def history(self) -> int:
        """The store's ``keep_last`` setting."""
        return int(self._core_store().history_setting())

    def gc(self, keep_last: int | None = None, older_than: float | None = None) -> dict[str, int]:
        """Collect history: versions beyond the last ``keep_last`` (the store's setting
        when ``None``) and, with ``older_than``, older than that many seconds, stop being
        readable.  Versions an open snapshot (of any process) or a tag reads are kept.
        Returns ``versions_removed``, ``bytes_freed`` and ``oldest`` (readable version)."""
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
        ):
            raise ValueError(f"keep_last must be an int >= 0, not {keep_last!r}")
        age = None
        if older_than is not None:
            if not isinstance(older_than, (int, float)) or older_than < 0:
                raise ValueError(f"older_than must be seconds >= 0, not {older_than!r}")
            age = int(older_than * 1e6)
        removed, freed, oldest = self._writer().gc(keep_last, age)
        return {"versions_removed": removed, "bytes_freed": freed, "oldest": oldest}
