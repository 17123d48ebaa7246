"""bfloat16, float8_e4m3fn and float8_e5m2 (``ml_dtypes``): numpack's dtype codes 14-16,
through every read and write, the conversions whose formats have the types, and search."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpack.io as nio
from numpack import NumPack
from numpack.vector_engine import StreamingVectorEngine, VectorEngine

TYPES = {
    "bfloat16": (ml_dtypes.bfloat16, 14),
    "float8_e4m3fn": (ml_dtypes.float8_e4m3fn, 15),
    "float8_e5m2": (ml_dtypes.float8_e5m2, 16),
}


def bits(a):
    """The exact bytes (NaNs compare by bit pattern)."""
    return np.ascontiguousarray(a).view(np.uint8 if a.dtype.itemsize == 1 else np.uint16)


def any_values(dtype, shape, seed):
    """Every bit pattern may occur (NaNs, infinities, subnormals, -0)."""
    rng = np.random.default_rng(seed)
    size = np.dtype(dtype).itemsize
    raw = rng.integers(0, 256**size, size=shape, dtype=np.uint16 if size == 2 else np.uint8)
    return raw.view(dtype)


SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    name=st.sampled_from(sorted(TYPES)),
    rows=st.integers(0, 30),
    seed=st.integers(0, 999),
    data=st.data(),
)
def test_every_read_and_write_keeps_the_bits(tmp_path_factory, name, rows, seed, data):
    dtype, code = TYPES[name]
    a = any_values(dtype, (rows, 3), seed)
    path = tmp_path_factory.mktemp("s") / "x.npk"
    with NumPack(path) as npk:
        npk.save({"a": a, "s": a[:1].reshape(3)[0:1].reshape(())} if rows else {"a": a})
        assert npk.get_metadata()["arrays"]["a"]["dtype"] in (
            "Bfloat16",
            "Float8E4M3FN",
            "Float8E5M2",
        )
        got = npk.load("a")
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(bits(got), bits(a))
        np.testing.assert_array_equal(bits(np.asarray(npk.load("a", lazy=True))), bits(a))
        new = any_values(dtype, (data.draw(st.integers(1, 5)), 3), seed + 1)
        npk.append({"a": new})
        a = np.concatenate([a, new])
        idx = data.draw(st.lists(st.integers(0, len(a) - 1), min_size=1, max_size=4, unique=True))
        vals = any_values(dtype, (len(idx), 3), seed + 2)
        npk.replace({"a": vals}, idx)
        a[idx] = vals
        np.testing.assert_array_equal(bits(npk.getitem("a", idx)), bits(a[idx]))
        parts = list(npk.stream_load("a", buffer_size=4))
        np.testing.assert_array_equal(bits(np.concatenate(parts)), bits(a))
        lazy = npk.load("a", lazy=True)
        np.testing.assert_array_equal(bits(lazy[1:]), bits(a[1:]))
    raw = (path / "metadata.npkm").read_bytes()
    assert bytes([code]) in raw  # the stored code
    with NumPack(path) as npk:
        np.testing.assert_array_equal(bits(npk.load("a")), bits(a))


def test_without_ml_dtypes_the_error_names_the_extra(tmp_path):
    a = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": a, "f": np.arange(3, dtype=np.float32)})
    code = (
        "import sys; sys.modules['ml_dtypes'] = None\n"
        "from numpack import NumPack\n"
        "from numpack.exceptions import DependencyError\n"
        f"npk = NumPack({str(tmp_path / 's.npk')!r}); npk.open()\n"
        "print(npk.load('f').sum())\n"
        "try:\n    npk.load('a')\nexcept DependencyError as e:\n    print('DEP', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "3.0" in out.stdout and "DEP" in out.stdout and "numpack[ml]" in out.stdout


@pytest.mark.parametrize("name", sorted(TYPES))
def test_search_scores_as_float16_does(name):
    dtype, _ = TYPES[name]
    rng = np.random.default_rng(4)
    c = (rng.standard_normal((200, 24)) * 2).astype(dtype)
    q = c[[5, 80]]
    e = VectorEngine()
    for metric in ("dot", "cosine", "l2sq"):
        idx, scores = (r.reshape(len(q), -1) for r in e.multi_query_top_k(q, c, metric, 3))
        cf, qf = c.astype(np.float64), q.astype(np.float64)
        if metric == "dot":
            ref = qf @ cf.T
        elif metric == "cosine":
            ref = (qf @ cf.T) / np.outer(np.linalg.norm(qf, axis=1), np.linalg.norm(cf, axis=1))
        else:
            ref = ((qf[:, None, :] - cf[None]) ** 2).sum(-1)
        got = np.take_along_axis(ref, idx.astype(np.int64), axis=1)
        np.testing.assert_allclose(scores, got, rtol=1e-5, atol=1e-5)
        best = np.argsort(-ref if metric != "l2sq" else ref, axis=1, kind="stable")[:, 0]
        np.testing.assert_allclose(
            np.take_along_axis(ref, idx[:, :1].astype(np.int64), 1)[:, 0],
            np.take_along_axis(ref, best[:, None], 1)[:, 0],
            rtol=1e-5,
        )
    # float32 queries against these candidates: exact float64 scores.
    idx, scores = (
        r.reshape(len(q), -1) for r in e.multi_query_top_k(q.astype(np.float32), c, "dot", 1)
    )
    np.testing.assert_allclose(
        scores[:, 0], (q.astype(np.float64) @ c.astype(np.float64).T)[[0, 1], idx[:, 0].astype(int)]
    )


def test_search_from_a_store(tmp_path):
    rng = np.random.default_rng(5)
    c = rng.standard_normal((300, 16)).astype(ml_dtypes.bfloat16)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"e": c})
        npk.drop("e", [0])
        idx, _ = npk.search("e", c[[10, 20]], k=1, exact=True, metric="cosine")
        assert np.asarray(idx)[:, 0].tolist() == [9, 19]
        with pytest.raises(TypeError, match="float32"):
            npk.create_index("e", nlist=4)
    top, _ = StreamingVectorEngine().streaming_top_k_from_file(
        c[33], tmp_path / "s.npk", "e", "l2sq", 1
    )
    assert int(top[0]) == 32


@pytest.mark.parametrize("name", sorted(TYPES))
@pytest.mark.parametrize(
    "fmt", ["safetensors", "torch", "pt", "parquet", "feather", "table", "csv", "pack", "dataset"]
)
def test_conversions_round_trip(tmp_path, name, fmt):
    dtype, _ = TYPES[name]
    a = np.linspace(-3, 3, 24, dtype=np.float32).reshape(8, 3).astype(dtype)
    src = tmp_path / "s.npk"
    with NumPack(src) as npk:
        npk.save({"a": a})
    back = tmp_path / "back.npk"
    if fmt == "safetensors":
        nio.to_safetensors_file(src, tmp_path / "x.st", "a")
        header = json.loads(
            (tmp_path / "x.st").read_bytes()[
                8 : 8 + struct.unpack("<Q", (tmp_path / "x.st").read_bytes()[:8])[0]
            ]
        )
        assert (
            header["a"]["dtype"]
            == {"bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}[name]
        )
        import torch
        from safetensors.torch import load_file

        t = load_file(str(tmp_path / "x.st"))["a"]
        assert t.dtype == getattr(torch, name)
        np.testing.assert_array_equal(t.float().numpy(), a.astype(np.float32))
        nio.from_safetensors_file(tmp_path / "x.st", back)
    elif fmt == "torch":
        import torch

        t = nio.to_tensor(src, "a")
        assert t.dtype == getattr(torch, name)
        np.testing.assert_array_equal(t.float().numpy(), a.astype(np.float32))
        nio.from_tensor(t, back, "a")
    elif fmt == "pt":
        nio.to_pt(src, tmp_path / "x.pt")
        nio.from_pt(tmp_path / "x.pt", back)
    elif fmt == "parquet":
        nio.to_parquet_file(src, tmp_path / "x.parquet", "a")
        import pyarrow.parquet as pq

        f = pq.read_schema(tmp_path / "x.parquet").field(0)
        assert (
            f.type.byte_width == a.dtype.itemsize and f.metadata[b"numpack.dtype"] == name.encode()
        )
        nio.from_parquet_file(tmp_path / "x.parquet", back, "a")
    elif fmt == "feather":
        nio.to_feather_file(src, tmp_path / "x.feather", "a")
        nio.from_feather_file(tmp_path / "x.feather", back, "a")
    elif fmt == "table":
        nio.from_table(nio.to_table(src, "a").slice(0), back, "a")
    elif fmt == "csv":
        nio.to_csv(src, tmp_path / "x.csv", "a")
        nio.from_csv(tmp_path / "x.csv", back, "a", dtype=np.dtype(dtype))
    elif fmt == "pack":
        nio.pack(src, tmp_path / "x.npkg")
        nio.unpack(tmp_path / "x.npkg", back)
    else:
        import torch

        from numpack.torch import NumPackDataset, collate

        loader = torch.utils.data.DataLoader(
            NumPackDataset(src, "a"), batch_size=3, collate_fn=collate
        )
        batches = list(loader)
        assert batches[0].dtype == getattr(torch, name)
        np.testing.assert_array_equal(torch.cat(batches).float().numpy(), a.astype(np.float32))
        return
    with NumPack(back) as npk:
        got = npk.load("a")
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(bits(got), bits(a))


@pytest.mark.parametrize("fmt", ["npy", "hdf5", "zarr"])
def test_formats_without_the_types_refuse_them(tmp_path, fmt):
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.ones((3, 2), ml_dtypes.bfloat16), "f": np.ones(2)})
    out = tmp_path / f"x.{fmt}"
    call = {"npy": nio.to_npy, "hdf5": nio.to_hdf5, "zarr": nio.to_zarr}[fmt]
    with pytest.raises(ValueError, match="bfloat16"):
        call(tmp_path / "s.npk", out)
    assert not out.exists()
    call(tmp_path / "s.npk", out, "f")  # the other arrays still export
