"""A store directory is untrusted input: every byte and every directory entry numpack reads
may come from someone hostile. These properties mutate valid stores (any byte, any file, any
symlink, FIFO or directory in place of any store file, any shape, any ``k``) and check that
numpack answers with an ``Exception`` of the right type, promptly, within bounded memory, and
never writes outside the store.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import metadata_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpack
from numpack import NumPack
from numpack.exceptions import CorruptStoreError, IndexOutOfRangeError
from numpack.vector_engine import StreamingVectorEngine, VectorEngine

STORE_FILES = ["metadata.npkm", "data_a.npkd", "deleted_a.npkb", ".numpack.lock"]


def make_store(path: Path) -> None:
    """Arrays ``a`` (with deleted rows) and ``b``, and a closed store."""
    with NumPack(path) as npk:
        npk.save({"a": np.arange(60, dtype=np.float32).reshape(20, 3), "b": np.arange(7)})
        npk.drop("a", [2, -1])


def every_call(path: Path) -> None:
    """Opens the store and runs the read and write API on it; any Exception may result."""
    calls = [
        lambda n: n.get_member_list(),
        lambda n: n.load("a"),
        lambda n: n.load("a", lazy=True)[::2],
        lambda n: n.getitem("a", [0, -1]),
        lambda n: n.get_shape("a"),
        lambda n: list(n.stream_load("a", 4)),
        lambda n: n.append({"a": np.ones((2, 3), np.float32)}),
        lambda n: n.replace({"a": np.zeros((1, 3), np.float32)}, [0, -1]),
        lambda n: n.drop("a", slice(0, 2)),
        lambda n: n.update("a"),
        lambda n: n.clone("a", "c"),
        lambda n: n.save({"b": np.arange(3)}),
        lambda n: n.drop("b"),
    ]
    try:
        npk = NumPack(path)
        npk.open()
    except Exception:
        return
    try:
        for call in calls:
            try:
                call(npk)
            except Exception:
                pass
    finally:
        try:
            npk.close()
        except Exception:
            pass


def damage(p: Path, edit: str, at: int, value: bytes) -> None:
    """Edits the file at ``p`` in place: flips a bit, overwrites, truncates, extends or zeroes."""
    b = bytearray(p.read_bytes())
    at = at % (len(b) + 1)
    if edit == "flip" and b:
        b[at % len(b)] ^= 1 << (value[0] % 8)
    elif edit == "overwrite":
        b[at : at + len(value)] = value
    elif edit == "truncate":
        del b[at:]
    elif edit == "extend":
        b += value * 64
    elif edit == "zero":
        b[at:] = bytes(len(b) - at)
    p.write_bytes(bytes(b))


def outside_listing(root: Path) -> dict[str, bytes]:
    """Every file beside the store (what numpack must never touch)."""
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}


def run_checked(fn, *args) -> None:
    """Runs ``fn``; a BaseException that is not an Exception (pyo3's PanicException) fails."""
    try:
        fn(*args)
    except Exception:
        pass
    except BaseException as e:  # pragma: no cover - what the test exists to catch
        pytest.fail(f"{type(e).__name__} (not an Exception) escaped: {e}")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    file=st.sampled_from([*STORE_FILES, ".numpack.journal"]),
    edit=st.sampled_from(["flip", "overwrite", "truncate", "extend", "zero"]),
    at=st.integers(0, 4200),
    value=st.binary(min_size=1, max_size=24),
)
def test_any_mutation_of_any_store_file_gives_an_exception(tmp_path_factory, file, edit, at, value):
    root = tmp_path_factory.mktemp("mut")
    (root / "outside.txt").write_bytes(b"precious")
    store = root / "s.npk"
    make_store(store)
    if file == ".numpack.journal":
        # A journal numpack could have left: a redo record, then damaged.
        (store / file).write_bytes(b"NPKJ\x01\x00\x00\x00\x00\x00\x00\x00")
    p = store / file
    damage(p, edit, at, value)
    before = outside_listing(root)
    run_checked(every_call, store)
    run_checked(lambda: numpack.pack(store, root / "p.npkg"))
    assert outside_listing(root).keys() - {"p.npkg"} == before.keys()
    assert (root / "outside.txt").read_bytes() == b"precious"


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _dir(p: Path) -> None:
    p.mkdir()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("file", [*STORE_FILES, ".numpack.journal"])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "dangling"])
