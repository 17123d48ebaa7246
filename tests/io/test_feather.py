"""numpack.io Feather / Arrow IPC: round trips, files written by pyarrow (v1, v2 with each
codec, IPC streams), failures in a later batch, bounded memory."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

import numpack
import numpack.io as nio

ARROW_DTYPES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                "int64", "float16", "float32", "float64"]  # fmt: skip


@pytest.mark.parametrize("compression", ["zstd", None])
@pytest.mark.parametrize("shape", [(7,), (7, 3), (5, 2, 3), (4, 2, 3, 2), (0,), (0, 3), ()])
def test_round_trip_every_dtype(tmp_path, h, load, shape, compression):
    for dt in ARROW_DTYPES:
        a = h.sample(shape, dt)
        with numpack.NumPack(tmp_path / "s.npk", drop_if_exists=True) as npk:
            npk.save({"a": a})
        nio.to_feather(tmp_path / "s.npk", tmp_path / "a.feather", compression=compression,
                       chunk_size=24)  # fmt: skip
        nio.from_feather(tmp_path / "a.feather", tmp_path / "t.npk", chunk_size=24)
        h.assert_same(load(tmp_path / "t.npk")["a"], a)


@pytest.mark.parametrize("version", [1, 2])
def test_files_written_by_pyarrow(tmp_path, h, load, version):
    n = 300
    x = np.linspace(-1, 1, n)
    x[:3] = [np.nan, -np.inf, -0.0]
    table = pa.table({"a": np.arange(n, dtype=np.int16), "b": x})
    if version == 1:
        with pytest.warns(DeprecationWarning):  # pyarrow >= 25 deprecates writing v1
            feather.write_feather(table, tmp_path / "f.feather", version=1)
    else:
        feather.write_feather(table, tmp_path / "f.feather", chunksize=64, compression="lz4")
    with warnings.catch_warnings():
        if version == 1:  # pyarrow >= 25 warns when reading v1; numpack passes it on
            warnings.simplefilter("ignore", DeprecationWarning)
        nio.from_feather(tmp_path / "f.feather", tmp_path / "s.npk", chunk_size=256)
        nio.from_feather(tmp_path / "f.feather", tmp_path / "s.npk", array_name="b",
                         columns=["b"])  # fmt: skip
    h.assert_same(load(tmp_path / "s.npk")["f"], np.column_stack([np.arange(n), x]))
    h.assert_same(load(tmp_path / "s.npk")["b"], x.reshape(-1, 1))


def test_ipc_stream_file(tmp_path, load):
    batch = pa.record_batch({"v": np.arange(10, dtype=np.uint32)})
    with pa.OSFile(str(tmp_path / "s.arrows"), "wb") as f, pa.ipc.new_stream(f, batch.schema) as w:
        w.write_batch(batch)
        w.write_batch(batch)
    nio.from_feather(tmp_path / "s.arrows", tmp_path / "s.npk")
    got = load(tmp_path / "s.npk")["s"]
    assert got.dtype == np.uint32 and got[:, 0].tolist() == list(range(10)) * 2


def test_failure_in_a_later_batch_leaves_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    ints = pa.array(np.arange(1000), mask=np.arange(1000) == 990)
    feather.write_feather(pa.table({"i": ints}), tmp_path / "late.feather", chunksize=100)
    with pytest.raises(ValueError, match=r"late\.feather.*column 'i' has 1 null"):
        nio.from_feather(tmp_path / "late.feather", store, chunk_size=1600)
    with pytest.raises(KeyError, match="zz"):
        nio.from_feather(tmp_path / "late.feather", store, columns=["zz"])
    (tmp_path / "bad.feather").write_bytes(b"ARROW1" + bytes(100))
    with pytest.raises(Exception, match=r"bad\.feather"):
        nio.from_feather(tmp_path / "bad.feather", store)
    assert h.store_state(store) == before
    assert nio.from_feather_file is nio.from_feather and nio.to_feather_file is nio.to_feather
