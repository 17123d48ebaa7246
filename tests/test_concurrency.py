"""Several writers on one store at once: processes appending to one array, threads and
processes creating different arrays. Nothing may be lost or duplicated.  Processes mixing
appends, row drops and replaces on one array must end in a state some serial order of their
calls gives; a writer killed mid-call leaves every multi-array call whole."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import signal
import threading
import time

import numpy as np
import pytest
from helpers import StoreProcess, mp_context, multi_array_calls, multi_array_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# --- serialisability of appends, row drops and replaces ------------------------------------
#
# Each process gets a short list of abstract ops on the int64 array "x" of 3 columns.  Every
# row the test writes is unique: initial rows are (-1, r, r), rows appended by process p in
# its op i are (p, i, j), a replace by it writes (p, i, -1).  Every call's outcome (success,
# the exception class, the rows a read returned) and the final content are then checked
# against every interleaving of the per-process lists, simulated on a list of rows.

DROP_KEYS = [-1, 0, -2, slice(-2, None), slice(1, 3), [0, -1]]
REPLACE_KEYS = [0, -1, slice(-2, None)]
READ_KEYS = [-1, 0, slice(-2, None)]
MASK_LENGTHS = range(7)

OPS = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3)),
    st.tuples(st.just("drop"), st.sampled_from(DROP_KEYS)),
    st.tuples(st.just("drop_mask"), st.lists(st.booleans(), max_size=max(MASK_LENGTHS))),
    st.tuples(st.just("replace"), st.sampled_from(REPLACE_KEYS)),
    st.tuples(st.just("getitem"), st.sampled_from(READ_KEYS)),
    st.tuples(st.just("load")),
)


def random_op(rng):
    """One abstract op drawn with ``rng`` (a ``random.Random``), as ``OPS`` draws them."""
    kind = rng.choice(["append", "append", "drop", "drop_mask", "replace", "getitem", "load"])
    if kind == "append":
        return (kind, rng.randint(1, 3))
    if kind == "drop":
        return (kind, rng.choice(DROP_KEYS))
    if kind == "drop_mask":
        return (kind, [rng.random() < 0.5 for _ in range(rng.choice(MASK_LENGTHS))])
    if kind == "replace":
        return (kind, rng.choice(REPLACE_KEYS))
    if kind == "getitem":
        return (kind, rng.choice(READ_KEYS))
    return (kind,)


def initial_rows(count):
    return tuple((-1, r, r) for r in range(count))


def to_call(proc, i, op):
    """The numpack call (a ``helpers.run_op`` op) of abstract op number ``i`` of ``proc``."""
    kind = op[0]
    if kind == "append":
        rows = np.array([(proc, i, j) for j in range(op[1])], dtype=np.int64)
        return ("append", {"x": rows})
    if kind == "drop":
        return ("drop", "x", op[1])
    if kind == "drop_mask":
        return ("drop", "x", np.array(op[1], dtype=bool))
    if kind == "replace":
        return ("replace", {"x": np.array([(proc, i, -1)], dtype=np.int64)}, op[1])
    if kind == "getitem":
        return ("getitem", "x", op[1])
    return ("load", "x")


def observed(outcome):
    """A worker outcome, comparable with ``simulate``'s: ("ok", rows or None) / ("err", class)."""
    if outcome[0] == "err":
        return ("err", outcome[2])
    value = outcome[1]
    if isinstance(value, np.ndarray):
        return ("ok", tuple(tuple(int(v) for v in row) for row in value.tolist()))
    return ("ok", value)


def positions(key, n):
    """The rows ``key`` selects from ``n`` rows, or the class of the error the call raises."""
    if isinstance(key, slice):
        return list(range(n))[key], None
    if isinstance(key, np.ndarray):  # bool mask
        if len(key) != n:
            return None, "ValueError"
        return [int(i) for i in np.flatnonzero(key)], None
    keys = [key] if isinstance(key, int) else list(key)
    if any(not -n <= k < n for k in keys):
        return None, "IndexOutOfRangeError"
    return [k % n for k in keys], None


