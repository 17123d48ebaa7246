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


def put_package(tmp_path: Path, fs, key: str, x: np.ndarray) -> str:
    """Pack a store holding ``x`` (with a deleted row) and upload it to ``key``; its URL."""
    from helpers import BUCKET

    import numpack

    store = tmp_path / f"{key}.npk"
    with NumPack(store, drop_if_exists=True) as npk:
        npk.save({"x": np.concatenate([x[:1], x])})
        npk.drop("x", [0])
    pkg = numpack.pack(store, tmp_path / f"{key}.npkg", overwrite=True)
    fs.put_file(str(pkg), f"{BUCKET}/{key}.npkg")
    fs.invalidate_cache()
    return f"s3://{BUCKET}/{key}.npkg"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_packed_store_at_an_s3_url_is_read_by_every_worker(
    tmp_path: Path, s3, scheduler: str, request: pytest.FixtureRequest, monkeypatch
) -> None:
    """Workers that do not share the driver's cache (another machine) fetch the package
    themselves, once per cache, and read the rows the driver saw."""
    opts, fs = s3
    x = data(600)
    url = put_package(tmp_path, fs, f"emb-{scheduler}", x)
    driver = tmp_path / "driver-cache"
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(driver))
    arr = nd.from_numpack(url=url, name="x", chunks=128, storage_options=opts)
    assert arr.shape == x.shape and arr.numblocks == (5, 1)
    assert len(os.listdir(driver / "packages")) == 2  # the store and its lock
    if scheduler != "distributed":  # the cluster's workers keep the environment they began with
        worker = tmp_path / "worker-cache"
        monkeypatch.setenv("NUMPACK_CACHE_DIR", str(worker))
        if scheduler == "threads":
            import shutil

            shutil.rmtree(driver)  # the tasks run here: they must fetch it again
    with run_with(scheduler, request):
        got = arr.compute()
    assert np.array_equal(got, x)
    if scheduler == "processes":
        entries = os.listdir(worker / "packages")
        assert sorted(e.endswith(".lock") for e in entries) == [False, True], entries
    # The same object as a plain path argument.
    assert np.array_equal(nd.from_numpack(url, "x", storage_options=opts)[-5:].compute(), x[-5:])


def test_a_package_replaced_after_the_job_began_is_refused(tmp_path: Path, s3, monkeypatch) -> None:
    opts, fs = s3
    url = put_package(tmp_path, fs, "moving", data(100))
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(tmp_path / "a"))
    arr = nd.from_numpack(url=url, name="x", storage_options=opts)
    put_package(tmp_path, fs, "moving", data(100) + 1)
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(tmp_path / "b"))  # the workers' machine
    with pytest.raises(RuntimeError, match="replaced after the job began"):
        arr.compute(scheduler="processes")
    assert not (tmp_path / "b" / "packages").exists() or not [
        e for e in os.listdir(tmp_path / "b" / "packages") if not e.endswith(".lock")
    ]


def test_a_hostile_package_at_a_url_leaves_nothing_cached(tmp_path: Path, s3, monkeypatch) -> None:
    from helpers import BUCKET

    from numpack.exceptions import CorruptStoreError

    opts, fs = s3
    url = put_package(tmp_path, fs, "bad", data(50))
    raw = bytearray(fs.cat_file(f"{BUCKET}/bad.npkg"))
    raw[20:24] = b"\xff\xff\xff\x7f"  # the first member's name length
    fs.pipe_file(f"{BUCKET}/bad.npkg", bytes(raw))
    fs.invalidate_cache()
    cache = tmp_path / "c"
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(cache))
    with pytest.raises((CorruptStoreError, ValueError)):
        nd.from_numpack(url=url, name="x", storage_options=opts)
    assert [e for e in os.listdir(cache / "packages") if not e.endswith(".lock")] == []


def test_url_arguments_are_checked(tmp_path: Path, s3) -> None:
    opts, fs = s3
    url = put_package(tmp_path, fs, "args", data(10))
    with pytest.raises(ValueError, match="one version"):
        nd.from_numpack(url=url, name="x", version=1, storage_options=opts)
    with pytest.raises(TypeError, match="not both"):
        nd.from_numpack(tmp_path / "args.npk", "x", url=url)
    with pytest.raises(FileNotFoundError):
        nd.from_numpack(url=url + ".missing", name="x", storage_options=opts)
    with pytest.raises(TypeError, match="name"):
        nd.from_numpack(url=url, storage_options=opts)


def test_the_package_cache_is_private_and_clears_what_killed_fetches_left(
    tmp_path: Path, monkeypatch
) -> None:
    import fsspec

    import numpack
    from numpack._fetch import Package
    from numpack.snapshot import Snapshot

    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"x": data(30)})
    numpack.pack(tmp_path / "s.npk", tmp_path / "s.npkg")
    fsspec.filesystem("memory").put_file(str(tmp_path / "s.npkg"), "/cache-test/s.npkg")
    cache = tmp_path / "cache"
    monkeypatch.setenv("NUMPACK_CACHE_DIR", str(cache))
    pkg = Package.locate("memory://cache-test/s.npkg")
    left = cache / "packages" / f"{pkg.key}.killed"
    left.mkdir(parents=True, mode=0o700)
    (left / "package.npkg").write_bytes(b"half a download")
    os.chmod(cache, 0o700)
    os.chmod(cache / "packages", 0o700)
    with Snapshot.fetch(pkg) as snap:
        assert np.array_equal(snap.load("x"), data(30))
    assert not left.exists()
    assert oct(os.stat(cache / "packages").st_mode & 0o777) == "0o700"
    os.chmod(cache / "packages", 0o777)  # writable by anyone: a store could be planted
    with pytest.raises(PermissionError, match="private"):
        Snapshot.fetch(Package.locate("memory://cache-test/s.npkg"))
