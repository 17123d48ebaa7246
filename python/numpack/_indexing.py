"""Argument normalisation shared by ``NumPack``, ``LazyArray`` and the batch modes.

Three families live here:

* row specs for the ``NumPack`` methods (``getitem``, ``replace``, ``drop``): each method has
  its own accepted argument forms and error message (kept from the published package), but all
  resolve to a 1-d ``int64`` array of non-negative *logical* row numbers;
* input arrays: dtype/shape validation and conversion to what ``numpack._core`` accepts
  (C order, little-endian), and the row batches of ``stream_load``;
* NumPy-style keys for ``LazyArray.__getitem__``: a key is validated against the logical shape,
  then its axis-0 part is mapped onto the physical rows of the data file so that NumPy does the
  actual indexing on the memory map.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from . import _core
from .exceptions import IndexOutOfRangeError

__all__ = [
    "DROP_INDEX_MESSAGE",
    "GETITEM_INDEX_MESSAGE",
    "REPLACE_INDEX_MESSAGE",
    "RowSpec",
    "check_array",
    "check_buffer_size",
    "check_mask_length",
    "check_name",
    "check_names",
    "le_dtype",
    "normalize_key",
    "parse_drop_indexes",
    "parse_getitem_indexes",
    "parse_replace_indexes",
    "resolve_rows",
    "row_batches",
    "select_cached",
    "storable",
    "take",
]

IndexArray = npt.NDArray[np.int64]
RowSpec = Union[slice, npt.NDArray[Any]]
"""A parsed row selection: a slice, an ``int64`` array (negatives allowed) or a bool mask."""

REPLACE_INDEX_MESSAGE = "The indexes must be int or list or numpy.ndarray or slice."
DROP_INDEX_MESSAGE = "The indexes must be int, list, tuple, numpy.ndarray or slice."
GETITEM_INDEX_MESSAGE = "indices must be a list of integers or a slice"
INVALID_INDEX_MESSAGE = "Invalid index type"

_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------------------------
# Row specs of the NumPack methods
# --------------------------------------------------------------------------------------------


def _int_array(values: npt.NDArray[Any], exc: type[Exception], message: str) -> RowSpec:
    """Check an index ndarray: a 1-d bool mask passes as is, integers become ``int64``."""
    if values.ndim == 0:
        values = values.reshape(1)
    if values.ndim != 1:
        raise exc(f"{message} (got a {values.ndim}-d array; index arrays must be 1-d)")
    if values.dtype.kind == "b":
        return values
    if values.size == 0:
        return np.empty(0, dtype=np.int64)
    if values.dtype.kind == "u":
        if int(values.max()) > _INT64_MAX:
            raise IndexOutOfRangeError(f"Index {int(values.max())} is out of bounds")
        return values.astype(np.int64)
    if values.dtype.kind == "i":
        return values.astype(np.int64, copy=False)
    raise exc(f"{message} (got an array of dtype {values.dtype})")


def _index_list(
    values: list[Any] | tuple[Any, ...], exc: type[Exception], message: str
) -> IndexArray:
    """Convert a sequence of integers (``bool`` counts as 0/1) with ``operator.index``."""
    try:
        return np.array([operator.index(v) for v in values], dtype=np.int64)
    except (TypeError, OverflowError):
        raise exc(f"{message} (the list must hold integers only)") from None


def parse_replace_indexes(indexes: object) -> RowSpec:
    """Parse the ``indexes`` argument of ``NumPack.replace``.

    Accepts an ``int``, a list of ints, an integer ndarray (a bool ndarray is a row mask) or a
    slice (any step).  Anything else, including a tuple, a str and a bare NumPy scalar, raises
    ``ValueError(REPLACE_INDEX_MESSAGE)``.
    """
    if isinstance(indexes, int):
        return np.array([indexes], dtype=np.int64)
    if isinstance(indexes, slice):
        return indexes
    if isinstance(indexes, list):
        return _index_list(indexes, ValueError, REPLACE_INDEX_MESSAGE)
    if isinstance(indexes, np.ndarray):
        return _int_array(indexes, ValueError, REPLACE_INDEX_MESSAGE)
    raise ValueError(REPLACE_INDEX_MESSAGE)


def parse_drop_indexes(indexes: object) -> RowSpec:
    """Parse the ``indexes`` argument of ``NumPack.drop`` (not ``None``).

    Accepts an ``int`` (``bool`` included), a list or tuple whose elements are passed through
    ``int()``, an integer ndarray, a bool ndarray (a mask over the logical rows) or a slice
    (any step).  Anything else raises ``ValueError(DROP_INDEX_MESSAGE)``.
    """
    if isinstance(indexes, int):
        return np.array([indexes], dtype=np.int64)
    if isinstance(indexes, slice):
        return indexes
    if isinstance(indexes, (list, tuple)):
        try:
            return np.array([int(v) for v in indexes], dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{DROP_INDEX_MESSAGE} (elements must be integers)") from None
    if isinstance(indexes, np.ndarray):
        return _int_array(indexes, ValueError, DROP_INDEX_MESSAGE)
    raise ValueError(DROP_INDEX_MESSAGE)


def parse_getitem_indexes(indexes: object) -> RowSpec:
    """Parse the ``indexes`` argument of ``NumPack.getitem``.

    Accepts an ``int`` or NumPy integer scalar, a list or tuple of integers, an integer ndarray,
    a bool ndarray (mask) or a slice (any step).  Anything else raises ``TypeError``.
    """
    if isinstance(indexes, (int, np.integer)):
        return np.array([int(indexes)], dtype=np.int64)
    if isinstance(indexes, slice):
        return indexes
    if isinstance(indexes, (list, tuple)):
        return _index_list(indexes, TypeError, GETITEM_INDEX_MESSAGE)
    if isinstance(indexes, np.ndarray):
        return _int_array(indexes, TypeError, GETITEM_INDEX_MESSAGE)
    raise TypeError(GETITEM_INDEX_MESSAGE)


def check_mask_length(mask: npt.NDArray[Any], length: int, what: str) -> None:
    """Raise ``ValueError`` when a bool mask does not cover exactly ``length`` rows."""
    if mask.ndim != 1:
        raise ValueError(f"Boolean mask must be 1-d, got {mask.ndim} dimensions")
    if mask.shape[0] != length:
        raise ValueError(
            f"Boolean mask length {mask.shape[0]} doesn't match the length {length} of {what}"
        )


def resolve_rows(spec: RowSpec, n: int, name: str) -> IndexArray:
    """Turn a parsed row spec into non-negative logical row numbers of an ``n``-row array.

    Negative integers count from the end; out of range raises ``IndexOutOfRangeError``; a bool
    mask must have length ``n`` (``ValueError``); slices follow Python semantics over ``n``.
    """
    if isinstance(spec, slice):
        return np.arange(*spec.indices(n), dtype=np.int64)
    if spec.dtype.kind == "b":
        check_mask_length(spec, n, f"array '{name}'")
        return np.flatnonzero(spec).astype(np.int64, copy=False)
    rows = np.where(spec < 0, spec + n, spec)
    bad = (rows < 0) | (rows >= n)
    if bad.any():
        first = int(spec[np.argmax(bad)])
        raise IndexOutOfRangeError(
            f"Index {first} is out of bounds for array '{name}' with {n} rows"
        )
    return rows


# --------------------------------------------------------------------------------------------
# Input arrays and row batches
# --------------------------------------------------------------------------------------------


def le_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` in little-endian byte order (what the store holds)."""
    return dtype.newbyteorder("<")


