"""numpack.ray in local mode (ray.init(num_cpus=2)): read_numpack → map_batches →
write_numpack round trip at one version; a failing task leaves the store as before."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
nr = pytest.importorskip("numpack.ray")

from numpack import NumPack  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import sys

    # Workers cannot import this test module: its functions travel by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_store(path: Path, rows: int = 500) -> np.ndarray:
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    with NumPack(path, drop_if_exists=True) as npk:
        npk.save({"x": x, "y": np.arange(rows, dtype=np.int64)})
    return x


def _double(batch: dict) -> dict:
    return {"x": batch["x"] * 2}


def _fail(batch: dict) -> dict:
    if (batch["y"] >= 250).any():
        raise RuntimeError("task failed on purpose")
    return {"x": batch["x"]}


def test_read_map_write_round_trip_at_one_version(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    x = make_store(path)
    ds = nr.read_numpack(path, arrays=("x", "y"), parallelism=4)
    with NumPack(path) as npk:  # after the dataset was made: not seen by it
        npk.replace({"y": np.full(10, -1, np.int64)}, list(range(10)))
        npk.append({"x": np.zeros((3, 4), np.float32), "y": np.zeros(3, np.int64)})
    assert ds.count() == 500
    y = np.concatenate([b["y"] for b in ds.iter_batches(batch_format="numpy")])
    assert np.array_equal(np.sort(y), np.arange(500))
    doubled = ds.map_batches(_double, batch_format="numpy")
    nr.write_numpack(doubled, path, "x2")
    with NumPack(path) as npk:
        got = npk.load("x2")
    assert got.shape == (500, 4)
    assert np.array_equal(np.sort(got[:, 0]), np.sort(x[:, 0] * 2))
    nr.write_numpack(doubled, path, "x2", mode="append")
    with NumPack(path) as npk:
        assert npk.get_shape("x2") == (1000, 4)
    assert [n for n in os.listdir(path) if ".stage-" in n] == []


def test_a_failing_task_leaves_the_store_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    make_store(path)
    with NumPack(path) as npk:
        before = npk.version
    bad = nr.read_numpack(path, parallelism=4).map_batches(_fail, batch_format="numpy")
    with pytest.raises(Exception, match="on purpose"):  # Ray wraps the error in its own
        nr.write_numpack(bad, path, "x", mode="append")
    with NumPack(path) as npk:
        assert npk.version == before and npk.get_shape("x") == (500, 4)
    assert [n for n in os.listdir(path) if ".stage-" in n] == []
    with pytest.raises(ValueError, match="mode"):
        nr.write_numpack(bad, path, "x", mode="upsert")
    with pytest.raises(ValueError, match="same number of rows"):
        with NumPack(path) as npk:
            npk.save({"z": np.zeros(3)})
        nr.read_numpack(path, arrays=("x", "z"))


def test_read_numpack_from_a_packed_store_at_an_s3_url(tmp_path: Path, s3, monkeypatch) -> None:
    from helpers import BUCKET

    import numpack

    opts, fs = s3
    path = tmp_path / "s.npk"
    x = make_store(path, rows=300)
    numpack.pack(path, tmp_path / "s.npkg")
    fs.put_file(str(tmp_path / "s.npkg"), f"{BUCKET}/ray/s.npkg")
    fs.invalidate_cache()
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(tmp_path / "cache"))
    ds = nr.read_numpack(
        url=f"s3://{BUCKET}/ray/s.npkg", arrays=("x", "y"), parallelism=3, storage_options=opts
    )
    got = ds.to_numpy_refs(column="x")
    rows = np.concatenate(ray.get(got))
    assert np.array_equal(np.sort(rows[:, 0]), x[:, 0])
    assert ds.count() == 300
    with pytest.raises(ValueError, match="one version"):
        nr.read_numpack(url=f"s3://{BUCKET}/ray/s.npkg", version=1, storage_options=opts)