def test_links_fifos_and_directories_are_never_followed(tmp_path, file, kind):
    """Any of them in place of any store file: no write reaches the link's target, no open
    blocks on a FIFO, every call returns or raises an Exception."""
    store = tmp_path / "s.npk"
    make_store(store)
    target = tmp_path / "target.bin"
    target.write_bytes(b"outside the store")
    p = store / file
    if p.exists():
        p.unlink()
    if kind == "symlink":
        p.symlink_to(target)
    elif kind == "dangling":
        p.symlink_to(tmp_path / "nowhere.bin")
    elif kind == "fifo":
        _fifo(p)
    else:
        _dir(p)
    run_checked(every_call, store)
    run_checked(lambda: numpack.pack(store, tmp_path / "p.npkg"))
    assert target.read_bytes() == b"outside the store"
    assert not (tmp_path / "nowhere.bin").exists()
    if kind == "symlink" and file in ("data_a.npkd", "metadata.npkm"):
        with pytest.raises(CorruptStoreError, match="symbolic link"):
            with NumPack(store) as npk:
                npk.load("a")


def test_a_link_as_data_file_is_refused_by_name(tmp_path):
    store = tmp_path / "s.npk"
    make_store(store)
    outside = tmp_path / "victim.bin"
    outside.write_bytes(bytes(1000))
    (store / "data_b.npkd").unlink()
    (store / "data_b.npkd").symlink_to(outside)
    with NumPack(store) as npk:
        with pytest.raises(CorruptStoreError, match=r"data_b\.npkd.*symbolic link"):
            npk.append({"b": np.arange(3)})
        with pytest.raises(CorruptStoreError, match="symbolic link"):
            npk.load("b")
        # Saving the array whole replaces the link itself, never what it points to.
        npk.save({"b": np.arange(5)})
        assert npk.load("b").tolist() == list(range(5))
    assert outside.read_bytes() == bytes(1000)
    assert not (store / "data_b.npkd").is_symlink()


def test_a_hard_linked_data_file_is_not_written_in_place(tmp_path):
    store = tmp_path / "s.npk"
    make_store(store)
    copy = tmp_path / "backup.npkd"
    os.link(store / "data_b.npkd", copy)
    before = copy.read_bytes()
    with NumPack(store) as npk:
        with pytest.raises(ValueError, match="hard links"):
            npk.append({"b": np.arange(3)})
        with pytest.raises(ValueError, match="hard links"):
            npk.replace({"b": np.array([9])}, 0)
        with npk.writable_batch_mode() as wb, pytest.raises(ValueError, match="hard links"):
            wb.load("b")
        npk.save({"b": npk.load("b")})  # a file of its own
        npk.append({"b": np.arange(3)})
        assert npk.get_shape("b") == (10,)
    assert copy.read_bytes() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flags", [4, 1 << 63, 0xFFFF_FFFF_FFFF_FFFC])
def test_unknown_lock_flags_are_cleared_not_looped_on(tmp_path, flags):
    store = tmp_path / "s.npk"
    make_store(store)
    lock = store / ".numpack.lock"
    b = bytearray(lock.read_bytes())
    b[8:16] = struct.pack("<Q", flags)
    lock.write_bytes(bytes(b))
    with NumPack(store) as npk:
        assert npk.get_shape("a") == (18, 3)
        npk.append({"b": np.arange(2)})
    assert struct.unpack("<Q", lock.read_bytes()[8:16])[0] == 0


