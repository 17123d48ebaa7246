"""Tests of ``.npkg`` packages (``numpack.pack``, ``unpack``, ``get_package_info``): round trips,
the byte layout of REFERENCE §4.1 in both directions (a small writer and reader of our own,
byte by byte), hostile packages, member tables checked against the metadata (orphans, missing
or mis-sized members, name bit flips, decompression bombs), default names, a seeded fuzz loop and
a hypothesis one, packing a store that another process is writing to, and overwriting a store
atomically (SIGKILL at random moments, the target's inode swapped in one step)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import multiprocessing
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import DTYPES, random_array
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import numpack
from numpack import NumPack, _core
from numpack.exceptions import CorruptStoreError

try:  # zstd members are built with `zstandard` when present, else taken from numpack's output
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None

# A hang inside the engine (GIL released) is only caught by the thread method.
pytestmark = pytest.mark.timeout(60, method="thread")

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# --------------------------------------------------------------------------------------------
# REFERENCE §4.1: a writer and a reader of our own
# --------------------------------------------------------------------------------------------
class Member:
    """One member to write: ``data`` (original bytes) stored as ``payload`` (None = raw).
    ``orig``/``comp``/``name_len`` override the declared fields (hostile packages)."""

    def __init__(self, name, data, payload=None, *, orig=None, comp=None, name_len=None,
                 shuffle=0, block=0):  # fmt: skip
        self.name = name.encode() if isinstance(name, str) else name
        self.data = data
        self.payload = payload
        self.orig = len(data) if orig is None else orig
        self.comp = (0 if payload is None else len(payload)) if comp is None else comp
        self.name_len = len(self.name) if name_len is None else name_len
        self.shuffle = shuffle
        self.block = block


def checksum(datas, version=2):
    """Version 1: running CRC32 over every member's bytes; 2 and 3: CRC32 chained over the
    little-endian CRC32 of each member."""
    c = 0
    for data in datas:
        if version == 1:
            c = zlib.crc32(data, c)
        else:
            c = zlib.crc32(struct.pack("<I", zlib.crc32(data)), c)
    return c & 0xFFFFFFFF


def build(members, version=2, compression=1, crc=None, count=None):
    """The bytes of a package, following REFERENCE §4.1 field by field."""
    out = bytearray(b"NPKG")
    out += struct.pack("<I", version)
    out += struct.pack("<B", compression)
    out += struct.pack("<I", len(members) if count is None else count)
    for m in members:
        out += struct.pack("<I", m.name_len)
        out += m.name
        out += struct.pack("<Q", m.orig)
        out += struct.pack("<Q", m.comp)
        if version == 3:
            out += struct.pack("<BI", m.shuffle, m.block)
        out += m.data if m.payload is None else m.payload
    c = checksum([m.data for m in members], version) if crc is None else crc
    out += struct.pack("<I", c & 0xFFFFFFFF)
    return bytes(out)


def parse(blob):
    """(version, compression, [member dict], checksum) of a package; asserts the layout."""
    assert blob[:4] == b"NPKG"
    version, compression, count = struct.unpack_from("<IBI", blob, 4)
    pos, members = 13, []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", blob, pos)
        name = blob[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        orig, comp = struct.unpack_from("<QQ", blob, pos)
        pos += 16
        shuffle = block = 0
        if version == 3:
            shuffle, block = struct.unpack_from("<BI", blob, pos)
            pos += 5
        size = comp or orig
        members.append(
            {"name": name, "orig": orig, "comp": comp, "shuffle": shuffle, "block": block,
             "offset": pos, "payload": blob[pos : pos + size]}
        )  # fmt: skip
        pos += size
    (crc,) = struct.unpack_from("<I", blob, pos)
    assert pos + 4 == len(blob), "bytes after the checksum"
    return version, compression, members, crc


def zstd_content_size(frame):
    """The Frame_Content_Size of a zstd frame header (RFC 8878 §3.1.1.1), or None."""
    assert frame[:4] == ZSTD_MAGIC
    fhd = frame[4]
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    pos = 5 + (0 if single else 1) + [0, 1, 2, 4][fhd & 3]
    size = [1 if single else 0, 2, 4, 8][fcs_flag]
    if size == 0:
        return None
    value = int.from_bytes(frame[pos : pos + size], "little")
    return value + 256 if size == 2 else value


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------
def fill_store(path, big=False):
    """A store with every dtype, deleted rows, an append, empty and 0-d arrays and a name that
    is not a plain file name."""
    arrays = {f"a_{dt.name}": random_array((40, 3), dt, seed=i) for i, dt in enumerate(DTYPES)}
    arrays["empty"] = np.zeros((0, 4), np.float32)
    arrays["scalar"] = np.array(3.25)
    arrays["weird/../näme"] = np.arange(5, dtype=np.int16)
    arrays["zeros"] = np.zeros(5000, np.float64)
    if big:  # more than one 1 MiB shuffle block, not a whole number of blocks
        arrays["big"] = random_array((300_001,), np.float64, seed=77)
        arrays["bigc"] = random_array((70_001,), np.complex128, seed=78)
    with NumPack(path, drop_if_exists=True) as npk:
        npk.save(arrays)
        npk.drop("a_float32", [0, 5, 39])
        npk.drop("a_int64", [1])
        npk.drop("a_bool", list(range(40)))
        npk.append({"a_uint8": random_array((7, 3), np.uint8, seed=99)})
    return path


def load_all(path):
    with NumPack(path) as npk:
        return {name: npk.load(name) for name in npk.get_member_list()}


def assert_same_arrays(got, expected):
    assert sorted(got) == sorted(expected)
    for name, arr in expected.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr, err_msg=name)


def store_files(path):
    """Store file name -> bytes (metadata, data and bitmap files only)."""
    names = sorted(os.listdir(path))
    keep = [n for n in names if n == "metadata.npkm" or n.startswith(("data_", "deleted_"))]
    return {n: (Path(path) / n).read_bytes() for n in keep}


def listing(root):
    """Every path under ``root`` (relative) with a digest of each file."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            out[os.path.join(rel, f)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def assert_valid_store(path):
    problems, _notes = _core.verify(str(path))
    assert problems == [], problems


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A filled store (do not modify) and its arrays."""
    path = fill_store(tmp_path_factory.mktemp("src") / "src.npk")
    return path, load_all(path)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """The store files of a small store, plus numpack's zstd payload for each compressible one
    (the frames our hand-built packages re-use when ``zstandard`` is not installed)."""
    root = tmp_path_factory.mktemp("members")
    path = root / "m.npk"
    with NumPack(path) as npk:
        npk.save({"a": np.arange(2000, dtype=np.float64), "b": np.arange(50, dtype=np.int32)})
        npk.drop("b", [3])
    files = store_files(path)
    _, _, entries, _ = parse(numpack.pack(path, root / "m.npkg").read_bytes())
    zstd_payloads = {}
    for e in entries:
        assert e["orig"] == len(files[e["name"]])
        if e["comp"]:
            assert e["payload"][:4] == ZSTD_MAGIC
            zstd_payloads[e["name"]] = e["payload"]
    if zstandard is not None:
        zstd_payloads = {n: zstandard.compress(d, 3) for n, d in files.items()}
    return files, zstd_payloads


def valid_members(files):
    """Raw members for every file, sorted by name."""
    return [Member(n, d) for n, d in sorted(files.items())]


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [True, False], ids=["zstd", "raw"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["plain", "shuffle"])
def test_round_trip(tmp_path, compression, shuffle):
    src = fill_store(tmp_path / "src.npk", big=True)
    expected = load_all(src)
    files = store_files(src)
    pkg = numpack.pack(src, tmp_path / "p.npkg", compression=compression, shuffle=shuffle)
    assert isinstance(pkg, Path) and pkg == tmp_path / "p.npkg"
    info = numpack.get_package_info(pkg)
    assert info["version"] == (3 if shuffle and compression else 2)
    assert info["compression"] == int(compression)
    out = numpack.unpack(pkg, tmp_path / "out.npk")
    assert out == tmp_path / "out.npk"
    assert store_files(out) == files
    assert_same_arrays(load_all(out), expected)
    assert_valid_store(out)
    left = ["src.npk", "p.npkg", "out.npk"]
    if compression:
        raw = numpack.get_package_info(numpack.pack(src, tmp_path / "r.npkg", compression=False))
        assert info["total_compressed_size"] < raw["total_compressed_size"]
        left.append("r.npkg")
    assert sorted(os.listdir(tmp_path)) == sorted(left)


def test_shuffle_improves_ratio_on_floats(tmp_path):
    path = tmp_path / "f.npk"
    rng = np.random.default_rng(1)
    with NumPack(path) as npk:
        npk.save({"emb": rng.standard_normal((20_000, 16)).astype(np.float32)})
    plain = numpack.get_package_info(numpack.pack(path, tmp_path / "a.npkg"))
    shuf = numpack.get_package_info(numpack.pack(path, tmp_path / "b.npkg", shuffle=True))
    assert shuf["total_compressed_size"] < 0.95 * plain["total_compressed_size"]
    assert [f["name"] for f in shuf["files"]] == [f["name"] for f in plain["files"]]


def test_empty_store_round_trip(tmp_path):
    path = tmp_path / "e.npk"
    with NumPack(path) as npk:
        npk.save({"x": np.ones(3)})
        npk.drop("x")
    pkg = numpack.pack(path)
    assert [f["name"] for f in numpack.get_package_info(pkg)["files"]] == ["metadata.npkm"]
    out = numpack.unpack(pkg, tmp_path / "o.npk")
    assert load_all(out) == {}


def test_level_and_progress(tmp_path, source):
    src, _ = source
    calls = []
    fast = numpack.pack(src, tmp_path / "l1.npkg", level=1, progress=lambda *a: calls.append(a))
    best = numpack.pack(src, tmp_path / "l19.npkg", level=19)
    assert best.stat().st_size <= fast.stat().st_size
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    seen = []
    numpack.unpack(best, tmp_path / "o.npk", progress=lambda *a: seen.append(a))
    assert seen and seen[-1][0] == seen[-1][1]


def test_failing_progress_callback_does_not_break_pack(tmp_path, source):
    src, expected = source

    def boom(done, total):
        raise RuntimeError("callback")

    pkg = numpack.pack(src, tmp_path / "p.npkg", progress=boom)
    assert_same_arrays(load_all(numpack.unpack(pkg, tmp_path / "o.npk", progress=boom)), expected)


# --------------------------------------------------------------------------------------------
# Byte layout: numpack's output read by our reader
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [True, False], ids=["zstd", "raw"])
def test_written_layout_is_reference_v2(tmp_path, source, compression):
    src, _ = source
    files = store_files(src)
    blob = numpack.pack(src, tmp_path / "p.npkg", compression=compression).read_bytes()
    version, comp, entries, crc = parse(blob)
    assert version == 2 and comp == int(compression)
    names = [e["name"] for e in entries]
    assert names == sorted(files) and len(set(names)) == len(names)
    assert crc == checksum([files[n] for n in names])
    raw_seen = compressed_seen = False
    for e in entries:
        data = files[e["name"]]
        assert e["orig"] == len(data)
        if e["comp"] == 0:
            raw_seen = True
            assert e["payload"] == data
        else:
            compressed_seen = True
            assert compression
            assert e["comp"] < e["orig"]
            assert e["payload"][:4] == ZSTD_MAGIC  # numpack writes zstd members
            # The frame carries its content size, so one-shot decoders (zstandard's
            # ZstdDecompressor().decompress(), which readers of the published format use) work.
            assert zstd_content_size(e["payload"]) == e["orig"]
            if zstandard is not None:
                assert zstandard.ZstdDecompressor().decompress(e["payload"]) == data
    assert raw_seen  # random bytes do not shrink: stored raw with comp_size 0
    assert compressed_seen == compression


def test_shuffle_layout_is_version_3(tmp_path, source):
    src, _ = source
    files = store_files(src)
    blob = numpack.pack(src, tmp_path / "p.npkg", shuffle=True).read_bytes()
    version, comp, entries, crc = parse(blob)
    assert (version, comp) == (3, 1)
    assert crc == checksum([files[e["name"]] for e in entries], 3)
    shuffled = [e for e in entries if e["shuffle"] > 1]
    assert shuffled and all(e["comp"] > 0 and e["block"] % e["shuffle"] == 0 for e in shuffled)
    assert all(e["shuffle"] == 0 for e in entries if e["comp"] == 0)


# --------------------------------------------------------------------------------------------
# Byte layout: hand-built packages read by numpack
# --------------------------------------------------------------------------------------------
def encode(name, data, mode, zstd_payloads):
    if mode == "raw":
        return Member(name, data)
    if mode == "zlib":
        return Member(name, data, zlib.compress(data, 6))
    payload = zstd_payloads.get(name)
    if payload is None:  # not compressible by numpack: fall back to zlib
        return Member(name, data, zlib.compress(data, 6))
    return Member(name, data, payload)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("modes", [("raw",), ("zlib",), ("zstd",), ("zstd", "zlib", "raw")])
def test_hand_built_packages_unpack(tmp_path, members, version, modes):
    files, zstd_payloads = members
    entries = [
        encode(name, data, modes[i % len(modes)], zstd_payloads)
        for i, (name, data) in enumerate(sorted(files.items()))
    ]
    compression = 0 if modes == ("raw",) else 1
    pkg = tmp_path / "h.npkg"
    pkg.write_bytes(build(entries, version=version, compression=compression))
    info = numpack.get_package_info(pkg)
    assert info["version"] == version and info["compression"] == compression
    assert [f["name"] for f in info["files"]] == [e.name.decode() for e in entries]
    assert [f["compressed_size"] for f in info["files"]] == [e.comp for e in entries]
    _core.verify(str(pkg))  # raises on any problem
    out = numpack.unpack(pkg, tmp_path / "h.npk")
    assert store_files(out) == files
    with NumPack(out) as npk:
        np.testing.assert_array_equal(npk.load("a"), np.arange(2000, dtype=np.float64))
        np.testing.assert_array_equal(npk.load("b"), np.delete(np.arange(50, dtype=np.int32), 3))
    assert_valid_store(out)


def test_v1_checksum_is_the_running_crc(tmp_path, members):
    files, _ = members
    entries = [Member(n, d, zlib.compress(d)) for n, d in sorted(files.items())]
    pkg = tmp_path / "v1.npkg"
    running = 0
    for e in entries:
        running = zlib.crc32(e.data, running)
    pkg.write_bytes(build(entries, version=1, crc=running))
    numpack.unpack(pkg, tmp_path / "ok.npk")
    # The version-2 rule is not accepted for a version-1 package.
    pkg.write_bytes(build(entries, version=1, crc=checksum([e.data for e in entries], 2)))
    with pytest.raises(RuntimeError, match="Checksum verification failed"):
        numpack.unpack(pkg, tmp_path / "bad.npk")
    assert not (tmp_path / "bad.npk").exists()


def test_empty_members_and_empty_compressed_member(tmp_path):
    src = tmp_path / "src.npk"
    with NumPack(src) as npk:
        npk.save({"z": np.zeros((0, 3), np.float32)})
    files = store_files(src)
    assert files["data_z.npkd"] == b""
    entries = valid_members(files)
    pkg = tmp_path / "z.npkg"
    pkg.write_bytes(build(entries))
    out = numpack.unpack(pkg, tmp_path / "z.npk")
    assert (out / "data_z.npkd").read_bytes() == b""
    entries = [
        Member("data_z.npkd", b"", zlib.compress(b"")) if e.name == b"data_z.npkd" else e
        for e in entries
    ]
    pkg.write_bytes(build(entries))
    numpack.unpack(pkg, tmp_path / "z2.npk")
    assert (tmp_path / "z2.npk" / "data_z.npkd").read_bytes() == b""
    with NumPack(tmp_path / "z2.npk") as npk:
        assert npk.load("z").shape == (0, 3)


def test_empty_package(tmp_path):
    pkg = tmp_path / "empty.npkg"
    pkg.write_bytes(build([]))
    info = numpack.get_package_info(pkg)
    assert info["file_count"] == 0 and info["files"] == []
    assert info["total_original_size"] == info["total_compressed_size"] == 0
    assert info["compression_ratio"] == 1.0
    with pytest.raises(ValueError, match=r"metadata\.npkm"):
        numpack.unpack(pkg, tmp_path / "e.npk")
    assert sorted(os.listdir(tmp_path)) == ["empty.npkg"]


# --------------------------------------------------------------------------------------------
# get_package_info
# --------------------------------------------------------------------------------------------
def test_package_info_fields(tmp_path, source):
    src, _ = source
    files = store_files(src)
    pkg = numpack.pack(src, tmp_path / "p.npkg")
    info = numpack.get_package_info(str(pkg))
    assert set(info) == {
        "version", "compression", "compression_name", "file_count", "files",
        "total_original_size", "total_compressed_size", "compression_ratio",
    }  # fmt: skip
    assert info["version"] == 2 and info["compression"] == 1
    assert info["compression_name"] == "zstd"
    assert info["file_count"] == len(files) == len(info["files"])
    for f, (name, data) in zip(info["files"], sorted(files.items())):
        assert set(f) == {"name", "original_size", "compressed_size", "actual_size"}
        assert f["name"] == name and f["original_size"] == len(data)
        assert f["actual_size"] == (f["compressed_size"] or f["original_size"])
    total = sum(len(d) for d in files.values())
    stored = sum(f["actual_size"] for f in info["files"])
    assert info["total_original_size"] == total
    assert info["total_compressed_size"] == stored
    assert info["compression_ratio"] == pytest.approx(stored / total)
    assert pkg.stat().st_size > stored  # headers and footer on top of the payloads

    raw = numpack.get_package_info(numpack.pack(src, tmp_path / "r.npkg", compression=False))
    assert raw["compression"] == 0 and raw["compression_name"] == "none"
    assert all(f["compressed_size"] == 0 for f in raw["files"])
    assert raw["compression_ratio"] == 1.0


def test_package_info_errors(tmp_path):
    with pytest.raises(ValueError):
        numpack.get_package_info(tmp_path / "missing.npkg")
    with pytest.raises(ValueError):
        numpack.get_package_info(tmp_path)
    bad = tmp_path / "bad.npkg"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ValueError, match=r"Invalid \.npkg file"):
        numpack.get_package_info(bad)
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match=r"Invalid \.npkg file"):
        numpack.get_package_info(bad)


# --------------------------------------------------------------------------------------------
# Default names, existing targets, argument errors
# --------------------------------------------------------------------------------------------
def test_pack_target_names(tmp_path, source):
    src, _ = source
    work = tmp_path / "w"
    work.mkdir()
    store = work / "data.npk"
    shutil.copytree(src, store)
    assert numpack.pack(store) == work / "data.npk.npkg"
    assert numpack.pack(str(store), str(work / "plain")) == work / "plain.npkg"
    assert numpack.pack(store, work / "x.bin") == work / "x.bin"
    nested = numpack.pack(store, work / "a" / "b" / "c.npkg")
    assert nested == work / "a" / "b" / "c.npkg" and nested.is_file()
    with pytest.raises(FileExistsError):
        numpack.pack(store)
    before = (work / "data.npk.npkg").read_bytes()
    with NumPack(store) as npk:
        npk.save({"extra": np.ones(3)})
    numpack.pack(store, overwrite=True)
    assert (work / "data.npk.npkg").read_bytes() != before
    assert sorted(os.listdir(work)) == ["a", "data.npk", "data.npk.npkg", "plain.npkg", "x.bin"]
    assert sorted(os.listdir(work / "a" / "b")) == ["c.npkg"]


def test_unpack_target_names(tmp_path, source):
    src, expected = source
    pkg = numpack.pack(src, tmp_path / "x.npkg")
    assert numpack.unpack(pkg) == tmp_path / "x.npk"
    shutil.copy(pkg, tmp_path / "data.npk.npkg")
    assert numpack.unpack(str(tmp_path / "data.npk.npkg")) == tmp_path / "data.npk"
    shutil.copy(pkg, tmp_path / "y.bin")
    assert numpack.unpack(tmp_path / "y.bin") == tmp_path / "y.npk"
    for name in ("x.npk", "data.npk", "y.npk"):
        assert_same_arrays(load_all(tmp_path / name), expected)
    assert numpack.unpack(pkg, tmp_path / "n" / "m" / "s.npk") == tmp_path / "n" / "m" / "s.npk"


def test_unpack_existing_target(tmp_path, source):
    src, expected = source
    pkg = numpack.pack(src, tmp_path / "x.npkg")
    target = tmp_path / "x.npk"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        numpack.unpack(pkg)
    assert os.listdir(target) == ["keep.txt"]
    assert numpack.unpack(pkg, overwrite=True) == target
    assert "keep.txt" not in os.listdir(target)
    assert_same_arrays(load_all(target), expected)
    assert sorted(os.listdir(tmp_path)) == ["x.npk", "x.npkg"]


def test_unpack_over_a_file_with_overwrite(tmp_path, source):
    src, expected = source
    pkg = numpack.pack(src, tmp_path / "x.npkg")
    (tmp_path / "x.npk").write_text("a file")
    with pytest.raises(FileExistsError):
        numpack.unpack(pkg)
    numpack.unpack(pkg, overwrite=True)
    assert_same_arrays(load_all(tmp_path / "x.npk"), expected)
    assert sorted(os.listdir(tmp_path)) == ["x.npk", "x.npkg"]


def test_pack_argument_errors(tmp_path):
    with pytest.raises(ValueError):
        numpack.pack(tmp_path / "missing.npk")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError):
        numpack.pack(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"metadata\.npkm"):
        numpack.pack(tmp_path / "empty")
    assert sorted(os.listdir(tmp_path)) == ["empty", "file"]
    assert os.listdir(tmp_path / "empty") == []


def test_unpack_argument_errors(tmp_path):
    with pytest.raises(ValueError):
        numpack.unpack(tmp_path / "missing.npkg")
    (tmp_path / "dir.npkg").mkdir()
    with pytest.raises(ValueError):
        numpack.unpack(tmp_path / "dir.npkg")
    assert sorted(os.listdir(tmp_path)) == ["dir.npkg"]


def test_failed_pack_keeps_the_old_package(tmp_path, source):
    src, _ = source
    store = tmp_path / "s.npk"
    shutil.copytree(src, store)
    pkg = numpack.pack(store, tmp_path / "p.npkg")
    old = pkg.read_bytes()
    # A data file shorter than its metadata says: the engine refuses to pack it.
    victim = store / "data_a_int32.npkd"
    victim.write_bytes(victim.read_bytes()[:10])
    with pytest.raises(ValueError, match="data_a_int32"):
        numpack.pack(store, pkg, overwrite=True)
    assert pkg.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["p.npkg", "s.npk"]


# --------------------------------------------------------------------------------------------
# Hostile packages
# --------------------------------------------------------------------------------------------
def _zlib_bomb():
    """64 MiB of zeros in about 64 KiB."""
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    return b"".join(comp.compress(chunk) for _ in range(64)) + comp.flush()


def _hostile(case, files):
    """The bytes of one hostile package, built from the valid raw members of ``files``."""
    e = valid_members(files)  # metadata.npkm is the last one (sorted names)
    a = next(i for i, m in enumerate(e) if m.name == b"data_a.npkd")
    name, data = e[a].name, e[a].data
    z = zlib.compress(data)
    renames = {
        "dotdot": (a, "../data_a.npkd"),
        "dotdot_metadata": (len(e) - 1, "../metadata.npkm"),
        "bare_dotdot": (a, ".."),
        "absolute": (a, "/tmp/data_a.npkd"),
        "slash": (a, "sub/data_a.npkd"),
        "backslash": (a, "..\\data_a.npkd"),
        "nul": (a, "data_a\0.npkd"),
        "not_a_store_file": (a, "evil.sh"),
        "lock_file": (a, ".numpack.lock"),
        "empty_name": (a, ""),
        "not_utf8": (a, b"data_\xff\xfe.npkd"),
    }
    members = {
        "comp_size_too_big": Member(name, data, z, comp=len(z) + 3),
        "comp_size_too_small": Member(name, data, z, comp=len(z) - 3),
        "comp_size_huge": Member(name, data, z, comp=2**64 - 1),
        "decompresses_past": Member(name, data, zlib.compress(data + b"x" * 100)),
        "decompresses_short": Member(name, data, zlib.compress(data[:-8])),
        "declared_larger": Member(name, data, z, orig=len(data) + 1),
        "zlib_bomb": Member(name, data, _zlib_bomb()),
        "zlib_trailing_junk": Member(name, data, z + b"junk"),
        "garbage_payload": Member(name, data, bytes(range(256)) * 3),
        "zstd_magic_garbage": Member(name, data, ZSTD_MAGIC + bytes(range(200))),
    }
    v3 = {  # case -> (shuffle item size, shuffle block size)
        "v3_block_zero": (8, 0),
        "v3_block_huge": (8, 0xFFFFFFF8),
        "v3_block_not_multiple": (8, 1001),
        "v3_shuffle_too_big": (17, 17 * 64),
    }
    if case in renames:
        i, new = renames[case]
        e[i] = Member(new, e[i].data)
        return build(e)
    if case in members:
        e[a] = members[case]
        return build(e)
    if case in v3:
        e[a] = Member(name, data, z, shuffle=v3[case][0], block=v3[case][1])
        return build(e, version=3)
    if case == "huge_name_len":
        e[a].name_len = 0xFFFFFFFF
    elif case == "duplicate":
        e.insert(a, e[a])
    elif case == "duplicate_metadata":
        e.append(e[-1])
    elif case == "raw_size_too_big":
        e[-1].orig += 10
    elif case == "raw_size_too_small":
        e[-1].orig -= 10
    elif case == "raw_size_huge":
        e[a].orig = 2**63
    elif case.startswith("last_comp_size"):  # the last member: no header follows
        m = e[-1]
        zm = zlib.compress(m.data)
        delta = 3 if case.endswith("big") else -3
        e[-1] = Member(m.name, m.data, zm + b"\0\0\0" if delta > 0 else zm[:-3])
    elif case == "metadata_too_large":
        m = e[-1]
        e[-1] = Member(m.name, m.data, zlib.compress(m.data), orig=2**40)
    elif case == "no_metadata":
        e.pop()
    elif case == "bad_metadata":
        e[-1] = Member("metadata.npkm", b"NPKB" + b"\xff" * 40)
    elif case == "corrupt_payload":  # checksum of the original bytes
        crc = checksum([m.data for m in e])
        e[a] = Member(name, data[:100] + b"\x01" + data[101:])
        return build(e, crc=crc)
    special = {
        "compressed_in_raw_package": lambda: build(
            [*e[:a], Member(name, data, z), *e[a + 1 :]], compression=0
        ),
        "bad_checksum": lambda: build(e, crc=checksum([m.data for m in e]) ^ 1),
        "bad_checksum_v1": lambda: build(
            e, version=1, crc=checksum([m.data for m in e], 1) ^ 0x80000000
        ),
        "bad_magic": lambda: b"NPKH" + build(e)[4:],
        "version_0": lambda: build(e, version=0),
        "version_4": lambda: build(e, version=4),
        "compression_2": lambda: build(e, compression=2),
        "huge_count": lambda: build(e, count=0xFFFFFFFF),
        "count_too_small": lambda: build(e, count=len(e) - 1),
        "trailing_bytes": lambda: build(e) + b"\0\0\0\0",
        "no_checksum": lambda: build(e)[:-4],
    }
    if case in special:
        return special[case]()
    if case.startswith("truncated_"):
        blob = build(e)
        return blob[: int(len(blob) * float(case.split("_")[1]))]
    return build(e)


TRUNCATED = "truncated|ends|name length"
# case -> (exception, message pattern, also detected by get_package_info)
HOSTILE = {
    "dotdot": (ValueError, "not a store file name", True),
    "dotdot_metadata": (ValueError, "not a store file name", True),
    "bare_dotdot": (ValueError, "not a store file name", True),
    "absolute": (ValueError, "not a store file name", True),
    "slash": (ValueError, "not a store file name", True),
    "backslash": (ValueError, "not a store file name", True),
    "nul": (ValueError, "not a store file name", True),
    "not_a_store_file": (ValueError, "not a store file name", True),
    "lock_file": (ValueError, "not a store file name", True),
    "empty_name": (ValueError, "not a store file name", True),
    "not_utf8": (ValueError, "UTF-8", True),
    "huge_name_len": (ValueError, "name length", True),
    "duplicate": (ValueError, "twice", True),
    "duplicate_metadata": (ValueError, "twice", True),
    "raw_size_too_big": (ValueError, TRUNCATED, True),
    "raw_size_too_small": (ValueError, "unexpected bytes", True),
    "raw_size_huge": (ValueError, TRUNCATED, True),
    "comp_size_too_big": (ValueError, TRUNCATED, True),  # the next member's header is off
    "comp_size_too_small": (ValueError, TRUNCATED, True),
    "comp_size_huge": (ValueError, TRUNCATED, True),
    "decompresses_past": (ValueError, "past its declared size", False),
    "decompresses_short": (ValueError, "before its declared size", False),
    "declared_larger": (ValueError, "is 16001 bytes, but array 'a' needs 16000", False),
    "zlib_bomb": (ValueError, "past its declared size", False),
    "zlib_trailing_junk": (ValueError, "after the end of its compressed stream", False),
    "last_comp_size_too_big": (ValueError, "after the end of its compressed stream", False),
    "last_comp_size_too_small": (ValueError, "cannot be decoded|before its declared", False),
    "garbage_payload": (ValueError, "cannot be decoded", False),
    "zstd_magic_garbage": (ValueError, "cannot be decoded", False),
    "compressed_in_raw_package": (ValueError, "compressed in an uncompressed package", True),
    "bad_checksum": (RuntimeError, "Checksum verification failed", False),
    "bad_checksum_v1": (RuntimeError, "Checksum verification failed", False),
    "corrupt_payload": (RuntimeError, "Checksum verification failed", False),
    "bad_magic": (ValueError, "Invalid .npkg file", True),
    "version_0": (ValueError, "version", True),
    "version_4": (ValueError, "version", True),
    "compression_2": (ValueError, "compression", True),
    "huge_count": (ValueError, TRUNCATED, True),
    "count_too_small": (ValueError, "unexpected bytes", True),
    "trailing_bytes": (ValueError, "unexpected bytes", True),
    "no_checksum": (ValueError, TRUNCATED, True),
    "truncated_0.001": (ValueError, "Invalid .npkg file", True),
    "truncated_0.3": (ValueError, TRUNCATED, True),
    "truncated_0.7": (ValueError, TRUNCATED, True),
    "truncated_0.999": (ValueError, TRUNCATED, True),
    "no_metadata": (ValueError, "no metadata.npkm", False),
    "metadata_too_large": (ValueError, "declares 1099511627776 bytes", True),
    "bad_metadata": (ValueError, "metadata.npkm", False),
    "v3_block_zero": (ValueError, "shuffle", True),
    "v3_block_huge": (ValueError, "shuffle", True),
    "v3_block_not_multiple": (ValueError, "shuffle", True),
    "v3_shuffle_too_big": (ValueError, "shuffle", True),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_package_is_rejected(tmp_path, members, case):
    files, _ = members
    exc, pattern, info_fails = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    pkg = work / "evil.npkg"
    pkg.write_bytes(_hostile(case, files))
    existing = work / "existing.npk"
    existing.mkdir()
    (existing / "metadata.npkm").write_bytes(files["metadata.npkm"])
    (existing / "mine.txt").write_text("keep me")
    before, outside = listing(work), sorted(os.listdir(tmp_path.parent))

    t0 = time.monotonic()
    with pytest.raises(exc, match=pattern) as raised:
        numpack.unpack(pkg, work / "new.npk")
    assert listing(work) == before
    if exc is ValueError:
        assert not isinstance(raised.value, RuntimeError)
        if not case.startswith("version"):
            assert isinstance(raised.value, CorruptStoreError)
            assert "evil.npkg" in str(raised.value)  # names the file
    with pytest.raises(exc, match=pattern):
        numpack.unpack(pkg, existing, overwrite=True)
    with pytest.raises(exc, match=pattern):  # into directories that do not exist yet
        numpack.unpack(pkg, work / "deep" / "er" / "new.npk")
    assert listing(work) == before
    assert sorted(os.listdir(tmp_path.parent)) == outside
    with pytest.raises(exc, match=pattern):
        _core.verify(str(pkg))
    if info_fails:
        with pytest.raises(ValueError, match=pattern):
            numpack.get_package_info(pkg)
    else:
        numpack.get_package_info(pkg)
    assert time.monotonic() - t0 < 20


def test_bad_checksum_passes_without_verify(tmp_path, members):
    files, _ = members
    pkg = tmp_path / "p.npkg"
    pkg.write_bytes(_hostile("bad_checksum", files))
    out = numpack.unpack(pkg, tmp_path / "o.npk", verify=False)
    assert store_files(out) == files


def test_many_members_are_checked_quickly(tmp_path):
    """Duplicate detection must not be quadratic in the member count."""
    n = 200_000
    parts = [b"NPKG", struct.pack("<IBI", 2, 0, n)]
    for i in range(n):
        name = f"data_{i}.npkd".encode()
        parts.append(struct.pack("<I", len(name)) + name + struct.pack("<QQ", 0, 0))
    parts.append(struct.pack("<I", 0))
    pkg = tmp_path / "many.npkg"
    pkg.write_bytes(b"".join(parts))
    t0 = time.monotonic()
    assert numpack.get_package_info(pkg)["file_count"] == n
    assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------------------------
# The member table against the package's metadata
# --------------------------------------------------------------------------------------------
def _bitmap(rows, deleted=()):
    """The bytes of ``deleted_<name>.npkb`` for ``rows`` physical rows (FORMAT.md)."""
    words = [0] * -(-rows // 64)
    for i in range(rows):
        if i not in deleted:
            words[i // 64] |= 1 << (i % 64)
    return struct.pack(f"<QQ{len(words)}Q", rows, len(deleted), *words)


def _renamed(files, old, new):
    return {new if n == old else n: d for n, d in files.items()}


def _resized(files, name, delta):
    data = files[name]
    return {**files, name: data[:delta] if delta < 0 else data + b"\0" * delta}


def _without(files, name):
    return {n: d for n, d in files.items() if n != name}


def _encoded(files, codec):
    """Members for ``files`` (name -> bytes), sorted by name: raw, or each one zlib-compressed."""
    if codec == "raw":
        return [Member(n, d) for n, d in sorted(files.items())]
    return [Member(n, d, zlib.compress(d)) for n, d in sorted(files.items())]


def _write_store(path, files):
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


# case -> (the store files of the ``members`` fixture -> the package's members, what the error
# says, naming the culprit). The store: ``a`` (2000 float64, no bitmap; 16000 bytes) and ``b``
# (50 int32 with row 3 deleted; a 24-byte bitmap).
MISMATCH = {
    "orphan_data": (
        lambda f: {**f, "data_c.npkd": bytes(16)},
        '"data_c.npkd" belongs to no array',
    ),
    "orphan_empty_data": (
        lambda f: {**f, "data_zz.npkd": b""},
        '"data_zz.npkd" belongs to no array',
    ),
    "orphan_bitmap": (
        lambda f: {**f, "deleted_c.npkb": _bitmap(50, {3})},
        '"deleted_c.npkb" belongs to no array',
    ),
    "flipped_data_name": (  # 'a' ^ 2 == 'c': a's data under a name no record uses
        lambda f: _renamed(f, "data_a.npkd", "data_c.npkd"),
        '"data_c.npkd" belongs to no array',
    ),
    "flipped_bitmap_name": (  # 'b' ^ 1 == 'c'
        lambda f: _renamed(f, "deleted_b.npkb", "deleted_c.npkb"),
        '"deleted_c.npkb" belongs to no array',
    ),
    "missing_data": (
        lambda f: _without(f, "data_a.npkd"),
        "the data file data_a.npkd of array 'a' is missing",
    ),
    "missing_small_data": (
        lambda f: _without(f, "data_b.npkd"),
        "the data file data_b.npkd of array 'b' is missing",
    ),
    "data_one_byte_short": (
        lambda f: _resized(f, "data_a.npkd", -1),
        "\"data_a.npkd\" is 15999 bytes, but array 'a' needs 16000",
    ),
    "data_one_byte_long": (
        lambda f: _resized(f, "data_a.npkd", 1),
        "\"data_a.npkd\" is 16001 bytes, but array 'a' needs 16000",
    ),
    "data_empty": (
        lambda f: {**f, "data_b.npkd": b""},
        "\"data_b.npkd\" is 0 bytes, but array 'b' needs 200",
    ),
    "bitmap_one_word_too_many": (
        lambda f: _resized(f, "deleted_b.npkb", 8),
        "\"deleted_b.npkb\" is 32 bytes, more than the bitmap of array 'b' can be (24)",
    ),
    "bitmap_one_byte_too_many": (
        lambda f: _resized(f, "deleted_b.npkb", 1),
        "\"deleted_b.npkb\" is 25 bytes, more than the bitmap of array 'b' can be (24)",
    ),
    "oversized_bitmap_of_array_without_one": (  # 2000 rows: 16 + 32 words = 272 bytes at most
        lambda f: {**f, "deleted_a.npkb": _bitmap(2000) + bytes(8)},
        "\"deleted_a.npkb\" is 280 bytes, more than the bitmap of array 'a' can be (272)",
    ),
}


@pytest.mark.parametrize("codec", ["raw", "zlib"])
@pytest.mark.parametrize("case", sorted(MISMATCH))
def test_member_table_mismatch_is_rejected(tmp_path, members, case, codec):
    """A member table that disagrees with the package's metadata is refused before anything is
    written: not at a new target, not into missing parent directories, not over an existing
    store, and the package check (``numpack verify``) refuses it too."""
    files, _ = members
    change, culprit = MISMATCH[case]
    work = tmp_path / "work"
    work.mkdir()
    pkg = work / "bad.npkg"
    pkg.write_bytes(build(_encoded(change(dict(files)), codec)))
    old = _write_store(work / "old.npk", files)
    before, outside = listing(work), sorted(os.listdir(tmp_path.parent))
    targets = [(work / "new.npk", False), (work / "deep" / "er" / "new.npk", False), (old, True)]
    for target, overwrite in targets:
        with pytest.raises(CorruptStoreError, match=re.escape(culprit)) as raised:
            numpack.unpack(pkg, target, overwrite=overwrite, verify=False)
        assert isinstance(raised.value, ValueError)
        assert "bad.npkg" in str(raised.value)
        assert listing(work) == before, f"unpack into {target} left files behind"
    assert sorted(os.listdir(tmp_path.parent)) == outside
    assert store_files(old) == files
    with pytest.raises(CorruptStoreError, match=re.escape(culprit)):
        _core.verify(str(pkg))


def test_bitmap_member_may_be_added_for_an_array_without_one(tmp_path, members):
    """The other side of the size rules: a bitmap that fits its array's rows is accepted, also for
    an array that had none, and it takes effect."""
    files, _ = members
    pkg = tmp_path / "p.npkg"
    pkg.write_bytes(build(_encoded({**files, "deleted_a.npkb": _bitmap(2000, {0, 1999})}, "raw")))
    _core.verify(str(pkg))
    out = numpack.unpack(pkg, tmp_path / "o.npk")
    assert_valid_store(out)
    with NumPack(out) as npk:
        np.testing.assert_array_equal(npk.load("a"), np.arange(1, 1999, dtype=np.float64))


# case -> (the bitmap of ``b`` -> a bitmap too short for its 50 rows, what the error says).
SHORT_BITMAP = {
    "header_only": (lambda b: b[:16], "bitmap is 16 bytes; 50 rows need 24"),
    "empty": (lambda b: b"", "bitmap is only 0 bytes"),
}


@pytest.mark.parametrize("case", sorted(SHORT_BITMAP))
def test_bitmap_too_short_for_its_rows_is_rejected(tmp_path, members, case):
    """A bitmap within the size bound but not valid for its rows passes the member-table check and
    is caught by the store verification after extraction; the package check agrees."""
    files, _ = members
    change, detail = SHORT_BITMAP[case]
    pkg = tmp_path / "bad.npkg"
    pkg.write_bytes(
        build(_encoded({**files, "deleted_b.npkb": change(files["deleted_b.npkb"])}, "raw"))
    )
    with pytest.raises(CorruptStoreError, match=re.escape(f"array 'b': deleted_b.npkb: {detail}")):
        numpack.unpack(pkg, tmp_path / "out.npk")
    assert sorted(os.listdir(tmp_path)) == ["bad.npkg"]
    # `numpack verify x.npkg` ("check every invariant of a store or a package") must not call a
    # package fine that unpack refuses.
    with pytest.raises(CorruptStoreError, match=re.escape("deleted_b.npkb")):
        _core.verify(str(pkg))


# --------------------------------------------------------------------------------------------
# Bit flips in member names
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flip_files(tmp_path_factory):
    """Store files of ``a`` (100 float64), ``b`` (50 int32, row 3 deleted) and ``c`` (50 int32):
    names one bit apart, and a bitmap that fits every array's rows."""
    path = tmp_path_factory.mktemp("flip") / "f.npk"
    with NumPack(path) as npk:
        npk.save(FLIP_ARRAYS)
        npk.drop("b", [3])
    files = store_files(path)
    assert sorted(files) == FLIP_NAMES
    return files


