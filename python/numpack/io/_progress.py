"""``progress=True``: a ``tqdm`` bar when tqdm is installed, nothing otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .._deps import optional

__all__ = ["Progress"]


class Progress:
    """A progress bar over ``total`` units (bytes or rows), or a no-op.

    Parameters
    ----------
    enabled : bool
        Show a bar (only when ``tqdm`` is installed).
    total : int or None
        Units expected, if known.
    desc : str
        Label of the bar.
    unit : str, optional
        ``"B"`` (bytes, scaled) or ``"rows"``.
    """

    def __init__(self, enabled: bool, total: int | None, desc: str, unit: str = "B") -> None:
        self._bar: Any = None
        if enabled:
            tqdm = optional("tqdm")
            if tqdm is not None:
                self._bar = tqdm.tqdm(
                    total=total, desc=desc, unit=unit, unit_scale=unit == "B", leave=False
                )

    def update(self, n: int) -> None:
        """Advance the bar by ``n`` units."""
        if self._bar is not None and n:
            self._bar.update(int(n))

    def close(self) -> None:
        """Remove the bar."""
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
        self.close()
