"""``NUMPACK_DURABLE=1``, checked on the real system calls: a child process runs each
mutation under ``strace -f -y`` and the trace must show every byte a commit depends on
synced before its commit point (data ``fdatasync``/``fsync`` before the metadata or journal
rename), a directory ``fsync`` after every rename or unlink the commit depends on, and the
undo journal of ``replace`` durable before the rows change and its removal durable before
the call returns. (The Rust power-loss simulator, ``tests/powerloss.rs``, checks the same
orders by replaying every crash state; this test checks that the binary does what the
simulator saw.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STRACE = shutil.which("strace")

CHILD = textwrap.dedent(
    """
    import os, sys, numpy as np
    from numpack import NumPack

    def mark(name):
        os.write(2, ("MARK " + name + "\\n").encode())

    with NumPack(sys.argv[1]) as npk:
        npk.save({"a": np.arange(4000, dtype=np.float32).reshape(1000, 4)})
        mark("append")
        npk.append({"a": np.ones((10, 4), np.float32)})
        mark("replace")
        npk.replace({"a": np.zeros((1, 4), np.float32)}, [0, 5, -1])
        mark("save-new")
        npk.save({"b": np.arange(100)})
        mark("drop-rows")
        npk.drop("a", [1, 2])
        mark("clone")
        npk.clone("a", "c")
        mark("end")
    """
)

LINE = re.compile(r"^\d+\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")
FD = re.compile(r"^\d+<(?P<path>[^>]*)>")


def trace(tmp_path: Path, child: str = CHILD, env: dict[str, str] | None = None
          ) -> dict[str, list[tuple[str, str]]]:  # fmt: skip
    """Runs the child under strace; returns per marked step its (call, path-ish) events."""
    store = tmp_path / "s.npk"
    out = tmp_path / "trace.txt"
    calls = "openat,write,pwrite64,fsync,fdatasync,msync,rename,renameat,renameat2,unlink,unlinkat"
    subprocess.run(
        [STRACE, "-f", "-y", "-s", "200", "-e", f"trace={calls}", "-o", str(out),
         sys.executable, "-c", child, str(store)],
        check=True,
        env={"NUMPACK_DURABLE": "1", "PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    steps: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in out.read_text().splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        call, args = m["call"], m["args"]
        if call == "write" and "MARK " in args:
            current = args.split("MARK ", 1)[1].split("\\n", 1)[0]
            steps[current] = []
            continue
        # msync names a mapping, not a file: keep it as it is.
        if current is None or (str(store) not in args and call != "msync"):
            continue
        fd = FD.match(args)
        what = fd["path"] if fd else args
        steps[current].append((call, what))
    return steps


def first(events, pred, after=-1):
    for i, e in enumerate(events):
        if i > after and pred(e):
            return i
    raise AssertionError(f"no such call after #{after}: {events}")


def last(events, pred):
    found = [i for i, e in enumerate(events) if pred(e)]
    assert found, f"no such call: {events}"
    return found[-1]


def is_sync(e, name):
    return e[0] in ("fsync", "fdatasync") and e[1].endswith(name)


def is_dir_sync(e, store):
    return e[0] == "fsync" and e[1].rstrip("/") == str(store)


def renames_onto(e, name):
    return e[0].startswith("rename") and re.search(rf'"[^"]*/{re.escape(name)}"\s*$', e[1])


@pytest.mark.skipif(STRACE is None, reason="strace is installed by `make deps`")
@pytest.mark.timeout(180)
def test_durable_mutations_sync_before_they_commit(tmp_path):
    store = tmp_path / "s.npk"
    steps = trace(tmp_path)
    assert set(steps) >= {"append", "replace", "save-new", "drop-rows", "clone"}

    # append: rows written in place, fdatasync of the data file, then the metadata rename,
    # then the directory.
    ev = steps["append"]
    write = last(ev, lambda e: e[0] == "pwrite64" and e[1].endswith("data_a.npkd"))
    sync = first(ev, lambda e: is_sync(e, "data_a.npkd"), write)
    commit = first(ev, lambda e: renames_onto(e, "metadata.npkm"), sync)
    first(ev, lambda e: is_dir_sync(e, store), commit)

    # replace: undo journal synced, renamed into place and the directory synced before the
    # rows are written (msync of the data mapping); its removal synced before returning.
    ev = steps["replace"]
    jsync = first(ev, lambda e: is_sync(e, ".numpack.journal"))
    jren = first(ev, lambda e: renames_onto(e, ".numpack.journal"), jsync)
    dsync = first(ev, lambda e: is_dir_sync(e, store), jren)
    rows = first(ev, lambda e: e[0] == "msync", dsync)
    gone = first(ev, lambda e: e[0].startswith("unlink") and ".numpack.journal" in e[1], rows)
    first(ev, lambda e: is_dir_sync(e, store), gone)

    # a new array: its file synced, renamed onto its name, the directory synced, and only
    # then the metadata that names it renamed and the directory synced again.
    ev = steps["save-new"]
    dsync_file = first(ev, lambda e: is_sync(e, "data_b.npkd"))
    place = first(ev, lambda e: renames_onto(e, "data_b.npkd"), dsync_file)
    dir1 = first(ev, lambda e: is_dir_sync(e, store), place)
    meta = first(ev, lambda e: renames_onto(e, "metadata.npkm"), dir1)
    first(ev, lambda e: is_dir_sync(e, store), meta)

    # row drop: bitmap and metadata temporaries synced, the directory synced, the journal
    # (synced) renamed, the directory synced, the steps applied, synced, the journal removed.
    for name, array in (("drop-rows", "deleted_a.npkb"), ("clone", "data_c.npkd")):
        ev = steps[name]
        s1 = first(ev, lambda e, a=array: is_sync(e, a))
        s2 = first(ev, lambda e: is_sync(e, "metadata.npkm"))
        target = ".numpack.journal" if name == "drop-rows" else array
        commit_point = first(ev, lambda e, t=target: renames_onto(e, t), max(s1, s2))
        meta = first(ev, lambda e: renames_onto(e, "metadata.npkm"), commit_point)
        assert first(ev, lambda e: is_dir_sync(e, store), commit_point) < meta
        first(ev, lambda e: is_dir_sync(e, store), meta)


SEGMENTED_CHILD = textwrap.dedent(
    """
    import json, os, struct, sys, numpy as np
    from pathlib import Path
    from numpack import NumPack

    def mark(name):
        os.write(2, ("MARK " + name + "\\n").encode())

    # A store in the published 0.7 layout: 6 rows of 4 float32 in segments of 4 and 2 rows.
    p = Path(sys.argv[1])
    (p / "data_a_segments").mkdir(parents=True)
    arr = np.arange(24, dtype=np.float32).reshape(6, 4)
    segs = []
    for i, (lo, hi) in enumerate([(0, 4), (4, 6)]):
        f = f"data_a_segments/seg_{i:06d}.npkd"
        (p / f).write_bytes(arr[lo:hi].tobytes())
        segs.append({"file": f, "rows": hi - lo, "bytes": (hi - lo) * 16})
    (p / "data_a.npkseg").write_text(json.dumps({"version": 1, "segments": segs}))
    n, f = b"a", b"data_a.npkseg"
    meta = b"NPKB" + struct.pack("<IQI", 1, 96, 1) + struct.pack("<I", 1) + n
    meta += struct.pack("<I", 2) + struct.pack("<QQ", 6, 4) + struct.pack("<I", len(f)) + f
    meta += struct.pack("<QQ", 1, 96) + struct.pack("<BBIQQ", 10, 0, 0, 0, 0) + b"\\x00"
    (p / "metadata.npkm").write_bytes(meta)
    with NumPack(p) as npk:
        npk.load("a")
        mark("append")
        # 3 rows a segment: 1 row fills seg 1, 3 go to a new seg 2, 1 to seg 3.
        npk.append({"a": np.ones((5, 4), np.float32)})
        mark("end")
    """
)


@pytest.mark.skipif(STRACE is None, reason="strace is installed by `make deps`")
@pytest.mark.timeout(180)
def test_a_durable_segmented_append_syncs_segments_before_the_manifest(tmp_path):
    store = tmp_path / "s.npk"
    steps = trace(tmp_path, SEGMENTED_CHILD, {"NUMPACK_SEGMENT_TARGET_BYTES": "48"})
    ev = steps["append"]
    seg = "data_a_segments/seg_0000"
    # The last segment grows in place, the new ones are written; each is synced, and the
    # folder's entries too, before the journal that renames the new manifest commits.
    synced = []
    for n in ("01", "02", "03"):
        w = last(
            ev, lambda e, n=n: e[0] in ("pwrite64", "write") and e[1].endswith(f"{seg}{n}.npkd")
        )
        synced.append(first(ev, lambda e, n=n: is_sync(e, f"{seg}{n}.npkd"), w))
    folder = first(ev, lambda e: e[0] == "fsync" and e[1].rstrip("/").endswith("data_a_segments"))
    manifest_tmp = first(ev, lambda e: e[0] in ("fsync", "fdatasync") and "data_a.npkseg" in e[1])
    commit = first(
        ev, lambda e: renames_onto(e, ".numpack.journal"), max(*synced, folder, manifest_tmp)
    )
    onto = first(ev, lambda e: renames_onto(e, "data_a.npkseg"), commit)
    first(ev, lambda e: is_dir_sync(e, store), onto)
    with __import__("numpack").NumPack(store) as npk:
        np = __import__("numpy")
        want = np.concatenate(
            [np.arange(24, dtype=np.float32).reshape(6, 4), np.ones((5, 4), np.float32)]
        )
        np.testing.assert_array_equal(npk.load("a"), want)