FLIP_ARRAYS = {
    "a": np.arange(100, dtype=np.float64),
    "b": np.arange(50, dtype=np.int32),
    "c": np.arange(50, 100, dtype=np.int32),
}
FLIP_NAMES = ["data_a.npkd", "data_b.npkd", "data_c.npkd", "deleted_b.npkb", "metadata.npkm"]


def _rust_debug(name, ascii_only=False):
    """``name`` as the engine's messages print it (Rust's ``{:?}`` of a str, without quotes;
    ``ascii_only`` escapes every non-ASCII character, as Rust does for combining marks)."""
    out = []
    for ch in name:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\t\r\n\0":
            out.append({"\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0"}[ch])
        elif not ch.isprintable() or (ascii_only and ord(ch) > 127):
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def _flip_model(files, renames):
    """What unpacking the package should give when member ``old`` is named ``new`` for each
    ``old -> new`` of ``renames``: the arrays, or None when the member table does not match the
    metadata (a name repeated or not a store file, a record without its data file, a data
    member of the wrong size, a member no record names)."""
    names = [renames.get(n.encode(), n.encode()) for n in FLIP_NAMES]
    allowed = {f"{kind}_{x}.{ext}".encode() for x in FLIP_ARRAYS for kind, ext in DATA_AND_BITMAP}
    if len(set(names)) != len(names) or not set(names) <= allowed | {b"metadata.npkm"}:
        return None
    if b"metadata.npkm" not in names:
        return None
    origin = {new: old for old, new in zip(FLIP_NAMES, names)}  # new name -> original member
    arrays = {}
    for x, arr in FLIP_ARRAYS.items():
        src = origin.get(f"data_{x}.npkd".encode())
        if src is None or not src.startswith("data_") or len(files[src]) != arr.nbytes:
            return None
        values = FLIP_ARRAYS[src[5:-5]].view(arr.dtype)
        bitmap = origin.get(f"deleted_{x}.npkb".encode())
        if bitmap is not None:
            if bitmap != "deleted_b.npkb":
                return None
            values = np.delete(values, 3)  # b's bitmap (50 rows, row 3 deleted) fits every array
        arrays[x] = values
    return arrays


