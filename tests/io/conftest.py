"""Shared fixtures of the ``numpack.io`` tests: sample data with NaN/inf/-0.0, exact
comparisons, snapshots of a store to check that a failed import left it unchanged, and the
progress bars a conversion draws."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import types

import numpy as np
import pytest

import numpack
from numpack._deps import optional
from numpack.io import _progress

#: The 14 dtypes a store holds.
ALL_DTYPES = [
    np.dtype(n)
    for n in (
        "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
        "float16", "float32", "float64", "complex64", "complex128",
    )
]  # fmt: skip

#: Shapes from 1-d to 4-d, with and without rows.
SHAPES = [(7,), (7, 3), (5, 2, 3), (4, 2, 3, 2), (0,), (0, 3), (0, 2, 2), (0, 1, 2, 2)]


def sample(shape, dtype, seed=0):
    """Varied values of ``dtype``; floats and complex include NaN, +-inf and -0.0."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        a = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    else:
        a = (rng.standard_normal(shape) * 100).astype(dtype)
        if dtype.kind == "c":
            a = a + 1j * (rng.standard_normal(shape) * 100).astype(dtype)
        flat = a.reshape(-1)
        for i, v in enumerate([np.nan, np.inf, -np.inf, -0.0][: flat.size]):
            flat[i] = v
    return np.ascontiguousarray(np.asarray(a, dtype=dtype).reshape(shape))


