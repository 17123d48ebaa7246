"""The `numpack` command line, run as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpack import NumPack

SCRIPT = shutil.which("numpack")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "numpack", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.npk"
    with NumPack(path) as npk:
        npk.save({"emb": np.arange(40, dtype=np.float32).reshape(10, 4), "ids": np.arange(7)})
        npk.drop("emb", [0, 1])
    return path


def test_info_table_and_json(store: Path) -> None:
    r = run("info", str(store))
    assert r.returncode == 0, r.stderr
    assert "emb" in r.stdout and "float32" in r.stdout and "(8, 4)" in r.stdout
    r = run("info", str(store), "--json")
    info = json.loads(r.stdout)
    rows = {a["name"]: a for a in info["arrays"]}
    assert rows["emb"]["shape"] == [8, 4] and rows["emb"]["deleted_rows"] == 2
    assert rows["ids"]["dtype"] == "int64" and rows["ids"]["bytes_on_disk"] == 56


def test_pack_info_verify_unpack(store: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "s.npkg"
    r = run("pack", str(store), "-o", str(pkg), "--level", "5", "--shuffle")
    assert r.returncode == 0, r.stderr
    assert pkg.exists() and r.stderr == ""  # no progress bar when not a terminal
    r = run("info", str(pkg), "--json")
    assert json.loads(r.stdout)["version"] == 3
    assert run("verify", str(pkg)).returncode == 0
    r = run("unpack", str(pkg), "-o", str(tmp_path / "r.npk"))
    assert r.returncode == 0, r.stderr
    with NumPack(tmp_path / "r.npk") as npk:
        assert npk.get_shape("emb") == (8, 4)
    r = run("unpack", str(pkg), "-o", str(tmp_path / "r.npk"))
    assert r.returncode == 1 and "exists" in r.stderr and "Traceback" not in r.stderr
    assert run("unpack", str(pkg), "-o", str(tmp_path / "r.npk"), "--overwrite").returncode == 0
    assert run("pack", str(store), "-o", str(pkg), "--no-compress", "--overwrite").returncode == 0
    assert json.loads(run("info", str(pkg), "--json").stdout)["compression"] == 0


def test_verify_finds_problems(store: Path, tmp_path: Path) -> None:
    r = run("verify", str(store))
    assert r.returncode == 0 and "ok" in r.stdout
    with open(store / "data_emb.npkd", "r+b") as f:
        f.truncate(10)
    r = run("verify", str(store))
    assert r.returncode == 1 and "data_emb.npkd" in r.stdout
    pkg = tmp_path / "bad.npkg"
    pkg.write_bytes(b"NPKG" + b"\0" * 20)
    assert run("verify", str(pkg)).returncode == 1


def test_compact_and_drop(store: Path) -> None:
    assert run("compact", str(store)).returncode == 0
    assert not (store / "deleted_emb.npkb").exists()
    assert run("drop", str(store), "ids").returncode == 0
    r = run("drop", str(store), "nope")
    assert r.returncode == 1 and "nope" in r.stderr
    with NumPack(store) as npk:
        assert npk.get_member_list() == ["emb"]
        assert npk.get_shape("emb") == (8, 4)


def test_convert_npy_both_ways(store: Path, tmp_path: Path) -> None:
    pytest.importorskip("numpack.io")
    out = tmp_path / "emb.npy"
    r = run("convert", f"{store}:emb", str(out))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), np.arange(8, 40, dtype=np.float32).reshape(8, 4))
    r = run("convert", str(out), str(tmp_path / "n.npk"), "--name", "x")
    assert r.returncode == 0, r.stderr
    with NumPack(tmp_path / "n.npk") as npk:
        assert npk.get_shape("x") == (8, 4)


def test_usage_errors_and_help() -> None:
    assert run().returncode == 2
    assert run("bogus").returncode == 2
    assert run("pack").returncode == 2
    for cmd in ("info", "pack", "unpack", "verify", "convert", "compact", "drop"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "example" in r.stdout, cmd
    r = run("info", "/nonexistent/store.npk")
    assert r.returncode == 1 and r.stderr.startswith("numpack: error:")


@pytest.mark.skipif(SCRIPT is None, reason="console script not installed")
def test_console_script(store: Path) -> None:
    r = subprocess.run([SCRIPT, "info", str(store), "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["store"] == str(store)