DATA_AND_BITMAP = (("data", "npkd"), ("deleted", "npkb"))


def _named_in(message, old, new):
    """Whether ``message`` names member ``old`` or its new name ``new`` (bytes)."""
    candidates = [_rust_debug(old.decode())]
    try:
        text = new.decode()
    except UnicodeDecodeError:
        candidates.append("UTF-8")
    else:
        candidates += [_rust_debug(text), _rust_debug(text, ascii_only=True)]
    return any(c in message for c in candidates)


def _unpack_flipped(files, flips, work):
    """Build a package of ``files`` with bits of member names flipped (``(member, byte, bit)``
    each, ``byte`` taken modulo the name's length), unpack it into ``work`` and check the
    outcome against :func:`_flip_model`. Returns whether it unpacked."""
    raw = {n: bytearray(n.encode()) for n in FLIP_NAMES}
    for member, byte, bit in flips:
        name = raw[FLIP_NAMES[member % len(FLIP_NAMES)]]
        name[byte % len(name)] ^= 1 << bit
    renames = {n.encode(): bytes(b) for n, b in raw.items() if bytes(b) != n.encode()}
    pkg = work / "p.npkg"
    pkg.write_bytes(build([Member(bytes(raw[n]), files[n]) for n in FLIP_NAMES]))
    target = work / "out.npk"
    expected = _flip_model(files, renames)
    try:
        numpack.unpack(pkg, target)
    except BaseException as exc:
        assert isinstance(exc, CorruptStoreError), f"{renames}: {exc!r}"
        assert expected is None, f"{renames} is consistent, but unpack raised {exc!r}"
        assert os.listdir(work) == ["p.npkg"], renames
        message = str(exc)
        assert any(_named_in(message, o, n) for o, n in renames.items()), (message, renames)
        return False
    assert expected is not None, f"{renames} does not match the metadata, but unpacked"
    got = store_files(target)
    assert got == {renames.get(n.encode(), n.encode()).decode(): files[n] for n in FLIP_NAMES}
    assert_valid_store(target)
    assert_same_arrays(load_all(target), expected)
    shutil.rmtree(target)
    return True


