"""``.npkg`` benchmark: ``numpack.pack`` / ``unpack`` against ``tar`` + ``zstd -3`` on the same
store directory.

Run from the repository root (ideally after a release build, ``pip install .``)::

    python benchmarks/package_bench.py            # 2,000,000 x 32 float32 embeddings,
                                                  # 10,000,000 int64 ids, int32 labels (~360 MiB)
    python benchmarks/package_bench.py --quick    # a tenth of that (smoke run)

Every numpack operation runs in a fresh subprocess, so that its peak extra memory can be read:
the parent samples the child's ``RssAnon`` (heap and anonymous mappings, not page cache or
mapped files) from ``/proc/<pid>/status`` every 2 ms, from the moment the child reports that it
has imported numpack until it exits. The time is the operation alone, measured in the child.
The baseline is ``tar -I 'zstd -3 -T0' -cf`` / ``tar -I 'zstd -d -T0' -xf`` on the same
directory (wall time of the whole command). Both run on a warm page cache, interleaved, each
after an ``os.sync()``; numpack fsyncs the package it writes (tar does not), and, like tar,
does not fsync an unpack into a new directory (it does when it replaces an existing store).
Timings are the median of ``--repeats`` runs; memory is the largest peak seen. Results are
also written as JSON to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
MB = 1 << 20


# --------------------------------------------------------------------------------------------
# the child: one operation, timed
# --------------------------------------------------------------------------------------------
def child(argv: list[str]) -> None:
    """``--child pack SRC DST [shuffle]`` or ``--child unpack SRC DST``: prints ``ready`` once
    imports are done, then a JSON line with the operation's wall time."""
    import numpack

    op, src, dst = argv[:3]
    print("ready", flush=True)
    t0 = time.perf_counter()
    if op == "pack":
        numpack.pack(src, dst, shuffle=len(argv) > 3 and argv[3] == "shuffle")
    else:
        numpack.unpack(src, dst, verify=True)
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)


def rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(*args: str) -> tuple[float, float]:
    """Runs one operation in a subprocess: (seconds, peak extra RssAnon in MB)."""
    cmd = [sys.executable, str(HERE), "--child", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    base: int | None = None
    peak = 0
    while proc.poll() is None:
        kb = rss_anon_kb(proc.pid)
        if base is None and ready.is_set():
            base = kb
        if base is not None and kb:
            peak = max(peak, kb - base)
        time.sleep(0.002)
    reader.join(5)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}")
    seconds = json.loads(lines[-1])["seconds"]
    return seconds, peak / 1024