def simulate(rows, proc, i, op):
    """``(rows after, outcome)`` of abstract op ``i`` of ``proc`` applied to ``rows`` (None:
    the array is gone, as a drop of its last rows removes it)."""
    kind = op[0]
    if rows is None:
        return None, ("err", "ArrayNotFoundError")
    n = len(rows)
    if kind == "append":
        return rows + tuple((proc, i, j) for j in range(op[1])), ("ok", None)
    if kind == "load":
        return rows, ("ok", rows)
    key = np.array(op[1], dtype=bool) if kind == "drop_mask" else op[1]
    selected, error = positions(key, n)
    if error:
        return rows, ("err", error)
    if kind in ("drop", "drop_mask"):
        gone = set(selected)
        left = tuple(r for k, r in enumerate(rows) if k not in gone)
        return (None if gone and not left else left), ("ok", None)
    if kind == "replace":
        new = list(rows)
        for k in selected:
            new[k] = (proc, i, -1)
        return tuple(new), ("ok", None)
    return rows, ("ok", tuple(rows[k] for k in selected))  # getitem


def serial_order(initial, ops, outcomes, final):
    """An interleaving of the per-process ``ops`` whose simulation reproduces every
    outcome and ends in ``final``, as a list of (process, op number); None if there is none.
    Depth-first over (progress per process, rows), pruned at the first differing outcome."""
    seen = set()
    stack = [(tuple(0 for _ in ops), initial, ())]
    while stack:
        done, rows, order = stack.pop()
        if (done, rows) in seen:
            continue
        seen.add((done, rows))
        if all(d == len(o) for d, o in zip(done, ops)):
            if rows == final:
                return list(order)
            continue
        for proc, i in enumerate(done):
            if i == len(ops[proc]):
                continue
            after, outcome = simulate(rows, proc, i, ops[proc][i])
            if outcome == outcomes[proc][i]:
                advanced = (*done[:proc], i + 1, *done[proc + 1 :])
                stack.append((advanced, after, (*order, (proc, i))))
    return None


def run_together(workers, path, ops_per_worker):
    """Open ``path`` in every worker, then run each worker's ops, all released at once by
    the workers' shared barrier; the outcomes, per worker."""
    for worker in workers:
        worker.open(path)
    for worker, ops in zip(workers, ops_per_worker):
        worker.start_batch(ops, sync=True)
    results = [worker.finish_batch() for worker in workers]
    for worker in workers:
        worker.close()
    return results


def check_serialisable(workers, path, initial_count, ops):
    initial = initial_rows(initial_count)
    with NumPack(path) as npk:
        npk.save({"x": np.array(initial, dtype=np.int64).reshape(-1, 3)})
    calls = [[to_call(p, i, op) for i, op in enumerate(mine)] for p, mine in enumerate(ops)]
    results = run_together(workers, path, calls)
    for p, mine in enumerate(results):
        for i, outcome in enumerate(mine):
            # Only errors the model can predict: anything else is a bug in itself.
            predictable = ("IndexOutOfRangeError", "ValueError", "ArrayNotFoundError")
            assert outcome[0] == "ok" or outcome[2] in predictable, (
                p,
                i,
                ops[p][i],
                outcome,
            )
    outcomes = [[observed(o) for o in mine] for mine in results]
    with NumPack(path) as npk:
        final = observed(("ok", npk.load("x")))[1] if npk.has_array("x") else None
        assert final is None or npk.get_shape("x") == (len(final), 3)
    order = serial_order(initial, ops, outcomes, final)
    assert order is not None, (
        "no serial order of the calls explains what they returned and the final content:\n"
        f"initial rows: {initial}\nops: {ops}\noutcomes: {outcomes}\nfinal: {final}"
    )