def test_an_undo_record_cannot_write_past_its_file(tmp_path):
    """A live undo record in the lock file whose row lies beyond its data file's end."""
    store = tmp_path / "s.npk"
    make_store(store)
    name = b"data_b.npkd"
    rec = b"NPKJ" + struct.pack("<II", 3, 1) + struct.pack("<I", len(name)) + name
    rec += struct.pack("<QQQ", 1, 10**6, 4) + b"\xff" * 4
    lock = store / ".numpack.lock"
    b = bytearray(lock.read_bytes())
    b[8:24] = struct.pack("<QQ", 2, len(rec))
    b[4096:] = rec
    lock.write_bytes(bytes(b))
    size = (store / "data_b.npkd").stat().st_size
    with pytest.raises(CorruptStoreError, match="would write 4 bytes at offset 1000000"):
        NumPack(store).open()
    assert (store / "data_b.npkd").stat().st_size == size


def test_a_journal_cannot_rename_or_remove_other_files(tmp_path):
    store = tmp_path / "s.npk"
    make_store(store)
    (store / "notes.txt").write_text("mine")

    def s(x: bytes) -> bytes:
        return struct.pack("<I", len(x)) + x

    for step in (b"\x02" + s(b"notes.txt"), b"\x01" + s(b"notes.txt") + s(b"metadata.npkm")):
        (store / ".numpack.journal").write_bytes(b"NPKJ" + struct.pack("<II", 1, 1) + step)
        with pytest.raises(CorruptStoreError, match="touches a file a commit never does"):
            NumPack(store).open()
        assert (store / "notes.txt").read_text() == "mine"
    (store / ".numpack.journal").unlink()


FLOAT32 = 10