def test_every_single_bit_flip_in_a_member_name(tmp_path, flip_files):
    """Each of the 480 one-bit flips of a name byte: refused with an error naming the member,
    leaving nothing; the one flip still consistent with the metadata (``b``'s bitmap renamed to
    ``c``, whose rows it fits) unpacks to exactly what the package says."""
    accepted = []
    for member, name in enumerate(FLIP_NAMES):
        for byte in range(len(name)):
            for bit in range(8):
                if _unpack_flipped(flip_files, [(member, byte, bit)], tmp_path):
                    accepted.append((name, byte, bit))
    assert accepted == [("deleted_b.npkb", 8, 0)]


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@example(flips=[(1, 5, 0), (2, 5, 0)])  # data_b <-> data_c: same size, contents swapped
@example(flips=[(3, 8, 0), (3, 8, 1)])  # deleted_b -> deleted_a (b's bitmap fits a's 100 rows)
@example(flips=[(0, 5, 1), (2, 5, 1)])  # data_a <-> data_c: sizes differ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 13), st.integers(0, 7)), min_size=1, max_size=4
    )
)
def test_bit_flips_in_member_names(tmp_path_factory, flip_files, flips):
    """Any few bit flips in member names: a clean refusal naming a renamed member, or, when the
    names are still consistent with the metadata, exactly the store the package describes."""
    work = tmp_path_factory.mktemp("flips")
    _unpack_flipped(flip_files, flips, work)
    shutil.rmtree(work)


