"""numpack.dask under the threaded, process and distributed schedulers: reads pinned to a
version, staged writes committed once, failed and killed tasks leaving the store as it was."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
nd = pytest.importorskip("numpack.dask")

from numpack import NumPack  # noqa: E402


def data(rows: int = 1000) -> np.ndarray:
    return np.arange(rows * 6, dtype=np.float32).reshape(rows, 6)


def stage_files(path: Path) -> list[str]:
    return [n for n in os.listdir(path) if ".stage-" in n]


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as c,
        distributed.Client(c) as client,
    ):
        yield client


SCHEDULERS = ["threads", "processes", "distributed"]


def run_with(scheduler: str, request: pytest.FixtureRequest):
    if scheduler == "distributed":
        client = request.getfixturevalue("cluster")
        return dask.config.set(scheduler=client.get)
    return dask.config.set(scheduler=scheduler)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_round_trip_and_pinned_reads(
    tmp_path: Path, scheduler: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "s.npk"
    x = data()
    with run_with(scheduler, request):
        nd.to_numpack(da.from_array(x, chunks=(128, 3)), path, "x")
        arr = nd.from_numpack(path, "x", chunks=100)
        assert arr.chunks[0] == (100,) * 10 and arr.chunks[1] == (6,)
        with NumPack(path) as npk:
            np.testing.assert_array_equal(npk.load("x"), x)
            # Later commits do not change what the dask array reads.
            npk.replace({"x": np.zeros((5, 6), np.float32)}, [0, 1, 2, 3, 4])
            npk.append({"x": np.ones((3, 6), np.float32)})
        assert float(arr.sum().compute()) == float(x.sum())
        np.testing.assert_array_equal(arr[::7].compute(), x[::7])
        # Append and overwrite through stages.
        nd.to_numpack(da.from_array(x[:50], chunks=16), path, "x", mode="append")
        with NumPack(path) as npk:
            got = npk.load("x")
        assert got.shape == (1053, 6)
        np.testing.assert_array_equal(got[1003:], x[:50])
        nd.to_numpack(da.from_array(x[:20], chunks=7), path, "x", mode="overwrite")
        with NumPack(path) as npk:
            np.testing.assert_array_equal(npk.load("x"), x[:20])
    assert stage_files(path) == []


def _fail_on_block(block: np.ndarray, block_info=None) -> np.ndarray:
    if block_info[0]["chunk-location"][0] == 3:
        raise RuntimeError("task failed on purpose")
    return block


def _die_on_block(block: np.ndarray, block_info=None) -> np.ndarray:
    if block_info[0]["chunk-location"][0] == 2:
        os._exit(3)
    return block


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_failing_task_leaves_the_store_as_before(
    tmp_path: Path, scheduler: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "s.npk"
    x = data(400)
    with NumPack(path) as npk:
        npk.save({"x": x})
        before_version = npk.version
    bad = da.from_array(x, chunks=50).map_blocks(_fail_on_block, dtype=x.dtype)
    with run_with(scheduler, request):
        for mode in ("append", "overwrite"):
            with pytest.raises(RuntimeError, match="on purpose"):
                nd.to_numpack(bad, path, "x", mode=mode)
        with pytest.raises(RuntimeError, match="on purpose"):
            nd.to_numpack(bad, path, "new", mode="create")
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("x"), x)
        assert npk.get_member_list() == ["x"]
        assert npk.version == before_version
    assert stage_files(path) == []


def test_a_task_killed_mid_write_leaves_the_store_as_before(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    x = data(400)
    with NumPack(path) as npk:
        npk.save({"x": x})
    dying = da.from_array(x, chunks=50).map_blocks(_die_on_block, dtype=x.dtype)
    from concurrent.futures.process import BrokenProcessPool

    with dask.config.set(scheduler="processes", num_workers=2), pytest.raises(BrokenProcessPool):
        nd.to_numpack(dying, path, "x", mode="append")
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("x"), x)
    assert stage_files(path) == []


def test_arguments_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    x = da.from_array(data(10), chunks=5)
    nd.to_numpack(x, path, "x")
    with pytest.raises(ValueError, match="exists"):
        nd.to_numpack(x, path, "x", mode="create")
    with pytest.raises(ValueError, match="mode"):
        nd.to_numpack(x, path, "x", mode="upsert")
    with pytest.raises(ValueError):
        nd.to_numpack(da.from_array(np.zeros((3, 5), np.float32)), path, "x", mode="append")
    with pytest.raises(ValueError, match="chunks"):
        nd.from_numpack(path, "x", chunks=0)
    with pytest.raises(KeyError):
        nd.from_numpack(path, "missing")
    unknown = da.from_array(data(10), chunks=5)
    unknown = unknown[unknown[:, 0] > 3]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        nd.to_numpack(unknown, path, "y")
