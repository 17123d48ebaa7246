"""``progress=True``: a ``tqdm`` bar when tqdm is installed, nothing otherwise.

Every conversion counts what it moves with :meth:`Progress.update` as it goes, so copies that
are one call for the whole payload (kernel copies, ``torch.save``) are made in slices of at
most :data:`SLICE_BYTES` (see :func:`slices`), each reported when done. A bar never goes past
its total, and a conversion that succeeds ends it at exactly its total (:meth:`Progress.finish`,
called on leaving the ``with`` block without an exception). Finished bars stay on screen
(``leave=True``): a bar that vanished would look like one that never finished.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from .._deps import optional

__all__ = ["SLICE_BYTES", "Progress", "slices"]

#: Largest copy (bytes) between two progress updates. 32 MiB: a 256 MB copy reports eight
#: times, and a slice costs one more ``copy_file_range`` (or ``write``) call and file open,
#: a few microseconds against the ~10 ms it takes to move the slice.
SLICE_BYTES = 32 << 20


def slices(length: int, unit: int = 1, limit: int | None = None) -> Iterator[tuple[int, int]]:
    """Cut ``length`` bytes into consecutive ``(start, size)`` slices of whole units.

    Parameters
    ----------
    length : int
        Bytes to cover (a multiple of ``unit``).
    unit : int, optional
        Every slice but the last is a multiple of it (an array row, for a copy into a store).
    limit : int, optional
        Bytes per slice wanted by the caller (``chunk_size``); :data:`SLICE_BYTES` caps it.

    Yields
    ------
    tuple of int
        ``(start, size)``; nothing for ``length == 0``. Slices hold at least one unit.
    """
    cap = SLICE_BYTES if limit is None else min(int(limit), SLICE_BYTES)
    unit = max(1, int(unit))
    step = max(unit, cap // unit * unit)
    for start in range(0, int(length), step):
        yield start, min(step, int(length) - start)


class Progress:
    """A progress bar over ``total`` units (bytes, rows or files), or a no-op.

    The count is kept whether or not a bar is shown, and never exceeds ``total`` (a
    conversion whose total is an estimate waits at the total for :meth:`finish`). As a
    context manager, leaving the block normally calls :meth:`finish` and leaving it by an
    exception :meth:`close`, which leaves the bar where it stopped.

    Parameters
    ----------
    enabled : bool
        Show a bar (only when ``tqdm`` is installed).
    total : int or None
        Units expected, if known (see :meth:`set_total`).
    desc : str
        Label of the bar.
    unit : str, optional
        ``"B"`` (bytes, shown scaled: kB, MB, ...), ``"rows"`` or ``"files"``.
    """

    def __init__(self, enabled: bool, total: int | None, desc: str, unit: str = "B") -> None:
        self._n = 0
        self._total = None if total is None else max(0, int(total))
        self._bar: Any = None
        if enabled:
            tqdm = optional("tqdm")
            if tqdm is not None:
                self._bar = tqdm.tqdm(
                    total=self._total, desc=desc, unit=unit, unit_scale=unit == "B", leave=True
                )

    @property
    def n(self) -> int:
        """Units counted so far."""
        return self._n

    @property
    def total(self) -> int | None:
        """Units expected, or ``None`` when unknown."""
        return self._total

    def set_total(self, total: int | None) -> None:
        """Set the units expected once they are known (e.g. after a header is read).

        Parameters
        ----------
        total : int or None
            The new total; the count is cut down to it if it was already beyond.
        """
        self._total = None if total is None else max(0, int(total))
        if self._total is not None and self._n > self._total:
            self._n = self._total
        if self._bar is not None:
            self._bar.total = self._total
            self._bar.n = self._n
            self._bar.refresh()

    def update(self, n: int) -> None:
        """Count ``n`` more units (at most up to the total).

        Parameters
        ----------
        n : int
            Units just moved.
        """
        n = int(n)
        if self._total is not None:
            n = min(n, self._total - self._n)
        if n <= 0:
            return
        self._n += n
        if self._bar is not None:
            self._bar.update(n)

    def reset(self) -> None:
        """Count from zero again (a conversion that starts over, e.g. a CSV re-read)."""
        self._n = 0
        if self._bar is not None:
            self._bar.reset(total=self._total)

    def finish(self) -> None:
        """Show exactly the total (the count so far when the total is unknown), then
        :meth:`close`. Called when a conversion succeeds."""
        if self._total is None:
            self.set_total(self._n)
        else:
            self.update(self._total - self._n)
        if self._bar is not None and self._total == 0:
            # tqdm shows a total of 0 as unknown: a finished empty conversion shows 1/1.
            self._bar.total = self._bar.n = 1
            self._bar.refresh()
        self.close()

    def close(self) -> None:
        """Close the bar where it stands (it stays on screen). Idempotent."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()
