"""numpack.io in-memory Arrow tables: from_table / to_table and their aliases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import numpack
import numpack.io as nio


def test_table_round_trip(tmp_path, h, load):
    a = h.sample((9, 3), np.float32)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a})
    t = nio.to_table(tmp_path / "s.npk")
    assert t.column_names == ["col0", "col1", "col2"] and t.num_rows == 9
    named = nio.to_parquet_table(tmp_path / "s.npk", column_names=["x", "y", "z"])
    assert named.column_names == ["x", "y", "z"]
    nio.from_table(t, tmp_path / "t.npk", chunk_size=24)
    h.assert_same(load(tmp_path / "t.npk")["data"], a)
    nio.from_parquet_table(named, tmp_path / "t.npk", array_name="zy", columns=["z", "y"])
    h.assert_same(load(tmp_path / "t.npk")["zy"], a[:, [2, 1]])


def test_foreign_tables(tmp_path, h, load):
    t = pa.table({"b": [True, False, True], "i": pa.array([1, 2, 3], pa.int8())})
    nio.from_table(t, tmp_path / "s.npk", array_name="t")
    h.assert_same(load(tmp_path / "s.npk")["t"], np.array([[1, 1], [0, 2], [1, 3]], np.int8))
    batch = pa.record_batch({"f": pa.array([1.5, None], pa.float32())})
    nio.from_table(batch, tmp_path / "s.npk", array_name="f")
    h.assert_same(load(tmp_path / "s.npk")["f"], np.array([[1.5], [np.nan]], np.float32))
    nio.from_table(pa.table({"x": pa.array([], pa.int32())}), tmp_path / "s.npk", array_name="e")
    e = load(tmp_path / "s.npk")["e"]
    assert e.shape == (0, 1) and e.dtype == np.float64  # as numpack 0.6


def test_errors(tmp_path, store, h):
    before = h.store_state(store)
    with pytest.raises(TypeError, match=r"Expected pyarrow\.Table"):
        nio.from_table({"x": [1]}, store)
    with pytest.raises(ValueError, match="column 's'"):
        nio.from_table(pa.table({"s": ["a"]}), store)
    with pytest.raises(KeyError, match="q"):
        nio.from_table(pa.table({"s": [1]}), store, columns=["q"])
    assert h.store_state(store) == before


def test_deprecated_aliases(tmp_path, load):
    with pytest.warns(DeprecationWarning, match=r"from_arrow\(\) is deprecated .* from_table"):
        nio.from_arrow(pa.table({"a": [1.0]}), tmp_path / "s.npk")
    with pytest.warns(DeprecationWarning, match=r"to_arrow\(\) is deprecated .* to_table"):
        t = nio.to_arrow(tmp_path / "s.npk")
    assert t.column("col0").to_pylist() == [1.0]
