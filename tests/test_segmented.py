"""Arrays in the published 0.7 segmented layout (FORMAT.md, "Segmented arrays"), in stores
built byte by byte from the layout's description: read everywhere, appended as 0.7 does,
turned into one file by every other rewrite, and refused cleanly when hostile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import DTYPES, metadata_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpack
from numpack import NumPack, _core
from numpack.exceptions import CorruptStoreError

CODES = {d: code for code, d in enumerate(DTYPES)}


def build_07_store(path: Path, arrays: dict[str, tuple[np.ndarray, list[int]]]) -> None:
    """A store as 0.7 lays it out: each array's rows split into segments of the given sizes."""
    path.mkdir(parents=True, exist_ok=True)
    records = []
    for name, (arr, splits) in arrays.items():
        assert sum(splits) == arr.shape[0]
        row = arr[:1].nbytes if arr.shape[0] else arr.dtype.itemsize * int(np.prod(arr.shape[1:]))
        folder = path / f"data_{name}_segments"
        folder.mkdir()
        segments, at = [], 0
        for i, n in enumerate(splits):
            file = f"data_{name}_segments/seg_{i:06d}.npkd"
            (path / file).write_bytes(np.ascontiguousarray(arr[at : at + n]).tobytes())
            segments.append({"file": file, "rows": n, "bytes": n * row})
            at += n
        manifest = {"version": 1, "segments": segments}
        (path / f"data_{name}.npkseg").write_text(json.dumps(manifest))
        records.append((name, arr.shape, f"data_{name}.npkseg", CODES[arr.dtype], arr.nbytes))
    (path / "metadata.npkm").write_bytes(metadata_bytes(records))


def manifest(path: Path, name: str) -> dict:
    return json.loads((path / f"data_{name}.npkseg").read_text())


def splits_of(draw, rows: int) -> list[int]:
    out, left = [], rows
    while left:
        n = draw(st.integers(0, left))
        out.append(n)
        left -= n
    return out + ([0] if draw(st.booleans()) else [])