def test_two_records_naming_one_data_file_are_corrupt(tmp_path):
    store = tmp_path / "s.npk"
    store.mkdir()
    (store / "data_a.npkd").write_bytes(bytes(16))
    (store / "metadata.npkm").write_bytes(
        metadata_bytes(
            [("a", [4], "data_a.npkd", FLOAT32, 16), ("b", [4], "data_a.npkd", FLOAT32, 16)]
        )
    )
    with pytest.raises(CorruptStoreError, match=r"both name the data file data_a\.npkd"):
        NumPack(store).open()
    r = subprocess.run(
        [sys.executable, "-m", "numpack", "verify", str(store)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "both name the data file" in r.stdout + r.stderr
    assert (store / "data_a.npkd").read_bytes() == bytes(16)


@pytest.mark.parametrize(
    "shape,why",
    [
        ([2**62, 2], "larger than NumPy allows"),
        ([1] * 33, "33 dimensions"),
        ([2**63, 0], "larger than NumPy allows"),
    ],
)
def test_shapes_numpy_cannot_hold_are_corrupt_in_files(tmp_path, shape, why):
    store = tmp_path / "s.npk"
    store.mkdir()
    size = 0 if 0 in shape else int(np.prod(shape, dtype=object)) * 4
    (store / "data_a.npkd").write_bytes(b"")
    (store / "metadata.npkm").write_bytes(
        metadata_bytes([("a", shape, "data_a.npkd", FLOAT32, size % 2**64)])
    )
    with pytest.raises(CorruptStoreError, match=why):
        with NumPack(store) as npk:
            npk.load("a")


def test_arguments_numpy_cannot_hold_are_value_errors(tmp_path):
    with NumPack(tmp_path / "s.npk") as npk:
        with pytest.raises(ValueError, match="33 dimensions"):
            npk.save({"a": np.zeros((1,) * 33)})
        npk.save({"z": np.zeros((5, 0), np.float32)})
        with pytest.raises(ValueError):
            npk.replace({"z": np.zeros((3, 0), np.float32)}, [0, 1])


ZERO_WIDTH_CHILD = textwrap.dedent(
    """
    import resource, sys, numpy as np
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from numpack import NumPack
    from numpack.vector_engine import StreamingVectorEngine, VectorEngine
    eng = StreamingVectorEngine()
    for call in (
        lambda: eng.streaming_top_k_from_file(np.zeros(0, np.float32), sys.argv[1], "z", "dot", 5),
        lambda: eng.streaming_batch_compute(np.zeros(0, np.float32), sys.argv[1], "z", "l2"),
    ):
        try:
            call()
            raise AssertionError("a search of 2^60 zero-width rows returned")
        except ValueError as e:
            assert "dimension 0" in str(e), e
    with NumPack(sys.argv[1]) as npk:
        n = npk.get_shape("z")[0]
        assert npk.load("z").shape == (n, 0)
        assert npk.getitem("z", slice(None, None, 7)).shape[1] == 0
        npk.drop("z", [0, -1, slice(0, 3)] [int(sys.argv[2])])
        assert npk.get_shape("z")[0] < n
        npk.append({"z": np.zeros((2, 0), np.float32)})
        npk.update("z")
        print("ok")
    """
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_100_byte_store_of_zero_width_rows_allocates_nothing(tmp_path, which):
    """2^60 rows of no bytes, with a bitmap file: no bitmap of 2^57 bytes is built, nothing
    loops over the rows (a streamed search refuses the array); the child runs under a 3 GiB
    address-space limit."""
    store = tmp_path / "s.npk"
    store.mkdir()
    rows = 2**60
    (store / "data_z.npkd").write_bytes(b"")
    (store / "metadata.npkm").write_bytes(
        metadata_bytes([("z", [rows, 0], "data_z.npkd", FLOAT32, 0)])
    )
    # A short bitmap: its 64 rows have 3 deleted, the rest count as active.
    (store / "deleted_z.npkb").write_bytes(
        struct.pack("<QQ", 64, 3) + struct.pack("<Q", 2**64 - 1 - 0b111)
    )
    size = sum(f.stat().st_size for f in store.iterdir())
    assert size < 200
    r = subprocess.run(
        [sys.executable, "-c", ZERO_WIDTH_CHILD, str(store), str(which)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    with NumPack(store) as npk:
        assert npk.get_shape("z")[0] < rows
    assert not (store / "deleted_z.npkb").exists()


KS = st.one_of(st.integers(0, 200), st.sampled_from([10**9, sys.maxsize, 2**64, 2**70]))


@settings(max_examples=40, deadline=None)
@given(k=KS, n=st.integers(0, 60))
def test_any_k_returns_at_most_the_candidates(k, n):
    rng = np.random.default_rng(n)
    c = rng.random((n, 8)).astype(np.float32)
    q = rng.random(8).astype(np.float32)
    e = VectorEngine()
    idx, scores = e.top_k_search(q, c, "cosine", k=k)
    assert len(idx) == len(scores) == min(k, n)
    idx, _ = e.multi_query_top_k(np.stack([q, q]), c, "l2", k=k)
    assert len(idx) == 2 * min(k, n)


def test_any_k_streaming(tmp_path):
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"v": np.random.default_rng(0).random((50, 4)).astype(np.float32)})
        npk.drop("v", [0, 1])
    q = np.ones(4, np.float32)
    s = StreamingVectorEngine()
    for k in (0, 48, 49, 10**9, sys.maxsize, 2**80):
        idx, _ = s.streaming_top_k_from_file(q, str(tmp_path / "s.npk"), "v", "dot", k=k)
        assert len(idx) == min(k, 48)
    with pytest.raises(ValueError):
        s.streaming_top_k_from_file(q, str(tmp_path / "s.npk"), "v", "dot", k=-1)
    # batch_size: any positive int (huge ones mean one batch), else a clear error.
    for b in (1, 7, 2**63, 2**80, np.int64(5)):
        idx, _ = s.streaming_top_k_from_file(q, str(tmp_path / "s.npk"), "v", "dot", 3, b)
        assert len(idx) == 3
    for b, err in [(0, ValueError), (-(2**80), ValueError), (True, TypeError), (2.5, TypeError)]:
        with pytest.raises(err, match="batch_size"):
            s.streaming_top_k_from_file(q, str(tmp_path / "s.npk"), "v", "dot", 3, b)


def test_huge_results_are_memory_errors_not_panics(tmp_path):
    """A shape that fits intp but not in memory: NumPy's allocation fails cleanly."""
    store = tmp_path / "s.npk"
    store.mkdir()
    big = 2**41  # 8 TiB of float32: the data file is sparse
    with open(store / "data_a.npkd", "wb") as f:
        f.truncate(big * 4)
    (store / "metadata.npkm").write_bytes(
        metadata_bytes([("a", [big], "data_a.npkd", FLOAT32, big * 4)])
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with NumPack(store) as npk:
        assert npk.get_shape("a") == (big,)
        with pytest.raises(MemoryError):
            npk.load("a")
        assert npk.getitem("a", [-1]).tolist() == [0.0]
    assert resource.getrlimit(resource.RLIMIT_AS) == (soft, hard)


def test_all_or_nothing_across_arrays(tmp_path):
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"x": np.arange(10.0), "y": np.arange(10)})
        with pytest.raises(TypeError):
            npk.append({"x": np.arange(3.0), "y": np.arange(3.0)})
        assert npk.get_shape("x") == npk.get_shape("y") == (10,)
        with pytest.raises(IndexOutOfRangeError):
            npk.replace({"x": np.array([-1.0]), "y": np.array([-1])}, [0, 10])
        with pytest.raises(TypeError):
            npk.replace({"x": np.array([-1.0]), "y": np.array([-1.0])}, [0])
        assert npk.load("x")[0] == 0 and npk.load("y")[0] == 0
        with pytest.raises(ValueError):
            npk.save({"x": np.arange(3.0), "bad": np.array(["s"])})
        assert npk.get_shape("x") == (10,)
        npk.append({"x": np.arange(2.0), "y": np.arange(2)})
        npk.replace({"x": np.array([7.0]), "y": np.array([7])}, slice(-2, None))
        npk.drop(["x", "y"], -1)
        assert npk.load("x").tolist()[-1] == 7.0 and npk.get_shape("y") == (11,)


# --- Found by review: each of these once wrote outside the store, aborted or lost data. ---


def undo_record(file: bytes, offset: int, data: bytes) -> bytes:
    return (
        b"NPKJ"
        + struct.pack("<II", 3, 1)
        + struct.pack("<I", len(file))
        + file
        + struct.pack("<Q", 1)
        + struct.pack("<QQ", offset, len(data))
        + data
    )


def live_undo(store: Path, rec: bytes) -> None:
    with open(store / ".numpack.lock", "r+b") as f:
        f.seek(4096)
        f.write(rec)
        f.seek(8)
        f.write(struct.pack("<QQ", 2, len(rec)))


def test_an_undo_record_never_writes_through_a_hard_link(tmp_path):
    store = tmp_path / "s.npk"
    make_store(store)
    secret = tmp_path / "precious.txt"
    secret.write_bytes(b"precious user data\n")
    os.link(secret, store / "data_zz.npkd")  # a store-named entry no record names
    live_undo(store, undo_record(b"data_zz.npkd", 0, b"PWNED!!!"))
    with NumPack(store) as npk:
        assert npk.get_member_list() == ["a", "b"]
    assert secret.read_bytes() == b"precious user data\n"
    # A named data file with another link is refused, not written.
    os.link(store / "data_b.npkd", tmp_path / "copy.npkd")
    live_undo(store, undo_record(b"data_b.npkd", 0, b"PWNED!!!"))
    with pytest.raises(CorruptStoreError, match="other hard links"):
        NumPack(store).open()
    assert (tmp_path / "copy.npkd").read_bytes()[:8] != b"PWNED!!!"


def test_the_lock_and_metadata_files_are_never_written_through_hard_links(tmp_path):
    a, b = tmp_path / "a.npk", tmp_path / "b.npk"
    make_store(a)
    make_store(b)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"outside")
    (a / ".numpack.lock").unlink()
    os.link(outside, a / ".numpack.lock")
    with pytest.raises(CorruptStoreError, match="hard links"):
        NumPack(a).open()
    assert outside.read_bytes() == b"outside"
    (a / ".numpack.lock").unlink()
    (a / "metadata.npkm").unlink()
    os.link(b / "metadata.npkm", a / "metadata.npkm")
    with NumPack(a) as npk:
        npk.append({"b": np.arange(3)})  # committed by rename, not in place
        assert npk.get_shape("b") == (10,)
    with NumPack(b) as npk:
        assert npk.get_shape("b") == (7,)
        assert npk.load("a").shape == (18, 3)


def test_verify_and_reads_of_a_sparse_or_short_data_file_allocate_nothing(tmp_path):
    """A record claiming 2^40 rows of bytes, with a bitmap: a short data file (verify) or a
    sparse one (every read) must be refused before a 16 GiB bitmap is built."""
    rows = 1 << 40
    bitmap = struct.pack("<QQ", 0, 0)
    for kind in ("short", "sparse"):
        store = tmp_path / kind
        store.mkdir()
        (store / "metadata.npkm").write_bytes(
            metadata_bytes([("a", [rows], "data_a.npkd", 1, rows)])
        )
        (store / "deleted_a.npkb").write_bytes(bitmap)
        with open(store / "data_a.npkd", "wb") as f:
            f.truncate(16 if kind == "short" else rows)
        code = textwrap.dedent(
            f"""
            import resource, subprocess, sys
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
            from numpack import NumPack
            from numpack.exceptions import CorruptStoreError
            with NumPack({str(store)!r}) as npk:
                for call in (lambda: npk.get_shape("a"), lambda: npk.drop("a", [0])):
                    try:
                        call()
                        raise SystemExit("no error")
                    except CorruptStoreError as e:
                        print(e)
            """
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-1500:]
        v = subprocess.run(
            [sys.executable, "-m", "numpack", "verify", str(store)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert v.returncode == 1, v.stderr[-1500:]


def test_unaligned_and_strided_index_arrays(tmp_path):
    u = np.frombuffer(bytearray(33), np.int64, 4, offset=1)
    strided = np.arange(10, dtype=np.int64)[::3]
    mask = np.frombuffer(bytearray(21), np.bool_, 20, offset=1).copy()
    mask[::4] = True
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.arange(20.0)})
        assert npk.getitem("a", u).tolist() == [0.0] * 4
        assert npk.getitem("a", strided).tolist() == [0.0, 3.0, 6.0, 9.0]
        npk.replace({"a": np.array([5.0])}, u)
        npk.drop("a", mask[::-1][::-1])
        assert npk.get_shape("a") == (15,)


def test_a_directory_named_like_a_store_file_does_not_brick_the_store(tmp_path):
    store = tmp_path / "s.npk"
    make_store(store)
    (store / "deleted_a.npkb").unlink()
    (store / "deleted_a.npkb").mkdir()
    with NumPack(store) as npk:
        with pytest.raises(CorruptStoreError, match="directory"):
            npk.load("a")
        with pytest.raises(CorruptStoreError, match="directory"):
            npk.save({"a": np.zeros((2, 3), np.float32)})
        assert npk.load("b").tolist() == list(range(7))
    assert not (store / ".numpack.journal").exists()
    (store / "data_zz.npkd").mkdir()
    (store / "deleted_a.npkb").rmdir()
    with NumPack(store) as npk:
        npk.reset()
        assert npk.get_member_list() == []
    assert (store / "data_zz.npkd").is_dir()


def test_a_rejected_call_in_batch_mode_keeps_the_cached_edits(tmp_path):
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.zeros((4, 2))})
        with npk.batch_mode():
            a = npk.load("a")
            a[0] = 99
            for bad in (
                lambda: npk.replace({"a": np.ones((1, 2))}, [10]),
                lambda: npk.append({"a": np.ones((1, 3))}),
                lambda: npk.drop("a", [10]),
            ):
                with pytest.raises((IndexError, ValueError)):
                    bad()
            assert npk.load("a") is a
            a[1] = 77
        assert npk.load("a")[:2].tolist() == [[99, 99], [77, 77]]


