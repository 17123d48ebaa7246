"""The ``numpack`` command line, run as a real subprocess (``python -m numpack`` and the
installed console script): every subcommand, its errors and exit statuses (0 ok, 1 failure,
2 bad usage), ``--json`` output and ``--help`` examples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numpack
from numpack import NumPack

pytestmark = pytest.mark.timeout(120)

SCRIPT = shutil.which("numpack")
COMMANDS = ("info", "pack", "unpack", "verify", "convert", "compact", "drop")


def run(*args, script=False, cwd=None):
    """Runs the command line; ``script`` uses the console script instead of ``-m numpack``."""
    head = [SCRIPT] if script else [sys.executable, "-m", "numpack"]
    return subprocess.run(
        [*head, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def ok(*args, **kw):
    r = run(*args, **kw)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    return r


def fails(code, *args, match=None, **kw):
    """Runs a command that must exit with ``code`` and a one-line error (no traceback)."""
    r = run(*args, **kw)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    if code == 1:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("numpack: error: "), r.stderr
    else:
        assert "usage:" in r.stderr
    if match is not None:
        assert match in r.stderr, r.stderr
    return r


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.npk"
    with NumPack(path) as npk:
        npk.save(
            {
                "emb": np.arange(40, dtype=np.float32).reshape(10, 4),
                "ids": np.arange(7),
                "flag": np.array(True),
            }
        )
        npk.drop("emb", [0, 1])
    return path


EMB = np.arange(8, 40, dtype=np.float32).reshape(8, 4)


# --------------------------------------------------------------------------------------------
# help and usage
# --------------------------------------------------------------------------------------------
def test_help_lists_every_command_with_examples():
    r = ok("--help")
    for cmd in COMMANDS:
        assert cmd in r.stdout
    assert "numpack pack" in r.stdout  # examples in the epilog


@pytest.mark.parametrize("cmd", COMMANDS)
def test_subcommand_help_shows_an_example(cmd):
    r = ok(cmd, "--help")
    assert "example" in r.stdout.lower()
    assert f"numpack {cmd}" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("bogus",),
        ("info",),
        ("pack",),
        ("unpack",),
        ("verify",),
        ("convert", "only-one"),
        ("compact",),
        ("drop", "store.npk"),  # at least one name
        ("pack", "s.npk", "--level", "abc"),
        ("pack", "s.npk", "--no-such-option"),
        ("info", "s.npk", "extra"),
    ],
    ids=lambda a: "-".join(a) or "none",
)
def test_bad_usage_exits_2(args):
    fails(2, *args)


@pytest.mark.skipif(SCRIPT is None, reason="console script not installed")
def test_console_script_matches_python_m(store):
    a = ok("info", store, "--json")
    b = ok("info", store, "--json", script=True)
    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert run("bogus", script=True).returncode == 2
    assert "example" in ok("pack", "--help", script=True).stdout


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------
def test_info_store_table(store):
    r = ok("info", store)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "dtype", "shape"]
    text = r.stdout
    assert "emb" in text and "float32" in text and "(8, 4)" in text
    assert "(7,)" in text and "()" in text and "bool" in text
    assert all(line == line.rstrip() for line in lines)


def test_info_store_json(store):
    info = json.loads(ok("info", store, "--json").stdout)
    assert info["store"] == str(store)
    rows = {a["name"]: a for a in info["arrays"]}
    assert set(rows) == {"emb", "ids", "flag"}
    assert rows["emb"]["shape"] == [8, 4] and rows["emb"]["deleted_rows"] == 2
    assert rows["emb"]["dtype"] == "float32"
    assert rows["ids"]["dtype"] == "int64" and rows["ids"]["bytes_on_disk"] == 56
    assert rows["flag"]["shape"] == []
    assert all("last_modified" in r for r in rows.values())


def test_info_package(store, tmp_path):
    pkg = numpack.pack(store, tmp_path / "p.npkg")
    r = ok("info", pkg)
    assert "version 2" in r.stdout and "zstd" in r.stdout and "metadata.npkm" in r.stdout
    assert json.loads(ok("info", pkg, "--json").stdout) == numpack.get_package_info(pkg)


def test_info_errors(tmp_path):
    fails(1, "info", tmp_path / "missing.npk", match="missing.npk")
    (tmp_path / "plain").mkdir()
    fails(1, "info", tmp_path / "plain", match="metadata.npkm")
    (tmp_path / "x.npkg").write_bytes(b"not a package at all")
    fails(1, "info", tmp_path / "x.npkg", match="Invalid .npkg file")


# --------------------------------------------------------------------------------------------
# pack / unpack
# --------------------------------------------------------------------------------------------
def test_pack_default_target_and_output(store, tmp_path):
    r = ok("pack", store)
    assert Path(r.stdout.strip()) == tmp_path / "s.npk.npkg"
    assert (tmp_path / "s.npk.npkg").is_file()
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    fails(1, "pack", store, match="--overwrite")
    ok("pack", store, "--overwrite")
    r = ok("-q", "pack", store, "-o", tmp_path / "quiet")
    assert r.stdout == "" and (tmp_path / "quiet.npkg").is_file()
    r = ok("pack", "-q", store, "-o", tmp_path / "quiet2.npkg")
    assert r.stdout == ""


def test_pack_options(store, tmp_path):
    ok("pack", store, "-o", tmp_path / "raw.npkg", "--no-compress")
    ok("pack", store, "-o", tmp_path / "shuf.npkg", "--shuffle", "--level", "9")
    ok("pack", store, "--output", tmp_path / "l1.npkg", "--level", "1")
    fails(1, "pack", store, "-o", tmp_path / "bad.npkg", "--level", "30", match="1 to 22")
    raw = numpack.get_package_info(tmp_path / "raw.npkg")
    assert raw["compression"] == 0 and raw["version"] == 2
    shuf = numpack.get_package_info(tmp_path / "shuf.npkg")
    assert shuf["compression"] == 1 and shuf["version"] == 3
    assert numpack.get_package_info(tmp_path / "l1.npkg")["version"] == 2


def test_pack_errors(tmp_path):
    fails(1, "pack", tmp_path / "missing.npk", match="missing.npk")
    (tmp_path / "plain").mkdir()
    fails(1, "pack", tmp_path / "plain", match="metadata.npkm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_unpack(store, tmp_path):
    pkg = numpack.pack(store, tmp_path / "p.npkg", shuffle=True)
    r = ok("unpack", pkg)
    assert Path(r.stdout.strip()) == tmp_path / "p.npk"
    ok("unpack", pkg, "-o", tmp_path / "r.npk")
    with NumPack(tmp_path / "r.npk") as npk:
        np.testing.assert_array_equal(npk.load("emb"), EMB)
        assert npk.load("flag").shape == ()
    fails(1, "unpack", pkg, "-o", tmp_path / "r.npk", match="--overwrite")
    (tmp_path / "r.npk" / "stray.txt").write_text("x")
    ok("unpack", pkg, "-o", tmp_path / "r.npk", "--overwrite")
    assert not (tmp_path / "r.npk" / "stray.txt").exists()


def test_unpack_errors_leave_nothing(store, tmp_path):
    pkg = numpack.pack(store, tmp_path / "p.npkg")
    blob = bytearray(pkg.read_bytes())
    blob[-1] ^= 0xFF  # the checksum
    bad = tmp_path / "bad.npkg"
    bad.write_bytes(bytes(blob))
    before = sorted(p.name for p in tmp_path.iterdir())
    fails(1, "unpack", bad, "-o", tmp_path / "o.npk", match="Checksum verification failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    ok("unpack", bad, "-o", tmp_path / "o.npk", "--no-verify")
    assert (tmp_path / "o.npk" / "metadata.npkm").is_file()

    evil = bytearray(pkg.read_bytes())
    at = evil.index(b"data_emb.npkd")
    evil[at : at + 13] = b"../x_emb.npkd"
    (tmp_path / "evil.npkg").write_bytes(bytes(evil))
    fails(1, "unpack", tmp_path / "evil.npkg", "-o", tmp_path / "e.npk", match="not a store file")
    assert not (tmp_path / "e.npk").exists() and not (tmp_path.parent / "x_emb.npkd").exists()
    fails(1, "unpack", tmp_path / "missing.npkg")


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------
def test_verify_store_and_package(store, tmp_path):
    r = ok("verify", store)
    assert "ok" in r.stdout
    pkg = numpack.pack(store, tmp_path / "p.npkg")
    assert "ok" in ok("verify", pkg).stdout
    assert ok("-q", "verify", pkg).stdout == ""


def test_verify_finds_problems(store, tmp_path):
    pkg = numpack.pack(store, tmp_path / "p.npkg")
    blob = bytearray(pkg.read_bytes())
    blob[-1] ^= 1
    (tmp_path / "crc.npkg").write_bytes(bytes(blob))
    r = run("verify", tmp_path / "crc.npkg")
    assert r.returncode == 1 and "Checksum" in r.stdout and "Traceback" not in r.stderr
    (tmp_path / "trunc.npkg").write_bytes(bytes(blob[:-30]))
    assert run("verify", tmp_path / "trunc.npkg").returncode == 1
    (tmp_path / "zero.npkg").write_bytes(b"NPKG" + b"\0" * 20)
    assert run("verify", tmp_path / "zero.npkg").returncode == 1

    with open(store / "data_emb.npkd", "r+b") as f:
        f.truncate(10)
    r = run("verify", store)
    assert r.returncode == 1 and "data_emb.npkd" in r.stdout and "problem" in r.stdout
    fails(1, "verify", tmp_path / "missing.npk", match="missing.npk")


# --------------------------------------------------------------------------------------------
# compact / drop
# --------------------------------------------------------------------------------------------
def test_compact_all(store):
    assert (store / "deleted_emb.npkb").exists()
    ok("compact", store)
    assert not (store / "deleted_emb.npkb").exists()
    assert (store / "data_emb.npkd").stat().st_size == EMB.nbytes
    with NumPack(store) as npk:
        np.testing.assert_array_equal(npk.load("emb"), EMB)
        np.testing.assert_array_equal(npk.load("ids"), np.arange(7))
    ok("verify", store)


def test_compact_named_and_errors(store, tmp_path):
    ok("compact", store, "emb")
    assert not (store / "deleted_emb.npkb").exists()
    fails(1, "compact", store, "nope", match="nope")
    fails(1, "compact", tmp_path / "missing.npk")
    assert not (tmp_path / "missing.npk").exists()


def test_drop(store, tmp_path):
    ok("drop", store, "ids", "flag")
    with NumPack(store) as npk:
        assert npk.get_member_list() == ["emb"]
        np.testing.assert_array_equal(npk.load("emb"), EMB)
    fails(1, "drop", store, "emb", "nope", match="nope")
    with NumPack(store) as npk:  # all or nothing: emb is still there
        assert npk.get_member_list() == ["emb"]
    fails(1, "drop", tmp_path / "missing.npk", "x")
    assert not (tmp_path / "missing.npk").exists()


# --------------------------------------------------------------------------------------------
# convert (through numpack.io)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "suffix", [".csv", ".parquet", ".feather", ".h5", ".zarr", ".safetensors", ".pt"]
)
def test_convert_every_format_both_ways(store, tmp_path, suffix):
    out = tmp_path / f"emb{suffix}"
    ok("convert", f"{store}:emb", out, "-q")
    assert out.exists()
    back = tmp_path / "back.npk"
    ok("convert", out, back, "--name", "emb", "-q")
    with NumPack(back) as npk:
        (name,) = npk.get_member_list()
        got = npk.load(name)
    np.testing.assert_array_equal(got.reshape(EMB.shape), EMB)


def test_convert_npy_both_ways(store, tmp_path):
    pytest.importorskip("numpack.io")
    out = tmp_path / "emb.npy"
    ok("convert", f"{store}:emb", out)
    np.testing.assert_array_equal(np.load(out), EMB)
    ok("convert", out, tmp_path / "n.npk", "--name", "x")
    with NumPack(tmp_path / "n.npk") as npk:
        np.testing.assert_array_equal(npk.load("x"), EMB)
    ok("convert", out, tmp_path / "m.npk")  # default name: the file stem
    with NumPack(tmp_path / "m.npk") as npk:
        assert npk.get_member_list() == ["emb"]


def test_convert_errors(store, tmp_path):
    pytest.importorskip("numpack.io")
    fails(1, "convert", tmp_path / "x.unknown", tmp_path / "n.npk")
    fails(1, "convert", f"{store}:emb", tmp_path / "x.unknown")
    fails(1, "convert", tmp_path / "missing.npy", tmp_path / "n.npk")
