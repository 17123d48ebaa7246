"""Stores move both ways between the Rust API (`ParallelIO`) and the Python package."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from numpack import NumPack

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "debug" / "examples" / "interop"


@pytest.fixture(scope="module")
def interop() -> Path:
    if shutil.which("cargo") is None and not BIN.exists():
        pytest.skip("cargo is needed to build the Rust interop example")
    subprocess.run(
        ["cargo", "build", "-q", "-p", "numpack", "--example", "interop"], cwd=ROOT, check=True
    )
    return BIN


def dump(binary: Path, store: Path) -> dict[str, tuple[str, str, float]]:
    out = subprocess.run([str(binary), "dump", str(store)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    return {name: (dtype, shape, float(total)) for name, dtype, shape, total in rows}


def test_python_store_opens_in_rust(interop: Path, tmp_path: Path) -> None:
    store = tmp_path / "py.npk"
    a = np.arange(60, dtype=np.float64).reshape(20, 3)
    b = np.arange(7) % 3 == 0
    c = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    with NumPack(store) as npk:
        npk.save({"a": a, "b": b, "c": c})
        npk.append({"a": a[:2]})
        npk.drop("a", [0, 5])
    got = dump(interop, store)
    expected_a = np.delete(np.concatenate([a, a[:2]]), [0, 5], axis=0)
    assert got["a"] == ("float64", "[20, 3]", float(expected_a.sum()))
    assert got["b"] == ("bool", "[7]", float(b.sum()))
    assert got["c"] == ("int16", "[2, 3, 4]", float(c.sum()))


def test_rust_store_opens_in_python(interop: Path, tmp_path: Path) -> None:
    store = tmp_path / "rust.npk"
    subprocess.run([str(interop), "write", str(store)], check=True)
    with NumPack(store) as npk:
        assert npk.get_member_list() == ["rust_bool", "rust_f32", "rust_i64"]
        full = np.arange(400, dtype=np.float32).reshape(100, 4)
        np.testing.assert_array_equal(npk.load("rust_f32"), full[1:-1])
        np.testing.assert_array_equal(npk.load("rust_i64"), np.arange(10) - 5)
        flags = npk.load("rust_bool")
        assert flags.dtype == np.bool_ and flags.shape == (6, 2, 2)
        np.testing.assert_array_equal(flags[:, 0, 0], [True, False] * 3)
        # And back: Python changes are seen by Rust.
        npk.append({"rust_i64": np.array([100], dtype=np.int64)})
    assert dump(interop, store)["rust_i64"] == ("int64", "[11]", 95.0)


def test_a_store_with_history_keeps_the_published_layout(interop: Path, tmp_path: Path) -> None:
    """History lives in files other readers ignore: the published layout alone (metadata,
    data files, bitmaps) is the current state, and no current data file shares its inode
    with a kept one (the published package writes data files in place)."""
    store = tmp_path / "h.npk"
    a = np.arange(60, dtype=np.float64).reshape(20, 3)
    with NumPack(store) as npk:
        npk.set_history(100)
        npk.save({"a": a, "b": np.arange(5)})
        npk.replace({"a": np.zeros((1, 3))}, [1])
        npk.drop("a", [0])
        npk.save({"b": np.arange(3)})  # keeps the old data file
        npk.update("a")  # keeps the old data file and bitmap
        npk.append({"a": a[:1]})
        current = {n: npk.load(n) for n in npk.get_member_list()}
        assert len(npk.versions()) >= 6
    names = [f.name for f in store.iterdir()]
    assert any(n.startswith(".numpack.v") for n in names)
    published = tmp_path / "published.npk"
    published.mkdir()
    for f in store.iterdir():
        if f.name == "metadata.npkm" or f.name.startswith(("data_", "deleted_")):
            assert f.stat().st_nlink == 1, f.name
            shutil.copy(f, published / f.name)
    got = dump(interop, published)
    assert got["a"] == ("float64", str(list(current["a"].shape)), float(current["a"].sum()))
    assert got["b"] == ("int64", "[3]", 3.0)