def test_one_bound_for_bitmaps_of_zero_width_arrays(tmp_path):
    rows = 1 << 40
    for n_words, ok in ((1 << 19, True), ((1 << 21) + 1, False)):
        store = tmp_path / f"z{n_words}"
        store.mkdir()
        (store / "metadata.npkm").write_bytes(
            metadata_bytes([("z", [rows, 0], "data_z.npkd", FLOAT32, 0)])
        )
        (store / "data_z.npkd").write_bytes(b"")
        covered = n_words * 64
        with open(store / "deleted_z.npkb", "wb") as f:
            f.write(struct.pack("<QQ", covered, 0))
            f.truncate(16 + n_words * 8)  # sparse: all rows deleted
        if ok:
            with NumPack(store) as npk:
                assert npk.get_shape("z") == (rows - covered, 0)
            pkg = numpack.pack(store, tmp_path / f"z{n_words}.npkg")
            out = numpack.unpack(pkg, tmp_path / f"z{n_words}.out")
            with NumPack(out) as npk:
                assert npk.get_shape("z") == (rows - covered, 0)
        else:
            with pytest.raises(CorruptStoreError, match="at most"):
                with NumPack(store) as npk:
                    npk.get_shape("z")


@pytest.mark.parametrize("damage", ["undo length", "journal step"])
def test_verify_reports_what_recovery_would_refuse(tmp_path, damage):
    store = tmp_path / "s.npk"
    make_store(store)
    if damage == "undo length":
        with open(store / ".numpack.lock", "r+b") as f:
            f.seek(8)
            f.write(struct.pack("<QQ", 2, 1 << 63))
    else:
        step = b"\x02" + struct.pack("<I", 13) + b".numpack.lock"
        (store / ".numpack.journal").write_bytes(b"NPKJ" + struct.pack("<II", 1, 1) + step)
    r = subprocess.run(
        [sys.executable, "-m", "numpack", "verify", str(store)], capture_output=True, text=True
    )
    assert r.returncode == 1, r.stdout + r.stderr


