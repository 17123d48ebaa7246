"""numpack.io Parquet: round trips, files written by pyarrow with several row groups,
column rules, all-or-nothing failures mid-file, bounded memory."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import numpack
import numpack.io as nio

ARROW_DTYPES = [n for n in ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
                            "int32", "int64", "float16", "float32", "float64")]  # fmt: skip


@pytest.mark.parametrize("shape", [(7,), (7, 3), (5, 2, 3), (4, 2, 3, 2), (0,), (0, 3),
                                   (0, 2, 2), (), (3, 0, 2)])  # fmt: skip
def test_round_trip_every_dtype(tmp_path, h, load, shape):
    for dt in ARROW_DTYPES:
        a = h.sample(shape, dt)
        with numpack.NumPack(tmp_path / "s.npk", drop_if_exists=True) as npk:
            npk.save({"a": a})
        nio.to_parquet(tmp_path / "s.npk", tmp_path / "a.parquet", row_group_size=4,
                       chunk_size=32)  # fmt: skip
        nio.from_parquet(tmp_path / "a.parquet", tmp_path / "t.npk", chunk_size=32)
        h.assert_same(load(tmp_path / "t.npk")["a"], a)


def test_published_column_layout(tmp_path, h):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"m": h.sample((9, 3), np.float32), "v": np.arange(5.0), "c": np.zeros((2, 2, 2))})
    nio.to_parquet(tmp_path / "s.npk", tmp_path / "m.parquet", array_name="m", row_group_size=4)
    t = pq.read_table(tmp_path / "m.parquet")
    assert t.column_names == ["col0", "col1", "col2"]
    assert pq.ParquetFile(tmp_path / "m.parquet").metadata.num_row_groups == 3
    nio.to_parquet(tmp_path / "s.npk", tmp_path / "v.parquet", array_name="v")
    assert pq.read_table(tmp_path / "v.parquet").column_names == ["data"]
    nio.to_parquet(tmp_path / "s.npk", tmp_path / "c.parquet", array_name="c")
    assert pq.read_table(tmp_path / "c.parquet").num_rows == 8


def test_file_written_by_pyarrow_with_row_groups(tmp_path, load, h):
    n = 1000
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    table = pa.table({"i": np.arange(n, dtype=np.int32), "x": x,
                      "y": pa.array(np.ones(n), mask=np.arange(n) % 7 == 0)})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=128, compression="zstd")
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 8
    nio.from_parquet(tmp_path / "t.parquet", tmp_path / "s.npk", chunk_size=1000)
    got = load(tmp_path / "s.npk")["t"]
    assert got.dtype == np.float64 and got.shape == (n, 3)
    y = np.where(np.arange(n) % 7 == 0, np.nan, 1.0)
    h.assert_same(got, np.column_stack([np.arange(n), x.astype(np.float64), y]))
    nio.from_parquet(tmp_path / "t.parquet", tmp_path / "s.npk", array_name="sub",
                     columns=["x", "i"])  # fmt: skip
    h.assert_same(load(tmp_path / "s.npk")["sub"], np.column_stack([x, np.arange(n)]))
    pq.write_table(pa.table({"a": [1, 2, 3]}).select([]), tmp_path / "nocols.parquet")
    nio.from_parquet(tmp_path / "nocols.parquet", tmp_path / "s.npk")
    assert load(tmp_path / "s.npk")["nocols"].shape == (0, 0)


def test_failures_leave_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    n = 600
    ints = pa.array(np.arange(n), mask=np.arange(n) == 550)  # a null in the last row group
    pq.write_table(pa.table({"i": ints}), tmp_path / "late.parquet", row_group_size=100)
    with pytest.raises(ValueError, match=r"late\.parquet.*column 'i' has 1 null"):
        nio.from_parquet(tmp_path / "late.parquet", store, chunk_size=400)
    pq.write_table(pa.table({"i": [1], "s": ["x"]}), tmp_path / "str.parquet")
    with pytest.raises(ValueError, match=r"str\.parquet.*column 's'"):
        nio.from_parquet(tmp_path / "str.parquet", store)
    with pytest.raises(KeyError, match="nope"):
        nio.from_parquet(tmp_path / "str.parquet", store, columns=["nope"])
    raw = (tmp_path / "late.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(Exception, match=r"cut\.parquet"):
        nio.from_parquet(tmp_path / "cut.parquet", store)
    with pytest.raises(FileNotFoundError):
        nio.from_parquet(tmp_path / "missing.parquet", store)
    assert h.store_state(store) == before


def test_complex_export_refused_without_leftovers(tmp_path):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"c": np.ones(3, np.complex64)})
    with pytest.raises(ValueError, match="complex"):
        nio.to_parquet(tmp_path / "s.npk", tmp_path / "c.parquet")
    assert sorted(os.listdir(tmp_path)) == ["s.npk"]
    assert nio.from_parquet_file is nio.from_parquet and nio.to_parquet_file is nio.to_parquet
