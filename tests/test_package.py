"""`.npkg` packages: round trips, the published byte layout, hostile packages, fuzzing."""

from __future__ import annotations

import multiprocessing
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import DTYPES, random_array

import numpack
from numpack import NumPack, get_package_info, pack, unpack
from numpack.exceptions import CorruptStoreError


def make_store(path: Path) -> dict[str, np.ndarray]:
    arrays = {
        f"a_{np.dtype(d).name}": random_array((50, 3), d, seed=i) for i, d in enumerate(DTYPES)
    }
    arrays["empty"] = np.zeros((0, 4), np.float32)
    arrays["scalar"] = np.array(3.5)
    with NumPack(path) as npk:
        npk.save(arrays)
        npk.drop("a_float32", [0, 7, -1])
    arrays["a_float32"] = np.delete(arrays["a_float32"], [0, 7, 49], axis=0)
    return arrays


def assert_store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with NumPack(path) as npk:
        assert sorted(npk.get_member_list()) == sorted(arrays)
        for name, want in arrays.items():
            got = npk.load(name)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("compression", [True, False])
@pytest.mark.parametrize("shuffle", [False, True])
def test_round_trip(tmp_path: Path, compression: bool, shuffle: bool) -> None:
    arrays = make_store(tmp_path / "s.npk")
    out = pack(tmp_path / "s.npk", tmp_path / "p", compression=compression, shuffle=shuffle)
    assert out == tmp_path / "p.npkg"
    info = get_package_info(out)
    assert info["version"] == (3 if shuffle and compression else 2)
    assert info["compression"] == int(compression)
    assert info["compression_name"] == ("zstd" if compression else "none")
    names = [f["name"] for f in info["files"]]
    assert names == sorted(names) and "metadata.npkm" in names
    assert "deleted_a_float32.npkb" in names
    assert info["file_count"] == len(names)
    restored = unpack(out, tmp_path / "r.npk")
    assert restored == tmp_path / "r.npk"
    assert_store(restored, arrays)


def test_default_names_and_existing_targets(tmp_path: Path) -> None:
    make_store(tmp_path / "data.npk")
    out = pack(tmp_path / "data.npk")
    assert out == tmp_path / "data.npk.npkg"
    with pytest.raises(FileExistsError):
        pack(tmp_path / "data.npk")
    pack(tmp_path / "data.npk", overwrite=True)
    with pytest.raises(FileExistsError):
        unpack(out, tmp_path / "data.npk")
    (tmp_path / "x.npkg").write_bytes(out.read_bytes())
    assert unpack(tmp_path / "x.npkg") == tmp_path / "x.npk"
    assert unpack(out, tmp_path / "data.npk", overwrite=True) == tmp_path / "data.npk"
    with pytest.raises(ValueError):
        pack(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"metadata\.npkm"):
        pack(tmp_path / "plain")
    with pytest.raises(ValueError):
        unpack(tmp_path / "missing.npkg")


# --- hand-built packages in the published layout ------------------------------------------


def build(members: list[tuple[str, bytes, str]], version: int = 2, compression: int = 1) -> bytes:
    """members: (name, original bytes, 'raw' | 'zlib'); the published checksum rule."""
    out = b"NPKG" + struct.pack("<IBI", version, compression, len(members))
    crc = 0
    for name, data, how in members:
        payload = zlib.compress(data, 6) if how == "zlib" else data
        comp = len(payload) if how == "zlib" else 0
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<QQ", len(data), comp)
        out += payload
        if version == 1:
            crc = zlib.crc32(data, crc)
        else:
            crc = zlib.crc32(struct.pack("<I", zlib.crc32(data)), crc)
    return out + struct.pack("<I", crc & 0xFFFFFFFF)


def store_files(tmp_path: Path) -> tuple[list[tuple[str, bytes]], dict[str, np.ndarray]]:
    arrays = make_store(tmp_path / "src.npk")
    files = sorted(
        (f.name, f.read_bytes())
        for f in (tmp_path / "src.npk").iterdir()
        if f.name == "metadata.npkm" or f.suffix in (".npkd", ".npkb")
    )
    return files, arrays


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("how", ["zlib", "raw"])
def test_hand_built_packages_unpack(tmp_path: Path, version: int, how: str) -> None:
    files, arrays = store_files(tmp_path)
    blob = build([(n, d, how) for n, d in files], version=version)
    (tmp_path / "h.npkg").write_bytes(blob)
    assert get_package_info(tmp_path / "h.npkg")["version"] == version
    assert_store(unpack(tmp_path / "h.npkg", tmp_path / "h.npk"), arrays)


def test_our_v2_packages_follow_the_published_layout(tmp_path: Path) -> None:
    files, _ = store_files(tmp_path)
    out = pack(tmp_path / "src.npk", tmp_path / "o.npkg")
    blob = out.read_bytes()
    assert blob[:4] == b"NPKG"
    version, compression, count = struct.unpack_from("<IBI", blob, 4)
    assert (version, compression, count) == (2, 1, len(files))
    pos, crc = 13, 0
    for name, data in files:
        (n,) = struct.unpack_from("<I", blob, pos)
        assert blob[pos + 4 : pos + 4 + n].decode() == name
        orig, comp = struct.unpack_from("<QQ", blob, pos + 4 + n)
        assert orig == len(data)
        pos += 4 + n + 16 + (comp or orig)
        crc = zlib.crc32(struct.pack("<I", zlib.crc32(data)), crc)
    assert struct.unpack_from("<I", blob, pos)[0] == crc & 0xFFFFFFFF
    assert pos + 4 == len(blob)


# --- hostile packages ---------------------------------------------------------------------