def test_score_matrices_too_large_for_memory_are_memory_errors():
    q = np.ones((200_000, 1), np.float32)
    c = np.ones((10_000_000, 1), np.float32)
    with pytest.raises(MemoryError):
        VectorEngine().batch_compute(q, c, "dot")


def test_index_errors_of_multi_array_calls_name_the_array(tmp_path):
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.arange(4), "b": np.arange(9)})
        with pytest.raises(IndexOutOfRangeError, match="array 'a' with 4 rows"):
            npk.drop(["a", "b"], [6])
        with pytest.raises(IndexOutOfRangeError, match="array 'a' with 4 rows"):
            npk.replace({"b": np.array([1]), "a": np.array([1])}, 5)
        with pytest.raises(IndexOutOfRangeError, match="array 'b' with 9 rows"):
            npk.getitem("b", [9])


def make_history_store(path: Path) -> None:
    """A store with history records of every kind, kept files and a tag."""
    with NumPack(path) as npk:
        npk.set_history(50)
        npk.save({"a": np.arange(60, dtype=np.float32).reshape(20, 3), "b": np.arange(7)})
        npk.replace({"a": np.zeros((2, 3), np.float32)}, [1, 4])
        npk.drop("a", [2, -1])
        npk.tag("t")
        npk.append({"a": np.ones((2, 3), np.float32)})
        npk.save({"b": np.arange(3)})
        npk.update("a")