# --------------------------------------------------------------------------------------------
# Decompression bombs under names the metadata does not allow
# --------------------------------------------------------------------------------------------
BOMB_SIZE = 300 * 10**6


def _zstd_rle_frame(size, byte=0):
    """A zstd frame (RFC 8878 §3.1.1) of ``size`` copies of ``byte``, its content size in the
    header: 128 KiB RLE blocks of 4 bytes each, so 300 MB take 9 KiB."""
    out = bytearray(ZSTD_MAGIC)
    out += bytes([0xC0, 0x38]) + struct.pack("<Q", size)  # 8-byte content size; 128 KiB window
    left = size
    while True:
        n = min(left, 1 << 17)
        left -= n
        last = int(left == 0)
        out += (last | 1 << 1 | n << 3).to_bytes(3, "little") + bytes([byte])  # type 1 = RLE
        if last:
            return bytes(out)


@functools.cache
def _zlib_zeros(mib):
    """A zlib stream of ``mib`` MiB of zeros in about 1 KiB per MiB: the sync-flushed deflate of
    one MiB of zeros is the same bytes once the window is full, so it is repeated; then an empty
    final block and the Adler-32 of n zeros (a = 1, b = n mod 65521)."""
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    first = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
    steady = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
    adler = ((mib << 20) % 65521) << 16 | 1
    return first + steady * (mib - 1) + b"\x03\x00" + adler.to_bytes(4, "big")


