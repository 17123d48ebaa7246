"""numpack.io SafeTensors: round trips checked against the safetensors library in both
directions, header-only metadata, unstorable dtypes, truncation, bounded memory."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import safetensors.numpy as stn
import torch

import numpack
import numpack.io as nio


#: Every dtype SafeTensors and numpack share (no complex128 code in SafeTensors).
def _cases(h):
    return {k: v for k, v in h.cases().items() if v.dtype != np.complex128}


def test_round_trip_against_the_library(tmp_path, h, load):
    arrays = _cases(h)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save(arrays)
        npk.drop("float32_7x3", [2])  # deleted rows: streamed instead of copied
    arrays["float32_7x3"] = np.delete(arrays["float32_7x3"], [2], axis=0)
    nio.to_safetensors_file(tmp_path / "s.npk", tmp_path / "a.safetensors",
                            metadata={"format": "np"}, chunk_size=40)  # fmt: skip
    got = stn.load_file(tmp_path / "a.safetensors")  # the library accepts our file
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        h.assert_same(got[k], v)
    stn.save_file(arrays, tmp_path / "lib.safetensors")  # and we read the library's
    nio.from_safetensors_file(tmp_path / "lib.safetensors", tmp_path / "t.npk", chunk_size=40)
    for k, v in load(tmp_path / "t.npk").items():
        h.assert_same(v, arrays[k])


def test_keys_metadata_iteration(tmp_path, h, load):
    a = h.sample((5, 4), np.float32)
    stn.save_file({"a": a, "b": np.arange(3)}, tmp_path / "f.safetensors", metadata={"m": "1"})
    nio.from_safetensors_file(tmp_path / "f.safetensors", tmp_path / "s.npk", keys=["a"])
    assert list(load(tmp_path / "s.npk")) == ["a"]
    meta = nio.get_safetensors_metadata(tmp_path / "f.safetensors")
    assert meta == {"tensors": {"a": {"dtype": "float32", "shape": (5, 4)},
                                "b": {"dtype": "int64", "shape": (3,)}},
                    "metadata": {"m": "1"}}  # fmt: skip
    items = dict(nio.iter_safetensors(tmp_path / "f.safetensors"))
    h.assert_same(items["a"], a)
    gen = nio.iter_safetensors(tmp_path / "missing.safetensors")  # lazy: fails on next()
    with pytest.raises(FileNotFoundError):
        next(gen)
    with pytest.raises(KeyError, match=r"Keys not found: \{'q'\}\. Available"):
        nio.from_safetensors_file(tmp_path / "f.safetensors", tmp_path / "s.npk", keys=["a", "q"])


def test_tensor_dicts(tmp_path, h, load):
    nio.from_tensor_dict({"n": np.arange(4), "t": torch.ones(2, 3)}, tmp_path / "s.npk")
    d = nio.to_tensor_dict(tmp_path / "s.npk")
    assert sorted(d) == ["n", "t"] and d["t"].dtype == np.float32 and d["t"].flags.c_contiguous
    with pytest.raises(TypeError, match="Unsupported tensor type: list"):
        nio.from_tensor_dict({"x": [1, 2]}, tmp_path / "s.npk")
    with pytest.warns(DeprecationWarning, match=r"from_safetensors\(\) is deprecated"):
        nio.from_safetensors({"y": np.zeros(1)}, tmp_path / "s.npk")
    with pytest.warns(DeprecationWarning, match=r"to_safetensors\(\) is deprecated"):
        assert sorted(nio.to_safetensors(tmp_path / "s.npk")) == ["n", "t", "y"]


def test_failures_leave_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    # A dtype numpack has no code for (bfloat16 and float8 e4m3fn / e5m2 it stores).
    header = json.dumps(
        {
            "w": {"dtype": "F8_E8M0", "shape": [4], "data_offsets": [0, 4]},
            "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
        }
    ).encode()
    (tmp_path / "bf.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(ValueError, match=r"bf\.safetensors.*'w' \(F8_E8M0\).*nothing"):
        nio.from_safetensors_file(tmp_path / "bf.safetensors", store)
    stn.save_file({"a": np.arange(1000.0), "b": np.arange(1000.0)}, tmp_path / "t.safetensors")
    raw = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"cut\.safetensors.*outside the file"):
        nio.from_safetensors_file(tmp_path / "cut.safetensors", store)
    bad = json.dumps({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", len(bad)) + bad + bytes(8))
    with pytest.raises(ValueError, match=r"bad\.safetensors.*'a' has 8 bytes, its shape needs 12"):
        nio.from_safetensors_file(tmp_path / "bad.safetensors", store)
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a SafeTensors file"):
        nio.from_safetensors_file(tmp_path / "junk.safetensors", store)
    # 'a' is copied into the store's temporaries before the empty name fails
    entry = {"dtype": "U8", "shape": [4]}
    hdr = json.dumps(
        {"a": {**entry, "data_offsets": [0, 4]}, "": {**entry, "data_offsets": [4, 8]}}
    )
    hdr = hdr.encode()
    (tmp_path / "mid.safetensors").write_bytes(struct.pack("<Q", len(hdr)) + hdr + bytes(8))
    with pytest.raises(ValueError):
        nio.from_safetensors_file(tmp_path / "mid.safetensors", store)
    assert h.store_state(store) == before
    with numpack.NumPack(tmp_path / "c.npk") as npk:
        npk.save({"c": np.ones(2, np.complex128)})
    with pytest.raises(ValueError, match="cannot hold array"):
        nio.to_safetensors_file(tmp_path / "c.npk", tmp_path / "c.safetensors")