def every_history_call(path: Path) -> None:
    """Every version API on the store; any Exception may result."""
    try:
        npk = NumPack(path)
        npk.open()
    except Exception:
        return
    calls = [
        lambda n: [n.snapshot(v["version"]).load("a") for v in n.versions()],
        lambda n: n.snapshot(tag="t").getitem("a", [0, -1]),
        lambda n: n.tags(),
        lambda n: n.restore("t"),
        lambda n: n.tag("u"),
        lambda n: n.replace({"a": np.zeros((1, 3), np.float32)}, [0]),
        lambda n: n.gc(keep_last=1),
        lambda n: n.set_history(0),
    ]
    try:
        for call in calls:
            try:
                call(npk)
            except Exception:
                pass
    finally:
        try:
            npk.close()
        except Exception:
            pass


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    file=st.sampled_from([".numpack.history", ".numpack.tags"]),
    edit=st.sampled_from(["flip", "overwrite", "truncate", "extend", "zero"]),
    at=st.integers(0, 6000),
    value=st.binary(min_size=1, max_size=24),
)
def test_any_mutation_of_the_history_files_gives_an_exception(
    tmp_path_factory, file, edit, at, value
):
    root = tmp_path_factory.mktemp("hist")
    (root / "outside.txt").write_bytes(b"precious")
    store = root / "s.npk"
    make_history_store(store)
    p = store / file
    damage(p, edit, at, value)
    before = outside_listing(root)
    run_checked(every_history_call, store)
    run_checked(every_call, store)
    assert outside_listing(root).keys() == before.keys()
    assert (root / "outside.txt").read_bytes() == b"precious"