def _bomb(codec):
    return _zstd_rle_frame(BOMB_SIZE) if codec == "zstd" else _zlib_zeros(BOMB_SIZE >> 20)


def test_bomb_builders_expand_as_claimed(tmp_path):
    """The bombs below are real: the same constructions, small, decode to what they claim, with
    ``zlib`` and ``zstandard`` and through numpack's own unpack."""
    assert zlib.decompress(_zlib_zeros(3)) == bytes(3 << 20)
    frame = _zstd_rle_frame(300_001, 7)
    if zstandard is not None:
        assert zstandard.ZstdDecompressor().decompress(frame) == b"\7" * 300_001
    assert len(_zstd_rle_frame(BOMB_SIZE)) < 10_000
    assert len(_zlib_zeros(BOMB_SIZE >> 20)) < 400_000
    src = tmp_path / "z.npk"
    with NumPack(src) as npk:
        npk.save({"z": np.zeros(3 << 17, np.float64), "y": np.zeros(1 << 17, np.uint8)})
    files = store_files(src)
    entries = [
        Member("data_y.npkd", files["data_y.npkd"], _zstd_rle_frame(1 << 17)),
        Member("data_z.npkd", files["data_z.npkd"], _zstd_rle_frame(3 << 20)),
        Member("metadata.npkm", files["metadata.npkm"]),
    ]
    pkg = tmp_path / "z.npkg"
    pkg.write_bytes(build(entries))
    assert store_files(numpack.unpack(pkg, tmp_path / "zo.npk")) == files
    entries[1] = Member("data_z.npkd", files["data_z.npkd"], _zlib_zeros(3))
    pkg.write_bytes(build(entries))
    assert store_files(numpack.unpack(pkg, tmp_path / "zl.npk")) == files


@contextlib.contextmanager
def _file_size_limit(limit):
    """While inside: no file of this process may grow past ``limit`` bytes (a write beyond fails
    with EFBIG; Python ignores SIGXFSZ). A no-op where ``resource`` is missing."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < limit:  # pragma: no cover - odd setup
        yield
        return
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _disk_bytes(root):
    """Bytes allocated on disk under ``root``."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
@pytest.mark.parametrize(
    "name", ["data_zz.npkd", "deleted_zz.npkb", "data_a.npkd", "deleted_a.npkb"]
)
def test_small_package_declaring_a_huge_member_writes_nothing(tmp_path, members, codec, name):
    """A package of a few KiB whose member expands to 300 MB under a name no record uses (or
    larger than its record allows) is refused from the member table, without decoding it: even
    with ``verify=False``, within a fraction of a second, with no file of the process growing past
    1 MiB meanwhile and no bytes left on disk."""
    files, _ = members
    entries = [m for m in valid_members(files) if m.name != name.encode()]
    entries.append(Member(name, b"", _bomb(codec), orig=BOMB_SIZE))
    entries.sort(key=lambda m: m.name)
    work = tmp_path / "work"
    work.mkdir()
    pkg = work / "bomb.npkg"
    pkg.write_bytes(build(entries))
    assert pkg.stat().st_size < (32 << 10 if codec == "zstd" else 400 << 10)
    used = _disk_bytes(tmp_path)
    seen = []
    t0 = time.monotonic()
    with _file_size_limit(1 << 20):
        for target, overwrite in ((work / "new.npk", False), (work / "a" / "b.npk", True)):
            with pytest.raises(CorruptStoreError, match=re.escape(f'member "{name}"')):
                numpack.unpack(pkg, target, overwrite, False, progress=lambda d, t: seen.append(d))
        with pytest.raises(CorruptStoreError, match=re.escape(f'member "{name}"')):
            _core.verify(str(pkg))
    elapsed = time.monotonic() - t0
    assert elapsed < 0.5, f"took {elapsed:.2f}s: the member was decoded"
    assert max(seen, default=0) < 1 << 20, "the bomb was extracted"
    assert sorted(os.listdir(work)) == ["bomb.npkg"]
    assert _disk_bytes(tmp_path) == used


