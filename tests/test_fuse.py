"""A store on a FUSE mount (a passthrough file system in its own process, tests/fs/): every
operation, history and snapshots, processes writing and reading at once, and a writer killed
mid-commit. What a network or FUSE file system changes for numpack (page faults served by a
user-space process, size and attribute caching, locks kept by the kernel) is exercised here;
NFS itself is not (no NFS server in this sandbox; see docs/distributed.md)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from numpack import NumPack

try:  # fusepy (make deps) mounts the passthrough file system; it needs libfuse2 to import
    import fuse  # noqa: F401
except (ImportError, OSError) as e:  # OSError: fusepy without libfuse
    pytest.skip(f"fusepy cannot load: {e}", allow_module_level=True)
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def mount(tmp_path_factory):
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount") is None:
        pytest.skip("no /dev/fuse or fusermount here")
    root = tmp_path_factory.mktemp("fuse")
    src, mnt = root / "src", root / "mnt"
    src.mkdir()
    mnt.mkdir()
    log = root / "fuse.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "fs" / "passthrough.py"), str(src), str(mnt)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    for _ in range(100):
        if os.path.ismount(mnt):
            break
        if proc.poll() is not None:
            pytest.skip(f"FUSE mount refused: {log.read_text()[-300:]}")
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.skip("FUSE mount did not appear")
    try:
        yield mnt
    finally:
        subprocess.run(["fusermount", "-u", str(mnt)], check=False)
        proc.wait(timeout=10)


def test_every_operation_on_a_fuse_mount(mount: Path) -> None:
    path = mount / "ops.npk"
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    with NumPack(path, drop_if_exists=True) as npk:
        npk.set_history(10)
        npk.save({"x": x, "y": np.arange(100)})
        v = npk.version
        npk.append({"x": np.ones((5, 4), np.float32), "y": np.arange(5)})
        npk.replace({"x": np.zeros((2, 4), np.float32)}, [0, 50])
        npk.drop("x", [1])
        lazy = npk.load("x", lazy=True)
        assert lazy.shape == (104, 4) and lazy[[0, -1]].tolist() == [[0] * 4, [1] * 4]
        with npk.snapshot(v) as snap:
            np.testing.assert_array_equal(snap.load("x"), x)
        npk.update("x")
        assert npk.get_shape("x") == (104, 4)
    with NumPack(path) as npk:
        assert npk.getitem("x", [49]).tolist() == [[0.0] * 4]  # row 50 before the drop
        assert npk.get_shape("y") == (105,)


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from numpack import NumPack
    with NumPack(sys.argv[1]) as npk:
        for i in range(int(sys.argv[2])):
            rows = np.random.default_rng(i).integers(0, 200, 20)
            npk.replace({"a": np.full((20, 8), i + 1, np.int64)}, rows)
            npk.append({"a": np.full((1, 8), -1, np.int64)})
    """
)


def test_a_writer_and_snapshot_readers_in_other_processes(mount: Path) -> None:
    """Each row of every snapshot read is whole (all 8 columns alike): replaces and appends
    of another process never show half-done through the mount."""
    path = mount / "rw.npk"
    with NumPack(path, drop_if_exists=True) as npk:
        npk.save({"a": np.zeros((200, 8), np.int64)})
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "60"])
    seen = 0
    with NumPack(path) as npk:
        while w.poll() is None or seen < 3:
            with npk.snapshot() as snap:
                a = snap.load("a")
            assert (a == a[:, :1]).all(), "a row was read half-replaced"
            assert a.shape[0] >= 200
            seen += 1
    assert w.wait(timeout=120) == 0
    with NumPack(path) as npk:
        assert npk.get_shape("a") == (260, 8)


def test_a_writer_killed_on_a_fuse_mount_leaves_a_state_before_or_after(mount: Path) -> None:
    path = mount / "kill.npk"
    with NumPack(path, drop_if_exists=True) as npk:
        npk.save({"a": np.zeros((200, 8), np.int64)})
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "100000"])
    time.sleep(1.5)
    w.send_signal(signal.SIGKILL)
    w.wait(timeout=30)
    with NumPack(path) as npk:
        a = npk.load("a")
        assert (a == a[:, :1]).all(), "a killed replace left a row half-written"
        n = a.shape[0] - 200
        assert (a[200:] == -1).all() and n >= 0
        npk.append({"a": np.full((1, 8), 7, np.int64)})  # the store takes writes again
        assert npk.get_shape("a") == (201 + n, 8)