@pytest.fixture
def workers(request):
    """Store processes sharing one barrier (``request.param`` of them, default 2)."""
    count = getattr(request, "param", 2)
    ctx = mp_context()
    barrier = ctx.Barrier(count)
    procs = []
    try:
        for _ in range(count):
            procs.append(StoreProcess(ctx, barrier))
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def test_serial_order_checker_rejects_a_lost_row():
    """The checker itself: two ``drop(-1)`` on 3 rows that both succeed must leave 1 row."""
    initial = initial_rows(3)
    ops = [[("drop", -1)], [("drop", -1)]]
    ok = [[("ok", None)], [("ok", None)]]
    assert serial_order(initial, ops, ok, initial[:1]) is not None
    assert serial_order(initial, ops, ok, initial[:2]) is None  # one drop lost
    failed = [[("ok", None)], [("err", "IndexOutOfRangeError")]]
    assert serial_order(initial, ops, failed, initial[:2]) is None  # spurious error
    # On 1 row, the first drop removes the array (its last row): the second finds none.
    gone = [[("ok", None)], [("err", "ArrayNotFoundError")]]
    assert serial_order(initial_rows(1), ops, gone, None) is not None
    assert serial_order(initial_rows(1), ops, failed, ()) is None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_mixing_appends_drops_replaces_are_serialisable(workers, tmp_path):
    counter = itertools.count()

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        initial_count=st.integers(0, 4),
        ops=st.lists(st.lists(OPS, min_size=5, max_size=5), min_size=2, max_size=2),
    )
    def check(initial_count, ops):
        check_serialisable(workers, tmp_path / f"s{next(counter)}", initial_count, ops)

    check()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("workers", [3], indirect=True)
def test_three_processes_mixing_appends_drops_replaces_are_serialisable(workers, tmp_path):
    rng = random.Random(20240611)
    for round_ in range(25):
        ops = [[random_op(rng) for _ in range(4)] for _ in workers]
        check_serialisable(workers, tmp_path / f"s{round_}", rng.randint(0, 6), ops)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [3], indirect=True)
@pytest.mark.parametrize(
    ("key", "removed"),
    [(-1, 1), (slice(-2, None), 2), ([-1], 1), (np.array([-2, -1]), 2)],
    ids=["int", "slice", "list", "ndarray"],
)
def test_concurrent_drops_from_the_end_lose_nothing(workers, store_path, key, removed):
    """Regression: negative indexes resolved against a stale shape made concurrent
    ``drop("x", -1)`` calls delete the same row twice or raise ``IndexOutOfRangeError``."""
    per_worker = 40
    total = len(workers) * per_worker * removed
    rows = total + 7
    original = np.arange(rows * 2, dtype=np.int64).reshape(rows, 2)
    with NumPack(store_path) as npk:
        npk.save({"x": original})
    results = run_together(workers, store_path, [[("drop", "x", key)] * per_worker] * 3)
    assert [[o[0] for o in mine] for mine in results] == [["ok"] * per_worker] * 3, results
    with NumPack(store_path) as npk:
        assert npk.get_shape("x") == (rows - total, 2)
        np.testing.assert_array_equal(npk.load("x"), original[: rows - total])


# Eager reads only: a LazyArray keeps the rows of its creation over live data by contract
# (API.md), so it may legitimately show a later in-place replace.  ``stream_load`` promises
# "the array version current at call time" (its copy-on-write exception is for large
# batches of arrays without deleted rows; this array has deleted rows).
READS = {
    "load": lambda npk: npk.load("x"),
    "getitem": lambda npk: npk.getitem("x", slice(-3, None)),
    "stream_load": lambda npk: np.concatenate(list(npk.stream_load("x", 1 << 20))),
}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "read",
    [
        "getitem",
        "load",
        "stream_load",
    ],
)
def test_reads_never_mix_a_replace_with_rows_an_earlier_drop_removed(store_path, read):
    """Every read is of one committed state.  A writer repeats: append ``[(k, 0), (k, 1)]``,
    ``drop(-1)`` (removes ``(k, 1)``), ``replace(-1)`` with ``(k, 2)``; its states end in
    ``(k, 0), (k, 1)`` or ``(k, 0)`` or ``(k, 2)``, so ``(k, 2)`` directly followed by
    ``(k, 1)`` is a read that took the rows of before the drop and the data of after the
    replace (which writes in place).  This test process reads meanwhile, with fresh and with
    long-lived handles."""
    cycles = 600
    with NumPack(store_path) as npk:
        npk.save({"x": np.zeros((1, 2), dtype=np.int64)})
    ops = []
    for k in range(1, cycles + 1):
        ops += [
            ("append", {"x": np.array([[k, 0], [k, 1]], dtype=np.int64)}),
            ("drop", "x", -1),
            ("replace", {"x": np.array([[k, 2]], dtype=np.int64)}, -1),
        ]
    writer = StoreProcess()
    torn, reads = [], 0
    try:
        writer.open(store_path)
        writer.start_batch(ops, sync=False)
        while not writer.poll():
            with NumPack(store_path) as npk:
                for _ in range(20):
                    x = READS[read](npk)
                    reads += 1
                    assert x.ndim == 2 and x.shape[1] == 2 and x.dtype == np.int64
                    bad = (x[:-1, 1] == 2) & (x[1:, 1] == 1) & (x[:-1, 0] == x[1:, 0])
                    if bad.any():
                        i = int(np.flatnonzero(bad)[0])
                        torn.append(x[i : i + 2].tolist())
        outcomes = writer.finish_batch()
    finally:
        writer.stop()
    assert [o[0] for o in outcomes] == ["ok"] * len(ops)
    assert not torn, f"{len(torn)} of {reads} reads mixed two states, e.g. {torn[:3]}"
    with NumPack(store_path) as npk:
        x = npk.load("x")
    expected = [[0, 0]] + [[k, 2] for k in range(1, cycles + 1)]
    assert x.tolist() == expected