# --------------------------------------------------------------------------------------------
# Fuzz: mutated packages
# --------------------------------------------------------------------------------------------
INTERESTING = [0, 1, 2, 7, 8, 255, 256, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1]


def _field_offsets(blob):
    """(offset, width) of the header and member-table integers of a valid package."""
    version = struct.unpack_from("<I", blob, 4)[0]
    fields = [(4, 4), (8, 1), (9, 4)]
    for e in parse(blob)[2]:
        n = len(e["name"].encode())
        start = e["offset"] - (21 if version == 3 else 16) - n - 4
        fields += [(start, 4), (start + 4 + n, 8), (start + 12 + n, 8)]
        if version == 3:
            fields += [(start + 20 + n, 1), (start + 21 + n, 4)]
    fields.append((len(blob) - 4, 4))
    return fields


def _mutate(rng, blob, fields):
    b = bytearray(blob)
    op = rng.randrange(8)
    if op == 0:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif op == 3:
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 8)]
    elif op == 4:
        del b[rng.randrange(len(b)) :]
    else:  # rewrite one integer field: an extreme value, a random one, or off by a little
        off, width = rng.choice(fields)
        if op == 5:
            value = rng.choice(INTERESTING)
        elif op == 6:
            value = rng.randrange(1 << (8 * width))
        else:
            value = max(0, int.from_bytes(b[off : off + width], "little") + rng.randint(-9, 9))
        b[off : off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    return bytes(b)


@pytest.fixture(scope="module")
def fuzz_bases(tmp_path_factory, members):
    """Valid small packages of every kind: numpack's v2 (zstd and raw) and v3, hand-built v1
    and v2 with zstd, zlib and raw members."""
    files, zstd_payloads = members
    root = tmp_path_factory.mktemp("bases")
    store = root / "s.npk"
    with NumPack(store) as npk:
        npk.save({"a": np.arange(300, dtype=np.float64), "b": np.arange(40, dtype=np.int16)})
        npk.drop("b", [0])
    bases = [
        numpack.pack(store, root / "z.npkg").read_bytes(),
        numpack.pack(store, root / "r.npkg", compression=False).read_bytes(),
        numpack.pack(store, root / "s.npkg", shuffle=True).read_bytes(),
    ]
    modes = ("zstd", "zlib", "raw")
    for version in (1, 2):
        entries = [
            encode(n, d, modes[i % 3], zstd_payloads)
            for i, (n, d) in enumerate(sorted(files.items()))
        ]
        bases.append(build(entries, version=version))
    return [(b, _field_offsets(b)) for b in bases]


def assert_store_opens(path):
    """A store that unpacked (from a package mutated where no check can see it, with
    verify=False) opens without crashing: errors are fine, other exceptions are not."""
    _core.verify(str(path))
    try:
        with NumPack(path) as npk:
            for name in npk.get_member_list():
                npk.load(name)
    except (ValueError, KeyError, TypeError, OSError):
        pass


@pytest.mark.timeout(120, method="thread")
def test_fuzz_mutated_packages(tmp_path, fuzz_bases):
    rng = random.Random(20240611)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pkg = scratch / "fuzz.npkg"
    target = scratch / "out.npk"
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + 90
    for i in range(2000):
        base, fields = fuzz_bases[i % len(fuzz_bases)]
        pkg.write_bytes(_mutate(rng, base, fields))
        for call in ("info", "unpack"):
            try:
                if call == "info":
                    numpack.get_package_info(pkg)
                else:
                    numpack.unpack(pkg, target, verify=rng.random() < 0.5)
                key = f"{call}:ok"
            except (ValueError, RuntimeError, FileExistsError) as exc:
                key = f"{call}:{type(exc).__name__}"
            except Exception as exc:  # pragma: no cover - the failure being tested for
                pytest.fail(f"iteration {i}: {call} raised {type(exc).__name__}: {exc!r}")
            outcomes[key] = outcomes.get(key, 0) + 1
        if target.exists():
            assert_store_opens(target)
            shutil.rmtree(target)
        left = sorted(os.listdir(scratch))
        assert left == ["fuzz.npkg"], f"iteration {i}: left behind {left}"
        assert sorted(os.listdir(tmp_path)) == ["scratch"]
        assert time.monotonic() < deadline, f"too slow at iteration {i}"
    assert outcomes.get("unpack:CorruptStoreError", 0) > 500, outcomes
    assert outcomes.get("unpack:ok", 0) > 10, outcomes


_EDIT = st.tuples(
    st.sampled_from(["overwrite", "insert", "delete"]),
    st.integers(0, 1 << 16),
    st.binary(min_size=1, max_size=8),
)


def _apply_edits(blob, edits):
    """``blob`` with each ``(kind, position, bytes)`` applied in turn (positions wrap)."""
    b = bytearray(blob)
    for kind, pos, data in edits:
        if kind == "insert":
            i = pos % (len(b) + 1)
            b[i:i] = data
        elif b:
            i = pos % len(b)
            if kind == "overwrite":
                b[i : i + len(data)] = data[: len(b) - i]
            else:
                del b[i : i + len(data)]
    return bytes(b)


def _outcome(call):
    """None when ``call()`` returned, else the exception, which must be an ``Exception`` of a
    documented kind (never a ``BaseException`` such as pyo3's ``PanicException``)."""
    try:
        call()
    except BaseException as exc:
        assert isinstance(exc, Exception), f"{type(exc).__name__} is not an Exception: {exc!r}"
        assert isinstance(exc, (ValueError, RuntimeError)), repr(exc)
        return exc
    return None


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(base=st.integers(0, 99), edits=st.lists(_EDIT, min_size=1, max_size=3), verify=st.booleans())
def test_mutated_package_fails_cleanly_or_unpacks_a_store(
    tmp_path_factory, fuzz_bases, base, edits, verify
):
    """A valid package with a few bytes overwritten, inserted or deleted anywhere: reading its
    table, checking it and unpacking it each either succeed or raise an ordinary exception;
    nothing appears beside the target; what unpacks is a store that verifies and loads."""
    blob = _apply_edits(fuzz_bases[base % len(fuzz_bases)][0], edits)
    root = tmp_path_factory.mktemp("mutated")
    work = root / "work"
    work.mkdir()
    pkg = work / "m.npkg"
    pkg.write_bytes(blob)
    target = work / "out.npk"
    outside = sorted(os.listdir(root.parent))

    info_error = _outcome(lambda: numpack.get_package_info(pkg))
    check_error = _outcome(lambda: _core.verify(str(pkg)))
    unpack_error = _outcome(lambda: numpack.unpack(pkg, target, verify=verify))

    assert sorted(os.listdir(root.parent)) == outside
    assert os.listdir(root) == ["work"]
    if unpack_error is not None:
        assert sorted(os.listdir(work)) == ["m.npkg"], unpack_error
    else:
        assert sorted(os.listdir(work)) == ["m.npkg", "out.npk"]
        assert info_error is None, f"unpacked, but get_package_info raised {info_error!r}"
        if verify:
            assert check_error is None, f"unpacked with verify, but verify raised {check_error!r}"
        assert_valid_store(target)
        with NumPack(target) as npk:
            for name in npk.get_member_list():
                arr = npk.load(name)
                assert isinstance(arr, np.ndarray)
                assert arr.shape == tuple(npk.get_shape(name)), name
    if info_error is not None:
        assert unpack_error is not None and check_error is not None
    if blob == fuzz_bases[base % len(fuzz_bases)][0]:
        assert info_error is check_error is unpack_error is None
    shutil.rmtree(root)


# --------------------------------------------------------------------------------------------
# Packing while another process writes
# --------------------------------------------------------------------------------------------
def append_forever(path, started, stop):
    """Worker: append row ``[i] * 4`` to ``log`` and ``[i] * 8`` to ``emb``, dropping the first
    row of ``log`` every 25 appends, until ``stop`` is set."""
    i = 0
    with NumPack(path) as npk:
        while not stop.is_set():
            npk.append({"log": np.full((1, 4), i, np.int64)})
            npk.append({"emb": np.full((1, 8), i, np.float32)})
            if i % 25 == 24:
                npk.drop("log", [0])
            i += 1
            if i == 20:
                started.set()


def check_rows(arr, width):
    """Each row constant, values strictly increasing."""
    assert arr.ndim == 2 and arr.shape[1] == width
    first = arr[:, 0]
    assert (arr == first[:, None]).all()
    assert (np.diff(first) > 0).all()


@pytest.mark.slow
def test_pack_while_another_process_appends(tmp_path):
    store = tmp_path / "live.npk"
    with NumPack(store) as npk:
        npk.save({"log": np.full((1, 4), -1, np.int64), "emb": np.full((1, 8), -1, np.float32)})
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=append_forever, args=(str(store), started, stop))
    proc.start()
    try:
        assert started.wait(30), "writer did not start"
        rows = []
        for k in range(6):
            pkg = numpack.pack(store, tmp_path / f"p{k}.npkg", shuffle=bool(k % 2))
            out = numpack.unpack(pkg, tmp_path / f"o{k}.npk")
            assert_valid_store(out)
            with NumPack(out) as npk:
                log, emb = npk.load("log"), npk.load("emb")
            check_rows(log, 4)
            check_rows(emb, 8)
            assert np.array_equal(emb[:, 0], np.arange(-1, len(emb) - 1))
            rows.append(len(emb))
            time.sleep(0.05)
    finally:
        stop.set()
        proc.join(30)
    assert proc.exitcode == 0
    assert rows == sorted(rows) and rows[-1] > rows[0], rows
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if "tmp" in n], names