def same(a, b):
    """Whether ``a`` and ``b`` hold the same values of the same dtype and shape (NaN equal to
    NaN, -0.0 distinct from 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        if not np.array_equal(a, b, equal_nan=True):
            return False
        parts = (a.real, b.real, a.imag, b.imag) if a.dtype.kind == "c" else (a, b)
        return all(
            np.array_equal(np.signbit(x), np.signbit(y)) for x, y in zip(parts[::2], parts[1::2])
        )
    return np.array_equal(a, b)


def assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert same(a, b), f"differ: {a.dtype}{a.shape} vs {b.dtype}{b.shape}\n{a!r}\n{b!r}"


def store_state(path):
    """Everything visible in the store at ``path``: arrays (dtype, shape, bytes) and the
    directory listing (so no temporary file may be left behind)."""
    with numpack.NumPack(path) as npk:
        arrays = {}
        for n in npk.get_member_list():
            a = npk.load(n)
            arrays[n] = (a.dtype.str, a.shape, a.tobytes())
    return arrays, sorted(os.listdir(path))


def phase_peaks(script):
    """Run ``script`` in a fresh interpreter, sampling its RssAnon from outside every 2 ms.
    The script prints ``phase <name>`` before each step; returns ``{name: peak MB above the
    RssAnon seen when the phase began}``."""
    code = textwrap.dedent(script)
    lock = threading.Lock()
    current: list[str | None] = [None]
    peaks: dict[str, float] = {}
    bases: dict[str, int] = {}
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as p:
        status = f"/proc/{p.pid}/status"

        def rss():
            try:
                with open(status) as f:
                    return next((int(x.split()[1]) for x in f if x.startswith("RssAnon:")), 0)
            except OSError:
                return 0

        def pump():
            for line in p.stdout:
                if line.startswith("phase "):
                    name = line.split(None, 1)[1].strip()
                    with lock:
                        bases[name] = rss()
                        peaks[name] = 0
                        current[0] = name
                elif line.startswith("done"):
                    with lock:
                        current[0] = None

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while p.poll() is None:
            kb = rss()
            with lock:
                name = current[0]
                if name is not None:
                    peaks[name] = max(peaks[name], kb - bases[name])
            time.sleep(0.002)
        reader.join()
    assert p.returncode == 0, f"memory script failed ({p.returncode})"
    return {k: v / 1024 for k, v in peaks.items()}


def cases():
    """Named sample arrays: every dtype at one 3-d shape, every shape (0-d, 0 rows, 1-d to
    4-d) at a float, an integer and the bool dtype."""
    out = {f"{dt.name}_5x2x3": sample((5, 2, 3), dt, i) for i, dt in enumerate(ALL_DTYPES)}
    for dt in (np.dtype("float32"), np.dtype("int16"), np.dtype("bool")):
        for i, shape in enumerate([*SHAPES, ()]):
            out[f"{dt.name}_{'x'.join(map(str, shape)) or 'scalar'}"] = sample(shape, dt, i)
    return out


@pytest.fixture
def h():
    """The helpers above as one namespace: ``h.sample``, ``h.cases``, ``h.same``,
    ``h.assert_same``, ``h.store_state``, ``h.phase_peaks``, ``h.SHAPES``, ``h.ALL_DTYPES``."""
    return types.SimpleNamespace(
        sample=sample,
        cases=cases,
        same=same,
        assert_same=assert_same,
        store_state=store_state,
        phase_peaks=phase_peaks,
        SHAPES=SHAPES,
        ALL_DTYPES=ALL_DTYPES,
    )


@pytest.fixture
def store(tmp_path):
    """A store holding one array 'keep', to check that imports leave others untouched."""
    path = tmp_path / "store.npk"
    with numpack.NumPack(path) as npk:
        npk.save({"keep": np.arange(10, dtype=np.int32)})
    return path


def load_all(path):
    with numpack.NumPack(path) as npk:
        return {n: npk.load(n) for n in npk.get_member_list()}


@pytest.fixture
def load():
    """``load(store_path)`` → ``{name: ndarray}``."""
    return load_all


class BarLog(list):
    """The tqdm bars made by ``numpack.io`` during a test, in order. Each bar has ``seen``
    (``(n, total)`` after each update, ``None`` where it was reset) and ``final`` (``(n,
    total)`` when it was closed)."""

    def check(self, several: bool = True, resets: bool = False) -> None:
        """Every bar closed at exactly its total, never beyond it, never going back (but at
        a reset when ``resets``), left on screen; ``several``: each also stood at two or
        more values strictly between 0 and its total and its last step was no larger than
        an earlier one (it moved slice by slice, not by a jump at the end)."""
        assert self, "no progress bar was made"
        for bar in self:
            assert bar.final is not None, f"{bar.desc}: bar not closed"
            n, total = bar.final
            assert total is not None and n == total, f"{bar.desc}: ended at {n} of {total}"
            assert bar.leave, f"{bar.desc}: a finished bar must stay on screen"
            last = 0
            for step in bar.seen:
                if step is None:
                    assert resets, f"{bar.desc}: reset"
                    last = 0
                    continue
                assert step[1] is None or step[0] <= step[1], f"{bar.desc}: {step} past the total"
                assert step[0] >= last, f"{bar.desc}: went back {last} -> {step[0]}"
                last = step[0]
            if several:
                inner = {s[0] for s in bar.seen if s is not None and 0 < s[0] < total}
                assert len(inner) >= 2, f"{bar.desc}: moved only through {sorted(inner)}"
                ns = [s[0] for s in bar.seen if s is not None]
                steps = [b - a for a, b in zip(ns, ns[1:])]
                assert steps[-1] <= max(steps[:-1]), f"{bar.desc}: a jump to the end {steps}"


@pytest.fixture
def bars(monkeypatch):
    """A :class:`BarLog` of the bars ``progress=True`` makes, with real tqdm bars writing to
    a StringIO; copies are cut into slices of 4 KiB (``_progress.SLICE_BYTES``), so a few
    tens of KiB make several slices."""
    tqdm = pytest.importorskip("tqdm")
    log = BarLog()

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), **kwargs)
            self.seen = [(self.n, self.total)]
            self.final = None
            log.append(self)

        def update(self, n=1):
            out = super().update(n)
            self.seen.append((self.n, self.total))
            return out

        def reset(self, total=None):
            super().reset(total)
            self.seen.append(None)

        def close(self):
            if self.final is None and hasattr(self, "seen"):
                self.final = (self.n, self.total)
            super().close()

    def fake(name):
        return types.SimpleNamespace(tqdm=Bar) if name == "tqdm" else optional(name)

    monkeypatch.setattr(_progress, "optional", fake)
    monkeypatch.setattr(_progress, "SLICE_BYTES", 4096)
    return log