def run_timed(cmd: list[str], sync: bool = False) -> float:
    """Wall time of ``cmd`` (with ``sync``: until its output is on disk, as numpack's is)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    if sync:
        os.sync()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------
def make_store(path: Path, rows: int, ids: int) -> int:
    from numpack import NumPack

    rng = np.random.default_rng(0)
    arrays = {
        "embeddings": rng.standard_normal((rows, 32), dtype=np.float32),
        "ids": rng.permutation(ids).astype(np.int64),
        "labels": rng.integers(0, 100, ids, dtype=np.int32),
    }
    with NumPack(path, drop_if_exists=True) as npk:
        npk.save(arrays)
    return sum(a.nbytes for a in arrays.values())


def same_store(a: Path, b: Path) -> bool:
    names = sorted(n for n in os.listdir(a) if n.endswith((".npkm", ".npkd", ".npkb")))
    if names != sorted(n for n in os.listdir(b) if n.endswith((".npkm", ".npkd", ".npkb"))):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", help="working directory (default: a temporary one)")
    args = parser.parse_args()

    import numpack

    rows, ids = (200_000, 1_000_000) if args.quick else (2_000_000, 10_000_000)
    tar = shutil.which("tar")
    zstd = shutil.which("zstd")
    work = Path(tempfile.mkdtemp(prefix="npkg-bench-", dir=args.dir))
    try:
        store = work / "store.npk"
        raw = make_store(store, rows, ids)
        print(f"numpack {numpack.__version__} from {Path(numpack.__file__).parent}")
        print(f"store: {rows:,} x 32 float32 + {ids:,} int64 ids + {ids:,} int32 labels "
              f"= {raw / MB:.0f} MiB; median of {args.repeats}")  # fmt: skip

        # Interleaved: each repeat runs every case once, and dirty pages are written back
        # (os.sync, not timed) before each timed run, so all cases see the same conditions.
        have_tar = bool(tar and zstd)
        cases = ["default", "shuffle"]
        times: dict[str, list[float]] = {
            f"{c}_{op}": [] for c in cases for op in ("pack", "unpack")
        }
        peaks: dict[str, list[float]] = {k: [] for k in times}
        tarball, dest = work / "store.tar.zst", work / "tar-out"
        tar_times: dict[str, list[float]] = {k: [] for k in ("pack", "unpack", "pack+sync",
                                                              "unpack+sync")}  # fmt: skip
        for _ in range(args.repeats):
            for label in cases:
                pkg = work / f"{label}.npkg"
                pkg.unlink(missing_ok=True)
                os.sync()
                extra = ["shuffle"] if label == "shuffle" else []
                sec, peak = run_child("pack", str(store), str(pkg), *extra)
                times[f"{label}_pack"].append(sec)
                peaks[f"{label}_pack"].append(peak)
            if have_tar:
                tarball.unlink(missing_ok=True)
                os.sync()
                create = [tar, "-I", "zstd -3 -T0", "-cf", str(tarball), "-C", str(work),
                          "store.npk"]  # fmt: skip
                tar_times["pack"].append(run_timed(create))
                tarball.unlink()
                os.sync()
                tar_times["pack+sync"].append(run_timed(create, sync=True))
            for label in cases:
                out = work / f"{label}.out.npk"
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                sec, peak = run_child("unpack", str(work / f"{label}.npkg"), str(out))
                times[f"{label}_unpack"].append(sec)
                peaks[f"{label}_unpack"].append(peak)
                assert same_store(store, out), f"{label}: unpacked store differs"
            if have_tar:
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                os.sync()
                extract = [tar, "-I", "zstd -d -T0", "-xf", str(tarball), "-C", str(dest)]
                tar_times["unpack"].append(run_timed(extract))
                assert same_store(store, dest / "store.npk")
                shutil.rmtree(dest)
                dest.mkdir()
                os.sync()
                tar_times["unpack+sync"].append(run_timed(extract, sync=True))
        results: dict[str, Any] = {
            label: {
                "pack_s": statistics.median(times[f"{label}_pack"]),
                "pack_peak_mb": max(peaks[f"{label}_pack"]),
                "unpack_s": statistics.median(times[f"{label}_unpack"]),
                "unpack_peak_mb": max(peaks[f"{label}_unpack"]),
                "size": (work / f"{label}.npkg").stat().st_size,
            }
            for label in cases
        }
        base: dict[str, float] | None = None
        if have_tar:
            base = {"pack_s": statistics.median(tar_times["pack"]),
                    "unpack_s": statistics.median(tar_times["unpack"]),
                    "pack_sync_s": statistics.median(tar_times["pack+sync"]),
                    "unpack_sync_s": statistics.median(tar_times["unpack+sync"]),
                    "size": tarball.stat().st_size}  # fmt: skip
        runs = {"numpack": times, "tar_zstd": tar_times}
        report(results, base, raw, args, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    res: dict[str, Any], base: dict[str, float] | None, raw: int, args: Any, runs: Any
) -> None:
    d, s = res["default"], res["shuffle"]
    rows: list[tuple[str, str, str, str, str]] = []

    def add(what: str, ours: str, theirs: str, ratio: float | None, goal: float | None) -> None:
        status = "" if goal is None or ratio is None else ("PASS" if ratio <= goal else "FAIL")
        r = "" if ratio is None else f"{ratio:.3f}x"
        g = "" if goal is None else f"<= {goal:g}x"
        rows.append((what, ours, theirs, f"{r} {g}".strip(), status))

    def ratio(x: float, key: str) -> float | None:
        return None if base is None else x / base[key]

    tb = "n/a" if base is None else f"{base['pack_s']:.2f} s"
    add("pack (default)", f"{d['pack_s']:.2f} s", tb, ratio(d["pack_s"], "pack_s"), 0.8)
    add("pack (shuffle=True)", f"{s['pack_s']:.2f} s", tb, ratio(s["pack_s"], "pack_s"), None)
    if base is not None:
        add("pack (default) vs tar + sync", f"{d['pack_s']:.2f} s",
            f"{base['pack_sync_s']:.2f} s", ratio(d["pack_s"], "pack_sync_s"), None)  # fmt: skip
    tu = "n/a" if base is None else f"{base['unpack_s']:.2f} s"
    add("unpack, verify (default)", f"{d['unpack_s']:.2f} s", tu,
        ratio(d["unpack_s"], "unpack_s"), 0.8)  # fmt: skip
    add("unpack, verify (shuffle)", f"{s['unpack_s']:.2f} s", tu,
        ratio(s["unpack_s"], "unpack_s"), None)  # fmt: skip
    if base is not None:
        add("unpack (default) vs tar + sync", f"{d['unpack_s']:.2f} s",
            f"{base['unpack_sync_s']:.2f} s", ratio(d["unpack_s"], "unpack_sync_s"),
            None)  # fmt: skip
    ts = "n/a" if base is None else f"{base['size'] / MB:.1f} MiB"
    add("size (default)", f"{d['size'] / MB:.1f} MiB", ts, ratio(d["size"], "size"), 1.0)
    add("size (shuffle=True)", f"{s['size'] / MB:.1f} MiB", ts, ratio(s["size"], "size"), 0.9)
    for label, r in (("default", d), ("shuffle", s)):
        for op in ("pack", "unpack"):
            peak = r[f"{op}_peak_mb"]
            rows.append((f"peak extra memory, {op} ({label})", f"{peak:.1f} MiB", "",
                         "<= 64 MiB", "PASS" if peak <= 64 else "FAIL"))  # fmt: skip
    head = ("measure", "numpack", "tar + zstd -3", "ratio / goal", "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    print()
    for r in [head, None, *rows]:
        print(line if r is None else "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\nnumpack fsyncs the package it writes; tar does not (the '+ sync' rows"
          " time tar followed by sync, for reference)")  # fmt: skip
    if base is None:
        print("note: tar or zstd not found; the baseline was skipped")
    out = HERE.parent / "results" / f"package-{'quick' if args.quick else 'full'}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"raw_bytes": raw, "numpack": res, "tar_zstd": base, "runs": runs}, indent=2)
    )
    print(f"\nwritten: {out.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