SPARSE_LOG_CHILD = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from numpack import NumPack
    with NumPack(sys.argv[1]) as npk:
        vs = npk.versions()
        assert len(vs) >= 6, vs
        assert npk.snapshot(tag="t").getitem("a", [0]).shape == (1, 3)
        npk.gc()
        print("ok")
    """
)


@pytest.mark.timeout(120)
def test_a_sparse_history_log_allocates_only_what_it_holds(tmp_path):
    """A log stretched by a hole to 8 GiB is read up to its data, under a 3 GiB limit."""
    store = tmp_path / "s.npk"
    make_history_store(store)
    with open(store / ".numpack.history", "r+b") as f:
        f.truncate(8 << 30)
    r = subprocess.run(
        [sys.executable, "-c", SPARSE_LOG_CHILD, str(store)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_a_hard_linked_history_log_is_never_written(tmp_path):
    store = tmp_path / "s.npk"
    make_history_store(store)
    outside = tmp_path / "outside.bin"
    os.link(store / ".numpack.history", outside)
    before = outside.read_bytes()
    with NumPack(store) as npk:
        a = npk.load("a")
        with pytest.raises(CorruptStoreError, match="hard links"):
            npk.replace({"a": np.full((1, 3), 7, np.float32)}, [0])
        np.testing.assert_array_equal(npk.load("a"), a)
    assert outside.read_bytes() == before
    (store / ".numpack.history").unlink()
    outside.unlink()
    with NumPack(store) as npk:
        npk.replace({"a": np.full((1, 3), 7, np.float32)}, [0])
        assert npk.getitem("a", [0]).tolist() == [[7, 7, 7]]


@pytest.mark.timeout(60)
def test_zero_width_candidates_in_memory_cost_nothing_per_row():
    """4 billion rows of width 0 cost NumPy no memory: top-k answers without touching them."""
    c = np.empty((2**32, 0), np.float32)
    idx, sc = VectorEngine().top_k_search(np.empty(0, np.float32), c, "cosine", 3)
    assert idx.tolist() == [0, 1, 2] and sc.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(MemoryError):
        VectorEngine().batch_compute(np.empty((2**20, 0), np.float32), c, "dot")


@pytest.mark.parametrize(
    "bad", [np.array([["a"]]), np.array([[object()]]), np.zeros((1, 1), "M8[s]")]
)
def test_vectors_of_unsearchable_dtypes_are_dtype_mismatch_errors(bad):
    from numpack import DtypeMismatchError

    with pytest.raises(DtypeMismatchError, match="Unsupported dtype"):
        VectorEngine().batch_compute(bad[0], bad, "dot")
    with pytest.raises(TypeError):
        VectorEngine().batch_compute(bad[0], bad, "dot")
