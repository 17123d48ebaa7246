"""Array attributes: ``npk.attrs[name]`` is a live, persistent dict of JSON values per array
(``npk.attrs["emb"]["model"] = "e5-base"`` is one commit). What attributes may hold, their
size limit (1 MiB of JSON per array) and their file live in the engine
(``numpack::store::attrs``); values are JSON-encoded here and decoded on every read, so a
value read is a copy: assign a key again to change a nested value."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from .numpack import NumPack

__all__ = [
    "ATTRS_KEY",
    "ArrayAttrs",
    "StoreAttrs",
    "attrs_from_json",
    "attrs_json",
    "importable_attrs",
]


def attrs_json(value: Mapping[str, Any]) -> str:
    """JSON text of an attributes mapping (TypeError for keys or values JSON cannot hold)."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"attributes are a mapping of str to JSON values, not {type(value).__name__}"
        )
    if not all(isinstance(k, str) for k in value):
        raise TypeError("attribute names must be str")
    try:
        return json.dumps(dict(value), allow_nan=False)
    except ValueError as e:  # NaN or infinity: JSON has no such numbers
        raise ValueError(f"attribute values must be JSON: {e}") from None


#: The metadata key under which conversions carry an array's attributes as JSON text
#: (Arrow/Parquet schema or field metadata, HDF5 and zarr attributes hold them natively too;
#: SafeTensors ``__metadata__`` uses ``numpack.attrs.<array name>``).
ATTRS_KEY = "numpack.attrs"


def attrs_from_json(text: str | bytes | None) -> dict[str, Any] | None:
    """Attributes carried as JSON text by another format: a JSON object, else ``None``
    (metadata numpack did not write is not trusted to be attributes)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


#: Most bytes of JSON kept as one array's attributes (the engine's limit).
MAX_ATTRS_BYTES = 1 << 20


def importable_attrs(attrs: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """The attributes of a foreign file that numpack can keep: str keys with JSON values (no
    NaN or infinity); all of them dropped, with a warning, when they would exceed 1 MiB."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue
        if isinstance(k, str):
            out[k] = v
    if len(json.dumps(out)) > MAX_ATTRS_BYTES:
        warnings.warn(
            f"{where}: its attributes take more than 1 MiB of JSON and were not imported",
            stacklevel=3,
        )
        return {}
    return out


class ArrayAttrs(MutableMapping[str, Any]):
    """The attributes of one array: every read goes to the store, every write commits."""

    def __init__(self, owner: NumPack, name: str) -> None:
        self._owner = owner
        self._name = name

    def _store(self, write: bool) -> _core.Store:
        store = self._owner._writer() if write else self._owner._core_store()
        self._owner._settle([self._name])
        return store

    def to_dict(self) -> dict[str, Any]:
        """All attributes, as a new dict."""
        out: dict[str, Any] = json.loads(self._store(False).attrs(self._name))
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store(True).update_attrs(self._name, attrs_json({key: value}), [], False)

    def __delitem__(self, key: str) -> None:
        if key not in self.to_dict():
            raise KeyError(key)
        self._store(True).update_attrs(self._name, "{}", [key], False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Sets several keys in one commit."""
        self._store(True).update_attrs(self._name, attrs_json(dict(other, **kwargs)), [], False)

    def clear(self) -> None:
        """Removes every attribute (one commit)."""
        self._store(True).update_attrs(self._name, "{}", [], True)

    def __eq__(self, other: object) -> bool:
        return self.to_dict() == (other.to_dict() if isinstance(other, ArrayAttrs) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ArrayAttrs({self._name!r}, {self.to_dict()!r})"


class StoreAttrs(Mapping[str, ArrayAttrs]):
    """``npk.attrs``: the attributes of each array of the store, by array name."""

    def __init__(self, owner: NumPack) -> None:
        self._owner = owner

    def __getitem__(self, name: str) -> ArrayAttrs:
        attrs = ArrayAttrs(self._owner, name)
        attrs.to_dict()  # KeyError for a missing array
        return attrs

    def __setitem__(self, name: str, value: Mapping[str, Any]) -> None:
        """Replaces the attributes of array ``name`` whole."""
        ArrayAttrs(self._owner, name)._store(True).update_attrs(name, attrs_json(value), [], True)

    def __delitem__(self, name: str) -> None:
        """Removes every attribute of array ``name``."""
        ArrayAttrs(self._owner, name).clear()

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner.get_member_list())

    def __len__(self) -> int:
        return len(self._owner.get_member_list())
