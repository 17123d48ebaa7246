"""Versions: snapshots, history, tags, restore and gc, from one and from two processes."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpack import NumPack, Snapshot


def _state(npk: NumPack | Snapshot) -> dict[str, np.ndarray]:
    return {n: np.asarray(npk.load(n)) for n in npk.get_member_list()}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_history_lists_reads_tags_restores_and_collects(tmp_path: Path) -> None:
    p = tmp_path / "s.npk"
    with NumPack(p) as npk:
        npk.set_history(keep_last=50)
        assert npk.history() == 50
        npk.save({"x": np.arange(10, dtype=np.float32).reshape(5, 2)})
        v1 = npk.version
        npk.replace({"x": np.full((1, 2), -1, np.float32)}, [0])
        npk.append({"x": np.ones((2, 2), np.float32)})
        npk.drop("x", [1])
        v4 = npk.version
        assert v4 == v1 + 3
        ops = [v["operation"] for v in npk.versions()]
        assert ops[-4:] == ["save", "replace", "append", "drop_rows"]
        assert all(v["time"] is None or v["time"] > 1e9 for v in npk.versions())
        with npk.snapshot(v1) as snap:
            assert snap.version == v1
            np.testing.assert_array_equal(snap.load("x"), np.arange(10).reshape(5, 2))
            np.testing.assert_array_equal(snap.getitem("x", [-1, 0]), [[8, 9], [0, 1]])
            assert [b.shape[0] for b in snap.stream_load("x", 2)] == [2, 2, 1]
            lazy = snap.load("x", lazy=True)
            assert lazy.shape == (5, 2) and len(lazy) == 5
            np.testing.assert_array_equal(lazy[1:3], [[2, 3], [4, 5]])
        assert npk.tag("before-drop", v4 - 1) == v4 - 1
        assert npk.tags() == {"before-drop": v4 - 1}
        new = npk.restore("before-drop")
        assert new == v4 + 1
        assert npk.get_shape("x") == (7, 2)
        report = npk.gc(keep_last=0)
        assert report["oldest"] == v4 - 1  # the tag keeps its version
        npk.untag("before-drop")
        assert npk.gc(keep_last=0)["oldest"] == npk.version
    assert not [f for f in p.iterdir() if f.name.startswith(".numpack.v")]


def test_a_store_opened_at_a_version_is_read_only(tmp_path: Path) -> None:
    p = tmp_path / "s.npk"
    with NumPack(p) as npk:
        npk.set_history(5)
        npk.save({"a": np.arange(3)})
        v = npk.version
        npk.tag("first")
        npk.save({"a": np.arange(4), "b": np.zeros(2)})
    for kw in ({"version": v}, {"tag": "first"}):
        with NumPack(p, **kw) as old:
            assert old.version == v
            assert old.get_member_list() == ["a"]
            assert "b" not in old and old.has_array("a")
            np.testing.assert_array_equal(old.load("a"), np.arange(3))
            np.testing.assert_array_equal(old["a"], np.arange(3))
            assert old.get_shape("a") == (3,)
            with pytest.raises(PermissionError, match="read-only"):
                old.save({"a": np.arange(2)})
            with pytest.raises(PermissionError):
                old.drop("a", [0])
            with pytest.raises(PermissionError):
                old.batch_mode()
    with pytest.raises(ValueError, match=r"no longer kept|does not exist"):
        NumPack(p, version=v + 100).open()
    with pytest.raises(ValueError):
        NumPack(p, version=1, tag="first")


def _read_pickled(blob: bytes, q: Any) -> None:
    snap = pickle.loads(blob)
    q.put((snap.version, snap.load("x").tolist()))
    snap.close()


def test_a_pickled_snapshot_reads_the_same_version_in_another_process(tmp_path: Path) -> None:
    p = tmp_path / "s.npk"
    with NumPack(p) as npk:
        npk.save({"x": np.arange(4)})
        with npk.snapshot() as snap:
            npk.replace({"x": np.array([9])}, [0])
            npk.save({"x": np.arange(2)})
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            proc = ctx.Process(target=_read_pickled, args=(pickle.dumps(snap), q))
            proc.start()
            version, rows = q.get(timeout=60)
            proc.join(60)
            assert version == snap.version
            assert rows == [0, 1, 2, 3]
        # Released, with history off: only the current version is left.
        npk.save({"y": np.zeros(1)})
        assert [v["version"] for v in npk.versions()] == [npk.version]


# --- two writers, pinned readers, a model of every version ----------------------------------

_NAMES = ["a", "b"]


def _apply(npk: NumPack, op: tuple[Any, ...]) -> None:
    kind, name, arg = op
    if kind == "save":
        npk.save({name: np.full((arg, 2), arg, np.int32)})
    elif not npk.has_array(name):
        return
    elif kind == "append":
        npk.append({name: np.full((arg, 2), -arg, np.int32)})
    elif kind == "replace":
        n = npk.get_shape(name)[0]
        if n:
            npk.replace({name: np.full((1, 2), 100 + arg, np.int32)}, [arg % n])
    elif kind == "drop_rows":
        n = npk.get_shape(name)[0]
        if n:
            npk.drop(name, [arg % n])
    elif kind == "update":
        npk.update(name)
    elif kind == "drop":
        npk.drop(name)


def _worker(path: str, conn: Any) -> None:
    with NumPack(path) as npk:
        while True:
            op = conn.recv()
            if op is None:
                return
            _apply(npk, op)
            conn.send(npk.version)


_OPS = st.tuples(
    st.sampled_from(["save", "append", "replace", "drop_rows", "update", "drop"]),
    st.sampled_from(_NAMES),
    st.integers(1, 4),
)


@pytest.fixture(scope="module")
def two_writers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ctx = mp.get_context("spawn")
    made: list[Any] = []

    def start(path: Path) -> Any:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(str(path), child), daemon=True)
        proc.start()
        made.append((proc, parent))
        return parent

    yield start
    for proc, conn in made:
        conn.send(None)
        proc.join(30)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.tuples(st.booleans(), _OPS, st.booleans()), min_size=1, max_size=12),
    keep=st.sampled_from([0, 100]),
)
def test_snapshots_and_versions_match_a_model_with_two_writing_processes(
    tmp_path_factory: pytest.TempPathFactory, two_writers: Any, steps: Any, keep: int
) -> None:
    p = tmp_path_factory.mktemp("v") / "s.npk"
    with NumPack(p) as npk:
        npk.set_history(keep)
        other = two_writers(p)
        model: dict[int, dict[str, np.ndarray]] = {npk.version: {}}
        pinned: list[tuple[Snapshot, dict[str, np.ndarray]]] = []
        for in_other, op, pin in steps:
            if pin:
                pinned.append((npk.snapshot(), _state(npk)))
            if in_other:
                other.send(op)
                v = other.recv()
            else:
                _apply(npk, op)
                v = npk.version
            model[v] = _state(npk)
            for snap, want in pinned:
                assert _same(_state(snap), want), f"snapshot of version {snap.version}"
        if keep:
            for v, want in model.items():
                with npk.snapshot(v) as snap:
                    assert _same(_state(snap), want), f"version {v}"
        for snap, _ in pinned:
            snap.close()


def test_command_line_log_tag_info_restore_gc(tmp_path: Path) -> None:
    import json as _json
    import subprocess
    import sys

    p = tmp_path / "s.npk"

    def run(*a: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "numpack", *a], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    with NumPack(p) as npk:
        npk.save({"x": np.arange(3)})
    run("history", str(p), "10")
    with NumPack(p) as npk:
        npk.append({"x": np.arange(2)})
        v = npk.version
        npk.drop("x")
    log = _json.loads(run("log", str(p), "--json"))
    assert log["keep_last"] == 10
    assert [e["operation"] for e in log["versions"]][-2:] == ["append", "drop_arrays"]
    assert run("tag", str(p), "full", "--version", str(v)).strip() == str(v)
    info = _json.loads(run("info", f"{p}@full", "--json"))
    assert info["arrays"] == [{"name": "x", "dtype": "int64", "shape": [5]}]
    run("restore", str(p), str(v))
    with NumPack(p) as npk:
        np.testing.assert_array_equal(npk.load("x"), [0, 1, 2, 0, 1])
    run("tag", str(p), "full", "--delete")
    report = _json.loads(run("gc", str(p), "--keep-last", "0"))
    assert report["versions_removed"] >= 3


def _old_version(p: Path) -> tuple[int, dict[str, np.ndarray]]:
    """A store whose version ``v`` differs from the current state in every way a later
    commit can change it; returns ``v`` and its arrays."""
    with NumPack(p) as npk:
        npk.save(
            {
                "a": np.arange(40, dtype=np.float32).reshape(20, 2),
                "b": np.arange(7, dtype=np.int64),
            }
        )
        npk.drop("a", [3])
        v = npk.version
        want = _state(npk)
        npk.tag("good")
        npk.replace({"a": np.full((2, 2), -1, dtype=np.float32)}, [0, 1])
        npk.drop("a", [5])
        npk.append({"b": np.arange(3, dtype=np.int64)})
        npk.save({"b": np.zeros(2, dtype=np.int64), "c": np.ones(3, dtype=np.int8)})
    return v, want


@pytest.mark.parametrize(
    "suffix, exporter, importer",
    [
        (".npz", "to_npy", "from_npy"),
        (".h5", "to_hdf5", "from_hdf5"),
        (".zarr", "to_zarr", "from_zarr"),
        (".safetensors", "to_safetensors_file", "from_safetensors_file"),
        (".pt", "to_pt", "from_pt"),
    ],
)
def test_exporters_read_a_snapshot_at_its_version(
    tmp_path: Path, suffix: str, exporter: str, importer: str
) -> None:
    pytest.importorskip({".h5": "h5py", ".zarr": "zarr", ".safetensors": "safetensors",
                         ".pt": "torch"}.get(suffix, "numpy"))  # fmt: skip
    import numpack.io as npio

    p = tmp_path / "s.npk"
    v, want = _old_version(p)
    with NumPack(p) as npk, npk.snapshot(version=v) as snap:
        getattr(npio, exporter)(snap, tmp_path / f"out{suffix}")
        assert not snap.closed  # the caller's snapshot stays open
    getattr(npio, importer)(tmp_path / f"out{suffix}", tmp_path / "back.npk")
    with NumPack(tmp_path / "back.npk") as back:
        assert _same(_state(back), want)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "feather"])
def test_single_array_exporters_read_a_snapshot(tmp_path: Path, fmt: str) -> None:
    if fmt != "csv":
        pytest.importorskip("pyarrow")
    import numpack.io as npio

    p = tmp_path / "s.npk"
    _, want = _old_version(p)
    out = tmp_path / f"a.{fmt}"
    with NumPack(p) as npk, npk.snapshot(tag="good") as snap:
        getattr(npio, f"to_{fmt}")(snap, out, array_name="a")
    getattr(npio, f"from_{fmt}")(out, tmp_path / "back.npk", array_name="a")
    with NumPack(tmp_path / "back.npk") as back:
        np.testing.assert_array_equal(back.load("a").astype(np.float32), want["a"])


def test_command_line_convert_and_pack_read_store_at_version(tmp_path: Path) -> None:
    import subprocess
    import sys

    from numpack import unpack

    p = tmp_path / "s.npk"
    v, want = _old_version(p)

    def run(*a: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "numpack", *a], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    run("convert", f"{p}@good:a", str(tmp_path / "a.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), want["a"])
    run("convert", f"{p}@{v}", str(tmp_path / "all.npz"))
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == ["a", "b"]
        np.testing.assert_array_equal(z["b"], want["b"])
    run("pack", f"{p}@{v}", "-o", str(tmp_path / "v.npkg"))
    unpack(tmp_path / "v.npkg", tmp_path / "u.npk")
    with NumPack(tmp_path / "u.npk") as u:
        assert _same(_state(u), want)
    # Nothing was left beside the package, and the store itself is unchanged.
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".numpack")) == []
    with NumPack(p) as npk:
        assert npk.get_member_list() == ["a", "b", "c"]