HOSTILE_NAMES = ["../evil.npkd", "/abs/data_x.npkd", "data_a/b.npkd", "data_\x00.npkd", "notes.txt"]


@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_hostile_member_names_are_rejected(tmp_path: Path, bad: str) -> None:
    files, _ = store_files(tmp_path)
    blob = build([(n, d, "raw") for n, d in files] + [(bad, b"x" * 8, "raw")])
    (tmp_path / "h.npkg").write_bytes(blob)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError):
        unpack(tmp_path / "h.npkg", tmp_path / "out.npk")
    assert sorted(os.listdir(tmp_path)) == before
    assert not (tmp_path.parent / "evil.npkd").exists()


def test_duplicates_sizes_truncation_and_checksum(tmp_path: Path) -> None:
    files, _ = store_files(tmp_path)
    good = [(n, d, "zlib") for n, d in files]
    cases = {
        "dup": build([*good, good[0]]),
        "trunc": build(good)[:-40],
        "trailing": build(good) + b"xx",
    }
    # A member that decompresses past its declared size.
    name, data, _ = good[0]
    blob = bytearray(build(good))
    at = blob.index(name.encode()) + len(name)
    struct.pack_into("<Q", blob, at, len(data) - 1)
    cases["longer"] = bytes(blob)
    struct.pack_into("<Q", blob, at, len(data) + 1)
    cases["shorter"] = bytes(blob)
    for label, bad in cases.items():
        (tmp_path / f"{label}.npkg").write_bytes(bad)
        with pytest.raises(ValueError):
            unpack(tmp_path / f"{label}.npkg", tmp_path / f"{label}.npk")
        assert not (tmp_path / f"{label}.npk").exists(), label
    blob = bytearray(build(good))
    blob[-1] ^= 0xFF
    (tmp_path / "crc.npkg").write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="Checksum verification failed"):
        unpack(tmp_path / "crc.npkg", tmp_path / "crc.npk")
    assert not (tmp_path / "crc.npk").exists()
    assert unpack(tmp_path / "crc.npkg", tmp_path / "crc.npk", verify=False).exists()
    (tmp_path / "magic.npkg").write_bytes(b"XXXX" + bytes(blob[4:]))
    with pytest.raises(ValueError, match=r"Invalid \.npkg file"):
        unpack(tmp_path / "magic.npkg", tmp_path / "m.npk")
    v9 = bytearray(blob)
    struct.pack_into("<I", v9, 4, 9)
    (tmp_path / "v9.npkg").write_bytes(bytes(v9))
    with pytest.raises(ValueError, match="version"):
        get_package_info(tmp_path / "v9.npkg")


def test_a_failed_overwrite_leaves_the_target_untouched(tmp_path: Path) -> None:
    arrays = make_store(tmp_path / "t.npk")
    out = pack(tmp_path / "t.npk", tmp_path / "t.npkg")
    blob = bytearray(out.read_bytes())
    blob[-1] ^= 1
    (tmp_path / "bad.npkg").write_bytes(bytes(blob))
    with pytest.raises(RuntimeError):
        unpack(tmp_path / "bad.npkg", tmp_path / "t.npk", overwrite=True)
    assert_store(tmp_path / "t.npk", arrays)


def test_mutated_packages_never_escape_or_crash(tmp_path: Path) -> None:
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.arange(40, dtype=np.int32).reshape(10, 4), "b": np.ones(3)})
        npk.drop("a", [1])
    good = pack(tmp_path / "s.npk", tmp_path / "g.npkg").read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rng = random.Random(1234)
    for i in range(1500):
        blob = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            kind = rng.randrange(4)
            at = rng.randrange(max(1, len(blob)))
            if not blob:
                blob.append(rng.randrange(256))
                continue
            if kind == 0:
                blob[at] = rng.randrange(256)
            elif kind == 1:
                blob.insert(at, rng.randrange(256))
            elif kind == 2 and len(blob) > 1:
                del blob[at]
            else:
                del blob[at:]
        path = scratch / "m.npkg"
        path.write_bytes(bytes(blob))
        try:
            get_package_info(path)
        except (ValueError, RuntimeError):
            pass
        target = scratch / f"out{i}.npk"
        try:
            unpack(path, target)
        except (ValueError, RuntimeError, CorruptStoreError):
            assert not target.exists()
        else:
            with NumPack(target) as npk:  # whatever unpacked is a readable store
                for name in npk.get_member_list():
                    npk.load(name)
        leftovers = [n for n in os.listdir(scratch) if not n.startswith(("m.npkg", "out"))]
        assert leftovers == [], leftovers
    assert sorted(os.listdir(tmp_path)) == ["g.npkg", "s.npk", "scratch"]


def _append_forever(path: str, stop: multiprocessing.synchronize.Event) -> None:
    with NumPack(path) as npk:
        i = 0
        while not stop.is_set():
            npk.append({"a": np.full((50, 4), i, np.int64)})
            i += 1


@pytest.mark.timeout(120)
def test_pack_while_another_process_appends(tmp_path: Path) -> None:
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.zeros((10, 4), np.int64)})
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=_append_forever, args=(str(tmp_path / "s.npk"), stop))
    proc.start()
    try:
        for k in range(5):
            out = pack(tmp_path / "s.npk", tmp_path / f"p{k}.npkg")
            restored = unpack(out, tmp_path / f"r{k}.npk")
            assert numpack._core.verify(str(restored))[0] == []
            with NumPack(restored) as npk:
                a = npk.load("a")
                assert (a.shape[0] - 10) % 50 == 0  # whole appends only
    finally:
        stop.set()
        proc.join(30)
    assert proc.exitcode == 0
