"""Exception classes raised by numpack.

Each fault has exactly one class.  The classes also derive from the built-in exceptions that
the published NumPack package raised for the same fault, so ``except KeyError`` and
``except ValueError`` written against either package keep working.

This module must not import ``numpack._core``: the native bindings import these classes
from here when they raise them.
"""

from __future__ import annotations

__all__ = [
    "ArrayNotFoundError",
    "CorruptStoreError",
    "DependencyError",
    "DtypeMismatchError",
    "IndexOutOfRangeError",
    "StoreLockedError",
]


class ArrayNotFoundError(KeyError, ValueError):
    """The named array does not exist in the store.

    Subclass of both :class:`KeyError` (what eager loads raised upstream) and
    :class:`ValueError` (what ``append`` raised upstream).
    """

    def __str__(self) -> str:
        # KeyError.__str__ quotes a single argument; show the plain message instead.
        return BaseException.__str__(self)


class IndexOutOfRangeError(IndexError, ValueError):
    """A row index lies outside the logical rows of an array.

    Subclass of both :class:`IndexError` and :class:`ValueError`.
    """


class DtypeMismatchError(TypeError, ValueError):
    """A vector search was given dtypes it cannot score together, or not with this metric
    (the engine's promotion table: docs/python.md, "Vector search").

    Subclass of both :class:`TypeError` (unsupported dtypes) and :class:`ValueError` (a
    metric the dtype does not support), what the published package raised for each.
    """


class CorruptStoreError(ValueError):
    """A store file (metadata, data or bitmap) is corrupt or truncated; the message names it."""


class StoreLockedError(OSError):
    """The store lock could not be taken (another handle holds it)."""


class DependencyError(ImportError):
    """An optional dependency is missing; the message names the ``pip install`` command."""