def check_name(name: object, what: str = "array name") -> str:
    """Return ``name`` if it is a str, else raise ``TypeError``."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    return name


def check_names(names: object) -> list[str]:
    """``drop``'s ``array_name``: a str or a list/tuple of str, as a list."""
    if isinstance(names, str):
        return [names]
    if not isinstance(names, (list, tuple)):
        raise TypeError("array_name must be a str or a list of str")
    return [check_name(n) for n in names]


def check_buffer_size(buffer_size: object) -> int:
    """``stream_load``'s ``buffer_size``: ``None`` means 1; must be a positive int."""
    if buffer_size is None:
        return 1
    if not isinstance(buffer_size, (int, np.integer)):
        raise TypeError(f"buffer_size must be an int, not {type(buffer_size).__name__}")
    if buffer_size <= 0:
        raise ValueError("buffer_size must be greater than 0")
    return int(buffer_size)


def check_array(name: object, value: object) -> npt.NDArray[Any]:
    """Validate one ``(name, array)`` entry of ``save``/``append``/``replace``."""
    check_name(name)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"array '{name}' must be a numpy.ndarray, not {type(value).__name__}")
    try:
        _core.dtype_code(le_dtype(value.dtype))
    except (ValueError, TypeError):
        raise ValueError(f"Unsupported dtype: {value.dtype.name} (array '{name}')") from None
    return value


