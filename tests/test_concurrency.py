"""Several writers on one store at once: processes appending to one array, threads and
processes creating different arrays. Nothing may be lost or duplicated."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from numpack import NumPack

ROWS_PER_WRITER = 200


def append_rows(path, writer, rows, start_event):
    """Worker: append ``rows`` rows ``[writer, i, writer * 1000 + i]``, one call per row."""
    start_event.wait(30)
    with NumPack(path) as npk:
        for i in range(rows):
            npk.append({"log": np.array([[writer, i, writer * 1000 + i]], dtype=np.int64)})


def save_arrays(path, writer, count):
    """Worker: create ``count`` arrays of its own, reopening its NumPack every other array."""
    npk = NumPack(path)
    npk.open()
    try:
        for j in range(count):
            npk.save({f"p{writer}_{j}": np.full((j + 1, 3), writer * 100 + j, dtype=np.int32)})
            if j % 2:
                npk.close()
                npk.open()
    finally:
        npk.close()


def run_processes(target, args_list):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    return procs


def join_all(procs, timeout=120):
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join(5)
    assert not alive, "a writer process hung"
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_append_to_one_array(store_path):
    with NumPack(store_path) as npk:
        npk.save({"log": np.zeros((0, 3), dtype=np.int64)})
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=append_rows, args=(str(store_path), writer, ROWS_PER_WRITER, start))
        for writer in (1, 2)
    ]
    for p in procs:
        p.start()
    start.set()
    join_all(procs)
    with NumPack(store_path) as npk:
        log = npk.load("log")
        assert log.dtype == np.int64
        assert npk.get_shape("log") == (2 * ROWS_PER_WRITER, 3)
    assert log.shape == (2 * ROWS_PER_WRITER, 3)
    rows, counts = np.unique(log, axis=0, return_counts=True)
    assert (counts == 1).all(), rows[counts > 1]
    expected = {(w, i, w * 1000 + i) for w in (1, 2) for i in range(ROWS_PER_WRITER)}
    assert {tuple(int(v) for v in row) for row in log} == expected
    for writer in (1, 2):
        mine = log[log[:, 0] == writer]
        assert mine[:, 1].tolist() == list(range(ROWS_PER_WRITER))  # each writer's order kept


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_processes_create_different_arrays(store_path):
    with NumPack(store_path) as npk:
        npk.save({"base": np.arange(3)})
    procs = run_processes(save_arrays, [(str(store_path), w, 6) for w in range(3)])
    join_all(procs)
    with NumPack(store_path) as npk:
        expected = {"base"} | {f"p{w}_{j}" for w in range(3) for j in range(6)}
        assert set(npk.get_member_list()) == expected
        for w in range(3):
            for j in range(6):
                arr = npk.load(f"p{w}_{j}")
                np.testing.assert_array_equal(arr, np.full((j + 1, 3), w * 100 + j, dtype=np.int32))
                assert arr.dtype == np.int32


@pytest.mark.timeout(120)
def test_threads_with_own_instances_create_different_arrays(store_path):
    with NumPack(store_path) as npk:
        npk.save({"base": np.arange(3)})
    errors = []
    barrier = threading.Barrier(4)

    def worker(k):
        try:
            barrier.wait(30)
            with NumPack(store_path) as npk:
                for j in range(8):
                    npk.save({f"t{k}_{j}": np.arange(j + 1, dtype=np.float64) + k * 100})
                    got = npk.load(f"t{k}_{j}")
                    np.testing.assert_array_equal(got, np.arange(j + 1, dtype=np.float64) + k * 100)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a writer thread hung"
    assert errors == []
    with NumPack(store_path) as npk:
        expected = {"base"} | {f"t{k}_{j}" for k in range(4) for j in range(8)}
        assert set(npk.get_member_list()) == expected
        for k in range(4):
            for j in range(8):
                np.testing.assert_array_equal(
                    npk.load(f"t{k}_{j}"), np.arange(j + 1, dtype=np.float64) + k * 100
                )
        np.testing.assert_array_equal(npk.load("base"), np.arange(3))


@pytest.mark.timeout(120)
def test_threads_with_own_instances_append_to_one_array(store_path):
    with NumPack(store_path) as npk:
        npk.save({"log": np.zeros((0, 2), dtype=np.int32)})
    errors = []
    barrier = threading.Barrier(3)

    def worker(k):
        try:
            barrier.wait(30)
            with NumPack(store_path) as npk:
                for i in range(40):
                    npk.append({"log": np.array([[k, i]], dtype=np.int32)})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with NumPack(store_path) as npk:
        log = npk.load("log")
    assert log.shape == (120, 2)
    assert sorted(map(tuple, log.tolist())) == sorted((k, i) for k in range(3) for i in range(40))