def test_pack_rejects_levels_outside_zstd_range(tmp_path):
    src = tmp_path / "s.npk"
    with numpack.NumPack(src) as npk:
        npk.save({"a": np.arange(10)})
    for bad in (0, 23, -5, 100):
        with pytest.raises(ValueError, match="1 to 22"):
            numpack.pack(src, tmp_path / "x.npkg", level=bad)
    with pytest.raises(TypeError, match="level must be an int"):
        numpack.pack(src, tmp_path / "x.npkg", level=3.5)
    assert not (tmp_path / "x.npkg").exists()
    assert numpack.pack(src, tmp_path / "x.npkg", level=np.int64(22)).is_file()


# --------------------------------------------------------------------------------------------
# unpack(overwrite=True): the old store or the new one, at every instant
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def swap_packages(tmp_path_factory):
    """Two packages of different stores (``old``, ``new``): (package, store files, arrays) each."""
    root = tmp_path_factory.mktemp("swap")
    contents = {
        "old": {
            "x": np.arange(3000, dtype=np.float64),
            "y": random_array((40, 5), np.int32, seed=1),
        },
        "new": {
            "x": random_array((2500,), np.float64, seed=2),
            "z": random_array((64, 3), np.uint16, seed=3),
            "w": np.zeros((10, 0), np.int8),
        },
    }
    out = {}
    for key, arrays in contents.items():
        store = root / f"{key}.npk"
        with NumPack(store) as npk:
            npk.save(arrays)
            npk.drop("y" if key == "old" else "z", [0, 7])
        out[key] = (numpack.pack(store, root / f"{key}.npkg"), store_files(store), load_all(store))
    assert out["old"][1] != out["new"][1]
    return out


def _which_store(target, swap_packages):
    """``'old'`` or ``'new'``: which complete store is at ``target`` (file for file, then verified
    and loaded); fails for anything else."""
    assert target.is_dir(), f"{target} is missing: {sorted(os.listdir(target.parent))}"
    files = store_files(target)
    which = [k for k, (_, f, _) in swap_packages.items() if f == files]
    assert which, f"{target} holds neither store: {sorted(files)}"
    assert_valid_store(target)
    assert_same_arrays(load_all(target), swap_packages[which[0]][2])
    return which[0]


# Forks (from a process that has imported numpack and started no threads) children that unpack
# the two packages over the target in turn, appending a byte to a progress file after each.
_UNPACK_LOOP = r"""
import os, sys, time
import numpack

old, new, target, progress = sys.argv[1:5]

def loop(first):
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pkgs = (new, old) if first == "new" else (old, new)
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        numpack.unpack(pkgs[i % 2], target, overwrite=True)
        os.write(fd, b"x")
        i += 1

for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "fork":
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                loop(arg)
            except BaseException as exc:
                sys.stderr.write(f"child {os.getpid()}: {exc!r}\n")
                sys.stderr.flush()
                code = 3
            os._exit(code)
        print(pid, flush=True)
    elif cmd == "wait":
        print(os.waitpid(int(arg), 0)[1], flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_overwrite_killed_at_random_moments_leaves_old_or_new(tmp_path, swap_packages):
    """A process unpacking the two packages over one target in turn is SIGKILLed at random
    moments, 20 times: each time the target is one complete store, the old or the new, and
    nothing but numpack's temporary directories is left beside it."""
    rng = random.Random(5150)
    old_pkg, new_pkg = swap_packages["old"][0], swap_packages["new"][0]
    work = tmp_path / "work"
    work.mkdir()
    target = work / "t.npk"
    numpack.unpack(old_pkg, target)
    t0 = time.monotonic()
    for pkg in (new_pkg, old_pkg):
        numpack.unpack(pkg, target, overwrite=True)
    one = (time.monotonic() - t0) / 2  # one overwrite, fsyncs included
    progress = tmp_path / "progress"
    errors = tmp_path / "stderr"
    seen = {"old": 0, "new": 0}
    interrupted = 0
    with open(errors, "w") as err:
        helper = subprocess.Popen(
            [sys.executable, "-c", _UNPACK_LOOP, str(old_pkg), str(new_pkg), str(target),
             str(progress)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp_path,
        )  # fmt: skip
    pid = None
    try:
        for k in range(20):
            progress.write_bytes(b"")
            helper.stdin.write(f"fork {'new' if k % 2 else 'old'}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline())
            done = rng.randrange(3)  # kill during the first, second or third unpack
            deadline = time.monotonic() + 20
            while progress.stat().st_size < done:
                assert time.monotonic() < deadline, errors.read_text()
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 1.5 * one))
            os.kill(pid, signal.SIGKILL)
            helper.stdin.write(f"wait {pid}\n")
            helper.stdin.flush()
            status = int(helper.stdout.readline())
            pid = None
            assert os.WIFSIGNALED(status), f"child ended by itself: {errors.read_text()}"
            assert os.WTERMSIG(status) == signal.SIGKILL
            seen[_which_store(target, swap_packages)] += 1
            left = [n for n in os.listdir(work) if n != "t.npk"]
            assert all(n.startswith(".numpack.tmp.") for n in left), left
            interrupted += bool(left)
            for n in left:  # what a killed unpack leaves: its temporary directory
                shutil.rmtree(work / n)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        helper.stdin.close()
        try:
            helper.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - the helper hangs
            helper.kill()
            helper.wait()
        helper.stdout.close()
    assert helper.returncode == 0, errors.read_text()
    assert seen["old"] and seen["new"], seen
    assert interrupted, "no kill landed inside an unpack"


def _watch(target, seen, samples, started, stop):
    """Until ``stop``: stat ``target`` and its metadata, appending to ``seen`` each inode (or
    what is missing) that differs from the last one; the last sample is taken after ``stop``."""
    while True:
        last = stop.is_set()
        try:
            ino = os.stat(target).st_ino
            os.stat(target / "metadata.npkm")
        except FileNotFoundError as exc:
            ino = f"missing: {exc.filename}"
        if not seen or seen[-1] != ino:
            seen.append(ino)
        samples.append(None)
        started.set()
        if last:
            return


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2(RENAME_EXCHANGE) is Linux's")
def test_overwrite_swaps_the_target_in_one_step(tmp_path, swap_packages):
    """While ``unpack(overwrite=True)`` runs, another thread watching ``target`` sees its old
    inode, then the new one, and never a missing target or store; afterwards the old directory
    is gone (no links left) and nothing else is beside the target."""
    target = tmp_path / "t.npk"
    numpack.unpack(swap_packages["old"][0], target)
    samples = []
    for k in range(8):
        key = "new" if k % 2 == 0 else "old"
        before = os.stat(target).st_ino
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        seen = []
        started, stop = threading.Event(), threading.Event()
        watcher = threading.Thread(target=_watch, args=(target, seen, samples, started, stop))
        watcher.start()
        try:
            assert started.wait(10)
            numpack.unpack(swap_packages[key][0], target, overwrite=True)
        finally:
            stop.set()
            watcher.join()
        try:
            assert os.fstat(fd).st_nlink == 0, "the old store directory is still linked"
        finally:
            os.close(fd)
        after = os.stat(target).st_ino
        assert after != before
        assert seen == [before, after], seen
        assert _which_store(target, swap_packages) == key
        assert sorted(os.listdir(tmp_path)) == ["t.npk"]
    assert len(samples) > 16
