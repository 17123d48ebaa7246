"""``LazyArray``: a read-only, memory-mapped view of one stored array.

A ``LazyArray`` holds what ``numpack._core.Store.view`` returns: the read-only ndarray over a
memory map of the data file (physical rows) and the physical row number of every logical row
(``None`` when no row is deleted).  Indexing maps the axis-0 part of a key onto physical rows
and lets NumPy do the rest on the map; every result is a new ndarray, never a view into the map.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core
from ._indexing import check_mask_length, take
from .exceptions import IndexOutOfRangeError

__all__ = ["LazyArray"]

_WARMUP_ADVICE = {
    "sequential": "sequential",
    "random": "random",
    "boolean": "willneed",
    "heavy": "willneed",
}
_ITER_CHUNK_BYTES = 1 << 20


def _reopen_lazy(path: str, name: str) -> LazyArray:
    """Rebuild a pickled ``LazyArray`` by opening the store at ``path`` again."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"NumPack store not found: {path}")
    store = _core.Store(path)
    try:
        return LazyArray(store, name)
    finally:
        store.close()


def _unwrap(value: Any) -> Any:
    """Materialise a ``LazyArray`` operand; leave anything else alone."""
    return value._materialize() if isinstance(value, LazyArray) else value


class LazyArray:
    """Read-only, memory-mapped view of one array in a NumPack store.

    Obtained with ``NumPack.load(name, lazy=True)``; it reflects the logical rows (deleted rows
    excluded) at the time it was created and keeps working after its ``NumPack`` is closed.
    Indexing follows NumPy and always returns a new ``numpy.ndarray``.

    Parameters
    ----------
    store : numpack._core.Store
        Open store holding the array.
    name : str
        Name of the array.

    Raises
    ------
    ArrayNotFoundError
        If the store has no array called ``name``.

    Notes
    -----
    An integer index on a 1-d array returns a 0-d ndarray (NumPy would return a scalar).
    Pickling stores only the store path and the array name; unpickling reopens the store.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, store: _core.Store, name: str) -> None:
        phys, active = store.view(name)
        self._phys: npt.NDArray[Any] = phys
        self._active: npt.NDArray[np.int64] | None = active
        self._name = name
        self._path = store.path  # absolute
        rows = phys.shape[:1] if active is None else (len(active),)
        self._shape: tuple[int, ...] = (*rows, *phys.shape[1:])

    # --- properties ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the array in its store."""
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        """Logical shape (deleted rows excluded)."""
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """NumPy dtype of the elements."""
        return self._phys.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._shape)

    @property
    def size(self) -> int:
        """Number of elements of the logical array."""
        return math.prod(self._shape)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return int(self._phys.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        """Bytes of the logical array (``size * itemsize``)."""
        return self.size * self.itemsize

    @property
    def T(self) -> npt.NDArray[Any]:
        """The transposed array, materialised as an ndarray."""
        return self._materialize().T

    # --- materialisation -----------------------------------------------------------------

    def _materialize(self) -> npt.NDArray[Any]:
        """Every logical row as a new, writable ndarray."""
        if self._active is None:
            return np.array(self._phys, copy=True)
        return self._phys[self._active]

    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> npt.NDArray[Any]:
        """NumPy 2 array protocol: always a new array of the logical rows.

        Parameters
        ----------
        dtype : data-type, optional
            Cast the result to this dtype.
        copy : bool or None, optional
            ``False`` raises ``ValueError``: the data lives in a file, so a copy is needed.
        """
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array from a LazyArray")
        if self._active is None:
            return np.array(self._phys, dtype=dtype, copy=True)
        result = self._phys[self._active]
        return result if dtype is None else result.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Materialise ``LazyArray`` operands, then run the ufunc on ndarrays."""
        out = kwargs.get("out")
        if (out is not None and any(isinstance(o, LazyArray) for o in out)) or (
            method == "at" and isinstance(inputs[0], LazyArray)
        ):
            raise TypeError("LazyArray is read-only and cannot be used as a ufunc output")
        args = [_unwrap(x) for x in inputs]
        return getattr(ufunc, method)(*args, **kwargs)

    def copy(self) -> npt.NDArray[Any]:
        """Return every logical row as a new ndarray."""
        return self._materialize()

    def __copy__(self) -> npt.NDArray[Any]:
        return self._materialize()

    def __deepcopy__(self, memo: dict[int, Any]) -> npt.NDArray[Any]:
        return self._materialize()

    def tolist(self) -> Any:
        """Return the logical array as nested Python lists (see ``numpy.ndarray.tolist``)."""
        return self._materialize().tolist()

    def astype(self, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        """Return the logical array cast to ``dtype`` as a new ndarray."""
        return self.__array__(dtype)

    def reshape(self, *shape: Any, order: Literal["C", "F", "A"] = "C") -> npt.NDArray[Any]:
        """Return the logical array with a new shape, as an ndarray.

        Parameters
        ----------
        *shape : int or sequence of int
            The new shape, as one tuple/list/int or as several ints; one entry may be ``-1``.
        order : {'C', 'F', 'A'}, optional
            Passed on to ``numpy.ndarray.reshape``.

        Raises
        ------
        ValueError
            If the element count differs, more than one entry is ``-1`` or an entry is not an
            integer or is negative.
        """
        raw = shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) else shape
        try:
            dims = [operator.index(d) for d in (raw if isinstance(raw, (tuple, list)) else [raw])]
        except TypeError:
            raise ValueError("All dimensions must be integers") from None
        if dims.count(-1) > 1:
            raise ValueError("Only one dimension can be -1")
        if any(d < -1 for d in dims):
            raise ValueError(f"Invalid dimension in shape {tuple(dims)}: negative size")
        known = math.prod(d for d in dims if d != -1)
        if (-1 in dims and (known == 0 or self.size % known)) or (
            -1 not in dims and known != self.size
        ):
            raise ValueError(f"Cannot reshape array of size {self.size} into shape {tuple(dims)}")
        result: npt.NDArray[Any] = self._materialize().reshape(dims, order=order)
        return result

    # --- indexing ------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        """Index like NumPy over the logical rows; always returns a new ndarray.

        Raises
        ------
        IndexOutOfRangeError
            For an integer outside its axis.
        ValueError
            For a boolean mask whose length does not match its axis.
        TypeError
            For an invalid index type (str, float, ...).
        """
        if (
            type(key) is np.ndarray
            and self._active is None
            and key.ndim == 1
            and key.dtype.kind in "iu"
            and self._shape
        ):
            # Hot path (random row batches): NumPy's own gather on the mapping.
            try:
                return self._phys[key]
            except IndexError as exc:
                raise IndexOutOfRangeError(str(exc)) from None
        return take(self._phys, self._active, key)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of unsized object")
        return self._shape[0]

    def __bool__(self) -> bool:
        if not self._shape:
            return bool(self._phys[()])
        return self._shape[0] > 0

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        """Yield the logical rows one by one (each a new ndarray; 0-d for a 1-d array)."""
        n = len(self)
        row_bytes = max(1, self.itemsize * math.prod(self._shape[1:]))
        step = max(1, _ITER_CHUNK_BYTES // row_bytes)
        for start in range(0, n, step):
            block = self[start : start + step]
            for j in range(block.shape[0]):
                yield block[j, ...].copy()

    def __contains__(self, value: object) -> bool:
        return bool((self._materialize() == value).any())

    # --- compatibility helpers -----------------------------------------------------------

    def vectorized_gather(self, indices: Any) -> npt.NDArray[Any]:
        """Return the given logical rows (any order, duplicates allowed) as one ndarray."""
        rows = np.asarray(indices)
        if rows.size == 0:
            rows = np.empty(0, dtype=np.int64)
        if rows.dtype.kind not in "iu":
            raise TypeError("indices must be integers")
        return self[rows]

    def mega_batch_get_rows(self, indices: Any, batch_size: int) -> list[npt.NDArray[Any]]:
        """Return the given logical rows as a list of row arrays, gathered ``batch_size`` at a time.

        Raises
        ------
        ValueError
            If ``batch_size`` is not positive.
        """
        size = operator.index(batch_size)
        if size <= 0:
            raise ValueError("batch_size must be positive")
        rows = [int(i) for i in indices]
        result: list[npt.NDArray[Any]] = []
        for start in range(0, len(rows), size):
            block = self.vectorized_gather(rows[start : start + size])
            result.extend(block[j, ...] for j in range(block.shape[0]))
        return result

    def _checked_mask(self, mask: Any) -> npt.NDArray[np.bool_]:
        arr = np.asarray(mask)
        if arr.dtype.kind != "b":
            raise TypeError(f"mask must be boolean, got dtype {arr.dtype}")
        check_mask_length(arr, len(self), f"LazyArray '{self._name}'")
        return arr

    def boolean_index_production(self, mask: Any) -> npt.NDArray[Any]:
        """Return the logical rows where the 1-d bool ``mask`` is true."""
        return self[self._checked_mask(mask)]

    parallel_boolean_index = boolean_index_production
    boolean_index_smart = boolean_index_production
    boolean_index_adaptive = boolean_index_production
    boolean_index_adaptive_algorithm = boolean_index_production

    def choose_optimal_algorithm(self, mask: Any) -> str:
        """Name the selection strategy for ``mask``: ``'sparse'``, ``'dense'`` or ``'adaptive'``."""
        arr = self._checked_mask(mask)
        fraction = np.count_nonzero(arr) / arr.size if arr.size else 0.0
        if fraction < 0.1:
            return "sparse"
        if fraction > 0.9:
            return "dense"
        return "adaptive"

    def intelligent_warmup(self, hint: str) -> None:
        """Advise the kernel about the coming access pattern (``madvise``) when possible.

        ``'sequential'``, ``'random'``, ``'boolean'`` and ``'heavy'`` are understood; other hints,
        and platforms or mappings that do not support advice, are silently ignored.
        """
        if not isinstance(hint, str):
            return
        advice = _WARMUP_ADVICE.get(hint)
        base: Any = getattr(self._phys, "base", None)
        if advice is None or not hasattr(base, "advise"):
            return
        with contextlib.suppress(OSError, ValueError):
            base.advise(advice)

    # --- lifecycle, pickling, repr -------------------------------------------------------

    def close(self) -> None:
        """Kept for compatibility; the object stays usable.

        The memory map is released when the ``LazyArray`` (and every ndarray it handed out that
        still refers to the map, which is none) is garbage-collected.
        """

    def __enter__(self) -> LazyArray:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[[str, str], LazyArray], tuple[str, str]]:
        return (_reopen_lazy, (self._path, self._name))

    def __getstate__(self) -> dict[str, str]:
        return {"path": self._path, "name": self._name}

    def __setstate__(self, state: dict[str, str]) -> None:
        other = _reopen_lazy(state["path"], state["name"])
        self.__dict__.update(other.__dict__)

    def __repr__(self) -> str:
        return f"LazyArray({self._name!r}, shape={self._shape}, dtype={self.dtype})"

    # --- operators (materialise, then delegate to NumPy) ---------------------------------

    def _check_bitwise(self, other: Any) -> None:
        kinds = [self.dtype.kind]
        if isinstance(other, (LazyArray, np.ndarray)):
            kinds.append(other.dtype.kind)
        if any(k not in "biu" for k in kinds):
            raise TypeError("Bitwise operations are only supported for integer arrays")

    def _op(self, op: Callable[[Any, Any], Any], other: Any, reflected: bool = False) -> Any:
        if reflected:
            return op(_unwrap(other), self._materialize())
        return op(self._materialize(), _unwrap(other))

    def _bitop(self, op: Callable[[Any, Any], Any], other: Any, reflected: bool = False) -> Any:
        self._check_bitwise(other)
        return self._op(op, other, reflected)

    def __add__(self, other: Any) -> Any:
        return self._op(operator.add, other)

    def __radd__(self, other: Any) -> Any:
        return self._op(operator.add, other, True)

    def __sub__(self, other: Any) -> Any:
        return self._op(operator.sub, other)

    def __rsub__(self, other: Any) -> Any:
        return self._op(operator.sub, other, True)

    def __mul__(self, other: Any) -> Any:
        return self._op(operator.mul, other)

    def __rmul__(self, other: Any) -> Any:
        return self._op(operator.mul, other, True)

    def __truediv__(self, other: Any) -> Any:
        return self._op(operator.truediv, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._op(operator.truediv, other, True)

    def __floordiv__(self, other: Any) -> Any:
        return self._op(operator.floordiv, other)

    def __rfloordiv__(self, other: Any) -> Any:
        return self._op(operator.floordiv, other, True)

    def __mod__(self, other: Any) -> Any:
        return self._op(operator.mod, other)

    def __rmod__(self, other: Any) -> Any:
        return self._op(operator.mod, other, True)

    def __matmul__(self, other: Any) -> Any:
        return self._op(operator.matmul, other)

    def __rmatmul__(self, other: Any) -> Any:
        return self._op(operator.matmul, other, True)

    def __pow__(self, other: Any, mod: Any = None) -> Any:
        if mod is None:
            return self._op(operator.pow, other)
        return pow(self._materialize(), _unwrap(other), mod)

    def __rpow__(self, other: Any, mod: Any = None) -> Any:
        if mod is None:
            return self._op(operator.pow, other, True)
        return pow(_unwrap(other), self._materialize(), mod)

    def __and__(self, other: Any) -> Any:
        return self._bitop(operator.and_, other)

    def __rand__(self, other: Any) -> Any:
        return self._bitop(operator.and_, other, True)

    def __or__(self, other: Any) -> Any:
        return self._bitop(operator.or_, other)

    def __ror__(self, other: Any) -> Any:
        return self._bitop(operator.or_, other, True)

    def __xor__(self, other: Any) -> Any:
        return self._bitop(operator.xor, other)

    def __rxor__(self, other: Any) -> Any:
        return self._bitop(operator.xor, other, True)

    def __lshift__(self, other: Any) -> Any:
        return self._bitop(operator.lshift, other)

    def __rlshift__(self, other: Any) -> Any:
        return self._bitop(operator.lshift, other, True)

    def __rshift__(self, other: Any) -> Any:
        return self._bitop(operator.rshift, other)

    def __rrshift__(self, other: Any) -> Any:
        return self._bitop(operator.rshift, other, True)

    def __eq__(self, other: object) -> Any:
        return self._op(operator.eq, other)

    def __ne__(self, other: object) -> Any:
        return self._op(operator.ne, other)

    def __lt__(self, other: Any) -> Any:
        return self._op(operator.lt, other)

    def __le__(self, other: Any) -> Any:
        return self._op(operator.le, other)

    def __gt__(self, other: Any) -> Any:
        return self._op(operator.gt, other)

    def __ge__(self, other: Any) -> Any:
        return self._op(operator.ge, other)

    def __neg__(self) -> Any:
        return -self._materialize()

    def __pos__(self) -> Any:
        return +self._materialize()

    def __abs__(self) -> Any:
        return abs(self._materialize())

    def __invert__(self) -> Any:
        self._check_bitwise(None)
        return ~self._materialize()