def apply_writer_call(state, op):
    """``multi_array_calls`` op applied to a ``{"x": ..., "y": ...}`` model."""
    method, arrays, *key = op
    if method == "append":
        return {name: np.concatenate([state[name], arrays[name]]) for name in state}
    selected = np.arange(len(state["x"]))[key[0]]
    if method == "replace":
        new = {name: state[name].copy() for name in state}
        for name in new:
            new[name][selected] = arrays[name]
        return new
    return {name: np.delete(state[name], selected, axis=0) for name in state}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_writer_leaves_multi_array_calls_whole(store_path):
    """A writer whose every call names both ``x`` and ``y`` (appends, replaces and drops of
    the last rows) is SIGKILLed at random moments, 20 times.  After each kill the reopened
    store holds exactly the state after the calls that returned, or after one more (the call
    in flight, whole): never one array changed without the other, never a returned call lost."""
    model = {"x": np.zeros((0, 2), dtype=np.int64), "y": np.zeros(0, dtype=np.float64)}
    with NumPack(store_path) as npk:
        npk.save(model)
    ctx = mp_context()
    rng = random.Random(7)
    in_flight_committed = 0
    for round_ in range(20):
        done = ctx.RawValue("q", 0)
        seed = round_ + 1
        writer = ctx.Process(target=multi_array_writer, args=(str(store_path), done, seed))
        writer.start()
        try:
            deadline = time.monotonic() + 60
            while done.value == 0 and writer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.001)
            assert done.value > 0, f"the writer did not get going (exit {writer.exitcode})"
            time.sleep(rng.uniform(0, 0.04))
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(30)
        finally:
            if writer.is_alive():
                writer.kill()
                writer.join(10)
        assert writer.exitcode == -signal.SIGKILL, writer.exitcode  # killed, not crashed
        with NumPack(store_path) as npk:
            x, y = npk.load("x"), npk.load("y")
            assert npk.get_shape("x") == x.shape and npk.get_shape("y") == y.shape
        assert x.dtype == np.int64 and y.dtype == np.float64
        assert len(x) == len(y), (round_, x.shape, y.shape)
        np.testing.assert_array_equal(x[:, 0].astype(np.float64), y)
        np.testing.assert_array_equal(x[:, 1], -x[:, 0])
        calls = multi_array_calls(seed)
        for _ in range(done.value):
            model = apply_writer_call(model, next(calls))
        one_more = apply_writer_call(model, next(calls))
        matches = [
            all(np.array_equal(candidate[n], got) for n, got in (("x", x), ("y", y)))
            for candidate in (model, one_more)
        ]
        assert any(matches), (round_, done.value, x.shape, model["x"].shape)
        if not matches[0]:
            model = one_more
            in_flight_committed += 1
    # Not asserted (timing): how often the kill fell after the commit point of a call.
    print(f"in-flight calls found committed: {in_flight_committed} of 20")