def storable(value: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The values of ``value`` as a C-contiguous, little-endian base-class ndarray."""
    target = le_dtype(value.dtype)
    if value.dtype != target:
        value = value.astype(target, order="C")
    return np.asarray(value, order="C")


def select_cached(cached: npt.NDArray[Any], name: str, spec: RowSpec) -> npt.NDArray[Any]:
    """Rows of ``NumPack.getitem`` from a batch-mode cached array (in memory, no store)."""
    if cached.ndim == 0:
        raise ValueError(f"Cannot select rows of array '{name}': it is 0-d")
    return cached[resolve_rows(spec, cached.shape[0], name)]


#: Batches at least this large are private mappings of their rows rather than copies.
MAPPED_BATCH_BYTES = 64 << 10


def row_batches(
    phys: npt.NDArray[Any],
    active: npt.NDArray[np.int64] | None,
    size: int,
    source: _core.RowSource | None = None,
) -> Iterator[npt.NDArray[Any]]:
    """Yield the logical rows of ``phys`` (through ``active``) ``size`` at a time, each batch
    a new writable array. With ``source`` (the engine's pinned version of the stream), a
    batch is a copy of that version, or (no deleted rows, large batches) a private
    copy-on-write mapping of the rows, which costs no copy up front and, like a ``LazyArray``,
    shows in-place writes to pages it has not written itself; the version is then let go."""
    rows = phys.shape[0] if active is None else len(active)
    row_bytes = phys.itemsize * int(np.prod(phys.shape[1:], dtype=np.int64))
    mapped = source is not None and active is None and size * row_bytes >= MAPPED_BATCH_BYTES
    if mapped and source is not None:
        source.release()
    for start in range(0, rows, size):
        stop = min(start + size, rows)
        if source is not None:
            yield source.take(start, stop) if mapped else source.read(start, stop)
        elif active is not None:
            yield phys[active[start:stop]]
        else:
            yield np.array(phys[start:stop], copy=True)


# --------------------------------------------------------------------------------------------
# NumPy-style keys of LazyArray.__getitem__
# --------------------------------------------------------------------------------------------

_BASIC = (type(None), int, slice, type(Ellipsis))


def _component(item: object) -> Any:
    """Validate one element of a key; return it in a form NumPy indexes the same way."""
    if item is None or item is Ellipsis:
        return item
    if isinstance(item, (bool, np.bool_)):
        return bool(item)
    if isinstance(item, (int, np.integer)):
        return int(item)
    if isinstance(item, slice):
        try:
            return slice(
                *(
                    None if v is None else operator.index(v)
                    for v in (item.start, item.stop, item.step)
                )
            )
        except TypeError:
            raise TypeError(f"{INVALID_INDEX_MESSAGE}: slice bounds must be integers") from None
    if isinstance(item, (list, tuple)):
        arr = np.asarray(item)
        if arr.size == 0:
            return np.empty(arr.shape, dtype=np.intp)
    elif isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        arr = np.asarray(item)
    else:
        raise TypeError(f"{INVALID_INDEX_MESSAGE}: {type(item).__name__}")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind == "u":
        if arr.size and int(arr.max()) > _INT64_MAX:
            raise IndexOutOfRangeError(f"Index {int(arr.max())} is out of bounds")
        return arr.astype(np.int64)
    if arr.dtype.kind == "i":
        return arr
    raise TypeError(f"{INVALID_INDEX_MESSAGE}: array of dtype {arr.dtype}")


def _axes_of(comp: Any) -> int:
    """Number of array axes a (non-Ellipsis) key component consumes."""
    if comp is None or isinstance(comp, bool):
        return 0
    if isinstance(comp, np.ndarray) and comp.dtype.kind == "b":
        return comp.ndim
    return 1


def _check_int(value: Any, size: int, axis: int) -> Any:
    """Bounds-check an int or int array against one axis; negatives are made positive."""
    bad = (value < -size) | (value >= size)
    if np.any(bad):
        first = int(value if np.ndim(value) == 0 else value[bad].flat[0])
        raise IndexOutOfRangeError(
            f"Index {first} is out of bounds for axis {axis} with size {size}"
        )
    if isinstance(value, int):
        return value + size if value < 0 else value
    return np.where(value < 0, value + size, value)


def normalize_key(key: object, shape: tuple[int, ...]) -> tuple[list[Any], list[int], list[int]]:
    """Validate a NumPy-style key against the logical ``shape``.

    Returns the key as a list of components (ints normalised to non-negative, lists turned into
    arrays) and, for each component, the first axis it applies to and how many axes it covers.
    Raises ``TypeError`` for invalid types, ``IndexOutOfRangeError`` for out-of-range ints,
    ``ValueError`` for bool masks of the wrong length and ``IndexError`` for too many indices or
    two ellipses.
    """
    items = key if isinstance(key, tuple) else (key,)
    comps = [_component(item) for item in items]
    ellipses = sum(1 for c in comps if c is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_axes_of(c) for c in comps if c is not Ellipsis)
    ndim = len(shape)
    if used > ndim:
        raise IndexError(
            f"Too many indices for array: array is {ndim}-dimensional, but {used} were indexed"
        )
    axes: list[int] = []
    sizes: list[int] = []
    axis = 0
    for i, comp in enumerate(comps):
        axes.append(axis)
        sizes.append(ndim - used if comp is Ellipsis else _axes_of(comp))
        if comp is Ellipsis:
            axis += sizes[-1]
            continue
        if isinstance(comp, np.ndarray) and comp.dtype.kind == "b":
            for j in range(comp.ndim):
                if comp.shape[j] != shape[axis + j]:
                    raise ValueError(
                        f"Boolean mask length {comp.shape[j]} doesn't match the length "
                        f"{shape[axis + j]} of axis {axis + j}"
                    )
        elif isinstance(comp, (int, np.ndarray)) and not isinstance(comp, bool):
            comps[i] = _check_int(comp, shape[axis], axis)
        axis += sizes[-1]
    return comps, axes, sizes


def _owned(result: Any, source: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Return ``result`` as an ndarray that shares no memory with ``source``."""
    if not isinstance(result, np.ndarray):
        return np.array(result)
    if np.may_share_memory(result, source):
        return result.copy()
    return result


def take(phys: npt.NDArray[Any], active: IndexArray | None, key: object) -> npt.NDArray[Any]:
    """Index the logical array ``phys[active]`` with a NumPy key, without materialising it.

    ``phys`` is the physical (mmap-backed) array, ``active`` the physical row number of each
    logical row (``None`` when no row is deleted).  The result equals NumPy's
    ``phys[active][key]`` and is always a new array.
    """
    shape = phys.shape if active is None else (len(active), *phys.shape[1:])
    comps, axes, sizes = normalize_key(key, shape)
    if active is None or phys.ndim == 0:
        try:
            return _owned(phys[tuple(comps)], phys)
        except IndexError as exc:  # pragma: no cover - normalize_key checks first
            raise IndexOutOfRangeError(str(exc)) from None

    # Position of the component that covers axis 0 (an implicit trailing ':' if none does).
    k0 = next((i for i in range(len(comps)) if axes[i] == 0 and sizes[i] > 0), None)
    if k0 is None:
        comps.append(slice(None))
        k0 = len(comps) - 1
    elif comps[k0] is Ellipsis:
        comps[k0 : k0 + 1] = [slice(None), Ellipsis]
    first = comps[k0]

    if isinstance(first, int):
        comps[k0] = int(active[first])
    elif isinstance(first, np.ndarray) and first.dtype.kind == "b":
        nonzero = first.nonzero()
        comps[k0 : k0 + 1] = [active[nonzero[0]], *nonzero[1:]]
    elif isinstance(first, np.ndarray):
        comps[k0] = active[first]
    else:
        return _take_slice(phys, active[first], comps[:k0], comps[k0 + 1 :])
    return _owned(phys[tuple(comps)], phys)


def _take_slice(
    phys: npt.NDArray[Any], rows: IndexArray, pre: list[Any], rest: list[Any]
) -> npt.NDArray[Any]:
    """Index where axis 0 is a slice, already mapped to the physical ``rows``."""
    if all(c is None for c in pre) and all(
        isinstance(c, _BASIC) and not isinstance(c, bool) for c in rest
    ):
        # Basic indexing on the other axes: take a view first, gather only what is kept.
        view = phys[(slice(None), *rest)]
        result = view[rows]
        if pre:
            result = result[(None,) * len(pre)]
        return _owned(result, phys)
    subset = phys[rows]
    return _owned(subset[(*pre, slice(None), *rest)], phys)
