"""Vector indexes of ``NumPack`` arrays (``create_index``, ``search`` and the rest): a mixin
over the handle's store. What can be indexed, the defaults, the maintenance in every commit
and the fallback to exact search live in the engine (``numpack::store::index``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from .vector_engine import _array, _metric

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["IndexMixin"]

IndexKind = Literal["ivf_flat", "ivf_pq"]


class IndexMixin:
    """Indexes of the store a ``NumPack`` handle has open."""

    if TYPE_CHECKING:

        def _core_store(self) -> _core.Store: ...
        def _writer(self) -> _core.Store: ...
        def _pinned(self) -> Snapshot | None: ...
        def _settle(self, names: list[str]) -> None: ...

    def create_index(
        self,
        array_name: str,
        metric: str = "cosine",
        kind: IndexKind = "ivf_flat",
        nlist: int | None = None,
        *,
        m: int | None = None,
        train_rows: int | None = None,
        iters: int | None = None,
        seed: int | None = None,
    ) -> None:
        """Build an IVF index of a 2-d float32 array, replacing any it has.

        From then on every ``append``, ``replace``, ``drop`` and ``update`` of the array keeps
        the index up to date in its own commit: searches never return a deleted, stale or
        duplicate row, and their scores are exact.

        Parameters
        ----------
        array_name : str
            The array (2-d float32).
        metric : {"cosine", "dot", "l2", "l2sq"}
            What the index ranks by.
        kind : {"ivf_flat", "ivf_pq"}
            Inverted lists with float32 copies of the vectors (``ivf_flat``), or with ``m``
            bytes per row: product-quantised codes of each vector's residual to its list's
            centroid (``ivf_pq``; cosine or dot), for an index about ``4 * dim / m`` times
            smaller. Either way the best candidates are rescored exactly from the array.
        nlist : int, optional
            Lists (k-means centroids); default about ``sqrt(rows)``.
        m : int, optional
            PQ sub-spaces (must divide the vectors' width); default ``dim // 8``.
        train_rows, iters, seed : int, optional
            k-means sample size (default 262144), Lloyd iterations (10) and seed (fixed).
        """
        store = self._writer()
        self._settle([array_name])
        _core.index_create(
            store, array_name, _metric(metric), kind, nlist, m, train_rows, iters, seed
        )

    def reindex(
        self,
        array_name: str,
        nlist: int | None = None,
        *,
        train_rows: int | None = None,
        iters: int | None = None,
        seed: int | None = None,
    ) -> None:
        """Train the array's index again on its rows as they are now (same metric; same
        number of lists unless ``nlist`` is given): when ``index_info(...)["imbalance"]``
        has drifted up, or the index is stale (``"current"`` is False)."""
        store = self._writer()
        self._settle([array_name])
        _core.index_rebuild(store, array_name, nlist, train_rows, iters, seed)

    def drop_index(self, array_name: str) -> bool:
        """Remove the array's index; whether it had one."""
        return _core.index_drop(self._writer(), array_name)

    def index_info(self, array_name: str) -> dict[str, Any] | None:
        """The array's index: ``kind``, ``metric``, ``nlist``, ``dim``, ``listed`` rows,
        ``imbalance`` (largest list over the mean), ``current`` (False when a writer that
        ignores indexes changed the array: searches are then exact until ``reindex``),
        ``base_bytes`` and ``log_bytes``. ``None`` without an index."""
        store = self._core_store()
        self._settle([array_name])
        return _core.index_info(store, array_name)

    def search(
        self,
        array_name: str,
        queries: Any,
        k: int = 10,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
        metric: str | None = None,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """The ``k`` best logical rows for each query, best first, with exact scores:
        ``(indices, scores)`` of shape ``(n_queries, min(k, rows))`` (a 1-d query gives
        ``(1, k')``, as ``multi_query_top_k`` does).

        Through the array's index when it has a current one (``metric`` left out, or its
        own), else, and with ``exact=True``, by the exact engine (``metric`` default
        cosine). ``nprobe`` lists are scanned (default ``max(8, nlist // 64)``) and
        ``k * refine`` candidates rescored exactly (default ``refine=2``; 10 for
        ``ivf_pq``). An index searches in float32: queries of another dtype are converted.
        On a handle opened at a version the search is exact, at that version.
        """
        q = _array(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2:
            raise ValueError(f"queries must be 1-d or 2-d, got {q.ndim}-d")
        m = None if metric is None else _metric(metric)
        source: Any = self._pinned()
        if source is None:
            source = self._core_store()
            self._settle([array_name])
        else:
            source = source._core
        idx, scores, _ = _core.index_search(
            source, array_name, q, k, m, nprobe, refine, bool(exact), None
        )
        return idx, scores