@st.composite
def stores(draw):
    dtype = np.dtype(draw(st.sampled_from(["float32", "int16", "uint8", "float64", "bool"])))
    rows = draw(st.integers(0, 40))
    dims = draw(st.sampled_from([(), (3,), (2, 5)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arr = (rng.random((rows, *dims)) * 100).astype(dtype)
    return arr, splits_of(draw, rows)


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(case=stores(), data=st.data())
def test_every_read_sees_the_rows_across_segments(tmp_path_factory, case, data):
    arr, splits = case
    path = tmp_path_factory.mktemp("s") / "x.npk"
    build_07_store(path, {"a": (arr, splits)})
    with NumPack(path) as npk:
        assert npk.get_shape("a") == arr.shape
        np.testing.assert_array_equal(npk.load("a"), arr)
        lazy = npk.load("a", lazy=True)
        np.testing.assert_array_equal(np.asarray(lazy), arr)
        if len(arr):
            idx = data.draw(st.lists(st.integers(-len(arr), len(arr) - 1), max_size=10))
            np.testing.assert_array_equal(npk.getitem("a", idx), arr[idx])
            np.testing.assert_array_equal(lazy[idx], arr[idx])
            lo = data.draw(st.integers(0, len(arr)))
            np.testing.assert_array_equal(lazy[lo:], arr[lo:])
        batch = data.draw(st.integers(1, 7))
        parts = list(npk.stream_load("a", buffer_size=batch))
        got = np.concatenate(parts) if parts else np.empty((0, *arr.shape[1:]), arr.dtype)
        np.testing.assert_array_equal(got, arr)
        if len(arr) > 1:
            drop = sorted(set(data.draw(st.lists(st.integers(0, len(arr) - 1), max_size=5))))
            if len(drop) < len(arr):
                npk.drop("a", drop)
                keep = np.delete(arr, drop, axis=0)
                np.testing.assert_array_equal(npk.load("a"), keep)
                np.testing.assert_array_equal(np.asarray(npk.load("a", lazy=True)), keep)
                arr = keep
        # Drops keep the layout (only the bitmap changes).
        assert (path / "data_a.npkseg").exists()
    problems, _ = _core.verify(str(path))
    assert problems == []


@SETTINGS
@given(case=stores(), data=st.data())
def test_appends_fill_the_last_segment_then_start_new_ones(
    tmp_path_factory, monkeypatch, case, data
):
    arr, splits = case
    if arr.ndim == 0:
        return
    path = tmp_path_factory.mktemp("s") / "x.npk"
    build_07_store(path, {"a": (arr, splits)})
    row = arr.dtype.itemsize * int(np.prod(arr.shape[1:]))
    per = data.draw(st.integers(1, 12))
    monkeypatch.setenv("NUMPACK_SEGMENT_TARGET_BYTES", str(per * row))
    want = arr
    with NumPack(path) as npk:
        for _ in range(data.draw(st.integers(1, 3))):
            n = data.draw(st.integers(1, 30))
            new = (
                np.arange(n * int(np.prod(arr.shape[1:]))).reshape(n, *arr.shape[1:]) % 100
            ).astype(arr.dtype)
            npk.append({"a": new})
            want = np.concatenate([want, new])
            np.testing.assert_array_equal(npk.load("a"), want)
    m = manifest(path, "a")
    assert set(m) == {"version", "segments"} and m["version"] == 1
    segs = m["segments"]
    assert sum(s["rows"] for s in segs) == len(want)
    old = len(splits)
    # Segments 0.7 wrote keep their rows (only the last may grow); every new one but the last
    # holds a full segment's worth.
    for i, s in enumerate(segs):
        assert s["file"] == f"data_a_segments/seg_{i:06d}.npkd"
        assert s["bytes"] == s["rows"] * row
        assert (path / s["file"]).stat().st_size == s["bytes"]
        if i < old - 1:
            assert s["rows"] == splits[i]
        elif i < len(segs) - 1:
            assert s["rows"] >= per or (i == old - 1 and s["rows"] >= max(per, splits[i]))
    with NumPack(path) as npk:
        np.testing.assert_array_equal(npk.load("a"), want)
    # A reader of the layout alone (what 0.7 does) sees the same rows.
    if row:
        raw = b"".join((path / s["file"]).read_bytes() for s in segs)
        np.testing.assert_array_equal(np.frombuffer(raw, arr.dtype).reshape(want.shape), want)


def test_a_killed_appends_leftovers_are_trimmed(tmp_path, monkeypatch):
    arr = np.arange(12, dtype=np.float32).reshape(6, 2)
    build_07_store(tmp_path / "s", {"a": (arr, [4, 2])})
    last = tmp_path / "s" / "data_a_segments" / "seg_000001.npkd"
    with open(last, "ab") as f:
        f.write(b"\xff" * 8)  # an append whose commit never happened
    (tmp_path / "s" / "data_a_segments" / "seg_000002.npkd").write_bytes(b"\xee" * 100)
    monkeypatch.setenv("NPK_SEGMENT_TARGET_BYTES", str(4 * 8))
    with NumPack(tmp_path / "s") as npk:
        np.testing.assert_array_equal(npk.load("a"), arr)
        npk.append({"a": np.full((3, 2), 7, np.float32)})
        want = np.concatenate([arr, np.full((3, 2), 7, np.float32)])
        np.testing.assert_array_equal(npk.load("a"), want)
    segs = manifest(tmp_path / "s", "a")["segments"]
    assert [s["rows"] for s in segs] == [4, 4, 1]
    assert (tmp_path / "s" / segs[2]["file"]).stat().st_size == 8


@pytest.mark.parametrize("op", ["replace", "update", "save", "writable", "drop_array"])
def test_other_rewrites_leave_one_data_file(tmp_path, op):
    rng = np.random.default_rng(1)
    arr = rng.random((9, 4)).astype(np.float32)
    path = tmp_path / "s"
    build_07_store(path, {"a": (arr, [4, 0, 5]), "b": (arr[:3], [3])})
    with NumPack(path) as npk:
        npk.drop("a", [1])
        want = np.delete(arr, [1], axis=0)
        if op == "replace":
            npk.replace({"a": np.zeros((1, 4), np.float32)}, [5])
            want[5] = 0
        elif op == "update":
            npk.update("a")
        elif op == "save":
            want = arr[:2] * 2
            npk.save({"a": want})
        elif op == "writable":
            with npk.writable_batch_mode() as wb:
                view = wb.load("a")
                view[0] = 3
            want[0] = 3
        else:
            npk.drop("a")
        if op == "drop_array":
            assert "a" not in npk.get_member_list()
        else:
            np.testing.assert_array_equal(npk.load("a"), want)
        np.testing.assert_array_equal(npk.load("b"), arr[:3])
    assert not (path / "data_a.npkseg").exists()
    assert not (path / "data_a_segments").exists()
    assert (path / "data_a.npkd").exists() == (op != "drop_array")
    assert (path / "data_b.npkseg").exists()
    if op != "drop_array":
        with NumPack(path) as npk:
            np.testing.assert_array_equal(npk.load("a"), want)


def test_search_pack_and_conversions_read_segments(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.standard_normal((50, 8)).astype(np.float32)
    path = tmp_path / "s.npk"
    build_07_store(path, {"emb": (arr, [17, 0, 20, 13])})
    q = arr[[3, 40]]
    with NumPack(path) as npk:
        idx, _ = npk.search("emb", q, k=1, exact=True, metric="dot")
        assert np.asarray(idx)[:, 0].tolist() == [
            int(np.argmax(arr @ q[0])),
            int(np.argmax(arr @ q[1])),
        ]
        npk.create_index("emb", nlist=4)
        idx2, _ = npk.search("emb", q, k=3)
        assert np.asarray(idx2).shape == (2, 3)
    from numpack.vector_engine import StreamingVectorEngine

    top, _ = StreamingVectorEngine().streaming_top_k_from_file(
        q[0], path, "emb", "l2", 1, exact=True
    )
    assert int(top[0]) == 3
    numpack.pack(path, tmp_path / "p.npkg")
    numpack.unpack(tmp_path / "p.npkg", tmp_path / "u.npk")
    assert (tmp_path / "u.npk" / "data_emb.npkd").exists()
    with NumPack(tmp_path / "u.npk") as npk:
        np.testing.assert_array_equal(npk.load("emb"), arr)
    from numpack.io import from_npy, to_npy

    to_npy(path, tmp_path / "e.npy", "emb")
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), arr)
    from_npy(tmp_path / "e.npy", tmp_path / "back.npk")
    with NumPack(tmp_path / "back.npk") as npk:
        np.testing.assert_array_equal(npk.load("e"), arr)
    from numpack.io import to_safetensors_file

    to_safetensors_file(path, tmp_path / "e.safetensors", "emb")
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(str(tmp_path / "e.safetensors"))["emb"], arr)


def _hostile(path: Path, edit) -> None:
    arr = np.arange(24, dtype=np.int32).reshape(6, 4)
    build_07_store(path, {"a": (arr, [2, 4])})
    edit(path)


def _set_manifest(text):
    return lambda p: (p / "data_a.npkseg").write_text(text)


def _segs(**change):
    def edit(p):
        m = manifest(p, "a")
        m["segments"][1].update(change)
        (p / "data_a.npkseg").write_text(json.dumps(m))

    return edit


def _outside(p):
    (p.parent / "secret.npkd").write_bytes(b"\x00" * 64)
    m = manifest(p, "a")
    m["segments"][1]["file"] = "data_a_segments/../../secret.npkd"
    (p / "data_a.npkseg").write_text(json.dumps(m))


def _linked_folder(p):
    (p / "data_a_segments").rename(p.parent / "elsewhere")
    (p / "data_a_segments").symlink_to(p.parent / "elsewhere")


def _fifo_segment(p):
    f = p / "data_a_segments" / "seg_000001.npkd"
    f.unlink()
    os.mkfifo(f)


HOSTILE = {
    "outside": _outside,
    "absolute": _segs(file="/etc/passwd"),
    "other folder": _segs(file="data_b_segments/seg_000001.npkd"),
    "bytes disagree": _segs(bytes=15),
    "rows disagree": _segs(rows=5, bytes=80),
    "negative": _segs(rows=-1),
    "float": _segs(rows=4.5),
    "twice": _segs(file="data_a_segments/seg_000000.npkd"),
    "json bomb": _set_manifest("[" * 200_000 + "]" * 200_000),
    "huge": _set_manifest(" " * (17 << 20)),
    "not json": _set_manifest("\x00\xff garbage"),
    "version": _set_manifest('{"version": 9, "segments": []}'),
    "short segment": lambda p: (p / "data_a_segments" / "seg_000001.npkd").write_bytes(b"\0" * 3),
    "missing segment": lambda p: (p / "data_a_segments" / "seg_000001.npkd").unlink(),
    "linked folder": _linked_folder,
    "fifo segment": _fifo_segment,
    "linked segment": lambda p: (
        (p / "data_a_segments" / "seg_000001.npkd").unlink(),
        (p / "data_a_segments" / "seg_000001.npkd").symlink_to("/etc/hostname"),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_manifests_are_corrupt_store_errors(tmp_path, case):
    path = tmp_path / "s"
    _hostile(path, HOSTILE[case])
    before = sorted(p.name for p in tmp_path.iterdir())
    with NumPack(path) as npk:
        for call in (
            lambda: npk.load("a"),
            lambda: npk.load("a", lazy=True),
            lambda: npk.append({"a": np.zeros((1, 4), np.int32)}),
            lambda: npk.getitem("a", [0]),
        ):
            with pytest.raises((CorruptStoreError, FileNotFoundError)) as e:
                call()
            assert "a" in str(e.value) or "seg" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("row_floats", [256, 3, 1000])
def test_large_segments_mapped_or_copied_read_alike(tmp_path, row_floats):
    # Rows of 1 KiB put some segment starts on page boundaries (mapped) and others not
    # (copied); other row sizes put none there.
    rng = np.random.default_rng(3)
    arr = rng.random((200 + 500 * (row_floats == 3), row_floats)).astype(np.float32)
    n = len(arr)
    build_07_store(tmp_path / "s", {"a": (arr, [n // 2, 37, n - n // 2 - 37])})
    with NumPack(tmp_path / "s") as npk:
        lazy = npk.load("a", lazy=True)
        np.testing.assert_array_equal(np.asarray(lazy), arr)
        np.testing.assert_array_equal(lazy[n // 2 - 3 : n // 2 + 40], arr[n // 2 - 3 : n // 2 + 40])
        np.testing.assert_array_equal(
            npk.getitem("a", [n - 1, 0, n // 2 + 36]), arr[[n - 1, 0, n // 2 + 36]]
        )
        for i, batch in enumerate(npk.stream_load("a", buffer_size=64)):
            np.testing.assert_array_equal(batch, arr[i * 64 : (i + 1) * 64])


KILL_CHILD = """
import sys, numpy as np
from numpack import NumPack
with NumPack(sys.argv[1]) as npk:
    k = (npk.get_shape("a")[0] - 6) // 5
    while True:
        npk.append({"a": np.full((5, 4), k, np.float32)})
        k += 1
"""


def test_appends_killed_at_any_instant_leave_a_committed_state(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time

    arr = np.arange(24, dtype=np.float32).reshape(6, 4) - 100
    path = tmp_path / "s"
    build_07_store(path, {"a": (arr, [4, 2])})
    env = dict(os.environ, NUMPACK_SEGMENT_TARGET_BYTES=str(7 * 16))
    rng = random.Random(7)
    for _ in range(12):
        p = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(path)], env=env)
        time.sleep(rng.uniform(0.3, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
        with NumPack(path) as npk:
            got = npk.load("a")
        n = (len(got) - 6) // 5
        assert len(got) == 6 + 5 * n
        want = np.concatenate([arr] + [np.full((5, 4), k, np.float32) for k in range(n)])
        np.testing.assert_array_equal(got, want)
        problems, _ = _core.verify(str(path))
        assert problems == []
        segs = manifest(path, "a")["segments"]
        assert sum(s["rows"] for s in segs) == len(got)
        assert all(s["rows"] <= 7 for s in segs[1:])
    assert n > 0


def test_a_leftover_segment_linked_elsewhere_is_never_written_through(tmp_path, monkeypatch):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "s"
    build_07_store(path, {"a": (arr, [3])})
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, path / "data_a_segments" / "seg_000001.npkd")
    (tmp_path / "other").write_bytes(b"other")
    (path / "data_a_segments" / "seg_000002.npkd").symlink_to(tmp_path / "other")
    monkeypatch.setenv("NUMPACK_SEGMENT_TARGET_BYTES", "48")
    with NumPack(path) as npk:
        npk.append({"a": np.ones((5, 4), np.float32)})
        np.testing.assert_array_equal(npk.load("a"), np.concatenate([arr, np.ones((5, 4))]))
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "other").read_bytes() == b"other"


def test_a_sparse_segment_cannot_make_a_view_read_its_holes(tmp_path):
    arr = np.ones((5, 3), np.uint8)
    path = tmp_path / "s"
    build_07_store(path, {"a": (arr, [5])})
    # A second segment of 512 MiB of holes, starting mid-page in the view.
    m = manifest(path, "a")
    with open(path / "data_a_segments" / "seg_000001.npkd", "wb") as f:
        f.truncate(512 << 20)
    rows = (512 << 20) // 3
    m["segments"].append(
        {"file": "data_a_segments/seg_000001.npkd", "rows": rows, "bytes": rows * 3}
    )
    (path / "data_a.npkseg").write_text(json.dumps(m))
    (path / "metadata.npkm").write_bytes(
        metadata_bytes([("a", (5 + rows, 3), "data_a.npkseg", 1, (5 + rows) * 3)])
    )
    with NumPack(path) as npk:
        assert npk.getitem("a", [0]).tolist() == [[1, 1, 1]]
        with pytest.raises(CorruptStoreError, match="sparse"):
            npk.load("a", lazy=True)


def test_zero_width_segmented_arrays_take_appends_and_drops(tmp_path):
    arr = np.zeros((5, 0), np.float32)
    path = tmp_path / "s"
    build_07_store(path, {"a": (arr, [2, 3])})
    with NumPack(path) as npk:
        npk.append({"a": np.zeros((3, 0), np.float32)})
        npk.drop("a", [0])
        assert npk.get_shape("a") == (7, 0)
    with NumPack(path) as npk:
        assert npk.load("a").shape == (7, 0)


def test_reset_removes_segment_folders_and_attributes(tmp_path):
    path = tmp_path / "s"
    build_07_store(path, {"a": (np.ones((4, 2), np.float32), [2, 2])})
    with NumPack(path) as npk:
        npk.attrs["a"]["k"] = 1
        npk.reset()
        assert npk.get_member_list() == []
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == ["metadata.npkm"]


def test_gc_removes_folders_only_collected_versions_named(tmp_path):
    path = tmp_path / "s"
    arr = np.ones((4, 2), np.float32)
    build_07_store(path, {"a": (arr, [2, 2])})
    with NumPack(path) as npk:
        npk.set_history(keep_last=5)
        v = npk.version
        npk.save({"a": arr * 2})
        assert (path / "data_a_segments").is_dir()  # version v still reads it
        with NumPack(path, version=v) as old:
            np.testing.assert_array_equal(old.load("a"), arr)
        npk.gc(keep_last=0)
        np.testing.assert_array_equal(npk.load("a"), arr * 2)
    assert not (path / "data_a_segments").exists()


from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule  # noqa: E402


class SegmentedMachine(RuleBasedStateMachine):
    """Appends, drops, replaces and compactions of a 0.7 array, against a NumPy model: after
    every step each read agrees, and the manifest adds up while the array stays segmented."""

    @initialize(rows=st.integers(0, 12), data=st.data())
    def build(self, rows, data):
        import tempfile

        self.dir = Path(tempfile.mkdtemp())
        self.path = self.dir / "s"
        self.model = np.arange(rows * 3, dtype=np.int32).reshape(rows, 3) - 1000
        build_07_store(self.path, {"a": (self.model.copy(), splits_of(data.draw, rows))})
        self.per = data.draw(st.integers(1, 6))
        os.environ["NUMPACK_SEGMENT_TARGET_BYTES"] = str(self.per * 12)
        self.npk = NumPack(self.path)
        self.npk.open()
        self.next = 0

    @rule(n=st.integers(1, 9))
    def append(self, n):
        new = np.arange(self.next, self.next + n * 3, dtype=np.int32).reshape(n, 3)
        self.next += n * 3
        self.npk.append({"a": new})
        self.model = np.concatenate([self.model, new])

    @rule(data=st.data())
    def drop(self, data):
        if len(self.model) < 2:
            return
        idx = sorted(
            set(data.draw(st.lists(st.integers(0, len(self.model) - 1), min_size=1, max_size=3)))
        )
        if len(idx) == len(self.model):
            return
        self.npk.drop("a", idx)
        self.model = np.delete(self.model, idx, axis=0)

    @rule(data=st.data())
    def replace(self, data):
        if not len(self.model):
            return
        i = data.draw(st.integers(0, len(self.model) - 1))
        self.npk.replace({"a": np.full((1, 3), -7, np.int32)}, [i])
        self.model[i] = -7

    @rule()
    def compact(self):
        self.npk.update("a")

    @invariant()
    def reads_agree(self):
        if not hasattr(self, "npk"):
            return
        np.testing.assert_array_equal(self.npk.load("a"), self.model)
        np.testing.assert_array_equal(np.asarray(self.npk.load("a", lazy=True)), self.model)
        if len(self.model):
            idx = [0, len(self.model) - 1, len(self.model) // 2]
            np.testing.assert_array_equal(self.npk.getitem("a", idx), self.model[idx])
        parts = list(self.npk.stream_load("a", buffer_size=4))
        if parts:
            np.testing.assert_array_equal(np.concatenate(parts), self.model)
        if (self.path / "data_a.npkseg").exists():
            segs = manifest(self.path, "a")["segments"]
            physical = self.npk._core_store().info("a")["shape"][0]
            assert sum(s["rows"] for s in segs) == physical

    def teardown(self):
        if hasattr(self, "npk"):
            self.npk.close()
            problems, _ = _core.verify(str(self.path))
            assert problems == []
        os.environ.pop("NUMPACK_SEGMENT_TARGET_BYTES", None)


SegmentedMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_segmented_state_machine = SegmentedMachine.TestCase
