"""numpack.io progress bars (``_progress.py``): every converter with ``progress=True``, import
and export, moves its bar slice by slice (kernel copies included), never past its total, and
ends at exactly its total with the bar left on screen; a failed conversion stops where it is.
The bars are real tqdm bars recorded by the ``bars`` fixture (conftest.py), with copies cut
into 4 KiB slices so that small files make several slices."""

from __future__ import annotations

import inspect
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpack
import numpack.io as nio
from numpack.io import _progress
from numpack.io._progress import Progress, slices

#: 512 x 8 float64: 32 KiB, eight slices of 4 KiB.
A = np.arange(512 * 8, dtype=np.float64).reshape(512, 8) / 7


def _store(path, a=A, dropped=None):
    with numpack.NumPack(path) as npk:
        npk.save({"a": a})
        if dropped is not None:
            npk.drop("a", dropped)
    return path


def _h5(path, **kw):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=A, **kw)


def _pt(path):
    torch = pytest.importorskip("torch")
    torch.save({"a": torch.from_numpy(A)}, path)


# Each case: (the converter, a function of tmp_path that makes the input without a bar and
# runs the conversion with one). Inputs come from NumPy, the format's library or numpack's
# own exporters run without progress.
IMPORTS = {
    "npy": (nio.from_npy, lambda t: (np.save(t / "a.npy", A), nio.from_npy(
        t / "a.npy", t / "o.npk", chunk_size=4096, progress=True))),
    "npy_big_endian": (nio.from_npy, lambda t: (np.save(t / "a.npy", A.astype(">f8")),
        nio.from_npy(t / "a.npy", t / "o.npk", chunk_size=4096, progress=True))),
    "npz": (nio.from_npy, lambda t: (np.savez_compressed(t / "a.npz", a=A, b=A[:100]),
        nio.from_npy(t / "a.npz", t / "o.npk", chunk_size=4096, progress=True))),
    "csv": (nio.from_csv, lambda t: (np.savetxt(t / "a.csv", A, delimiter=","),
        nio.from_csv(t / "a.csv", t / "o.npk", chunk_size=4096, progress=True))),
    "csv_pandas": (nio.from_csv, lambda t: (np.savetxt(t / "a.csv", np.tile(A, (12, 1)),
        delimiter=","), nio.from_csv(t / "a.csv", t / "o.npk", chunk_size=4096,
        progress=True, na_filter=False))),
    "txt": (nio.from_txt, lambda t: (np.savetxt(t / "a.txt", A),
        nio.from_txt(t / "a.txt", t / "o.npk", chunk_size=4096, progress=True))),
    "hdf5_contiguous": (nio.from_hdf5, lambda t: (_h5(t / "a.h5"),
        nio.from_hdf5(t / "a.h5", t / "o.npk", chunk_size=4096, progress=True))),
    "hdf5_gzip": (nio.from_hdf5, lambda t: (_h5(t / "a.h5", chunks=(32, 8), compression="gzip"),
        nio.from_hdf5(t / "a.h5", t / "o.npk", chunk_size=4096, progress=True))),
    "zarr": (nio.from_zarr, lambda t: (nio.to_zarr(_store(t / "s.npk"), t / "a.zarr"),
        nio.from_zarr(t / "a.zarr", t / "o.npk", chunk_size=4096, progress=True))),
    "parquet": (nio.from_parquet, lambda t: (nio.to_parquet(_store(t / "s.npk"), t / "a.pq"),
        nio.from_parquet(t / "a.pq", t / "o.npk", chunk_size=4096, progress=True))),
    "feather": (nio.from_feather, lambda t: (nio.to_feather(_store(t / "s.npk"), t / "a.f"),
        nio.from_feather(t / "a.f", t / "o.npk", chunk_size=4096, progress=True))),
    "pt": (nio.from_pt, lambda t: (_pt(t / "a.pt"),
        nio.from_pt(t / "a.pt", t / "o.npk", chunk_size=4096, progress=True))),
    "safetensors": (nio.from_safetensors_file, lambda t: (
        nio.to_safetensors_file(_store(t / "s.npk"), t / "a.st"),
        nio.from_safetensors_file(t / "a.st", t / "o.npk", chunk_size=4096, progress=True))),
}  # fmt: skip

EXPORTS = {
    "npy": (nio.to_npy, lambda s, t: nio.to_npy(s, t / "a.npy", progress=True)),
    "npy_deleted_rows": (nio.to_npy, lambda s, t: nio.to_npy(
        _store(t / "d.npk", dropped=[0, 9]), t / "a.npy", chunk_size=4096, progress=True)),
    "npz": (nio.to_npy, lambda s, t: nio.to_npy(s, t / "a.npz", chunk_size=4096, progress=True)),
    "csv": (nio.to_csv, lambda s, t: nio.to_csv(s, t / "a.csv", chunk_size=4096, progress=True)),
    "txt": (nio.to_txt, lambda s, t: nio.to_txt(s, t / "a.txt", chunk_size=4096, progress=True)),
    "hdf5_gzip": (nio.to_hdf5, lambda s, t: nio.to_hdf5(
        s, t / "a.h5", chunk_size=4096, progress=True)),
    "hdf5_raw": (nio.to_hdf5, lambda s, t: nio.to_hdf5(
        s, t / "a.h5", compression=None, progress=True)),
    "zarr": (nio.to_zarr, lambda s, t: nio.to_zarr(
        s, t / "a.zarr", chunk_size=4096, progress=True)),
    "parquet": (nio.to_parquet, lambda s, t: nio.to_parquet(
        s, t / "a.pq", chunk_size=4096, progress=True)),
    "feather": (nio.to_feather, lambda s, t: nio.to_feather(
        s, t / "a.f", chunk_size=4096, progress=True)),
    "pt": (nio.to_pt, lambda s, t: nio.to_pt(s, t / "a.pt", progress=True)),
    "pt_deleted_rows": (nio.to_pt, lambda s, t: nio.to_pt(
        _store(t / "d.npk", dropped=[3]), t / "a.pt", chunk_size=4096, progress=True)),
    "safetensors": (nio.to_safetensors_file, lambda s, t: nio.to_safetensors_file(
        s, t / "a.st", progress=True)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(IMPORTS))
def test_import_bar_moves_and_ends_at_its_total(tmp_path, bars, load, case):
    IMPORTS[case][1](tmp_path)
    assert len(bars) == 1
    bars.check()
    assert load(tmp_path / "o.npk")  # the import happened


@pytest.mark.parametrize("case", sorted(EXPORTS))
def test_export_bar_moves_and_ends_at_its_total(tmp_path, bars, case):
    src = _store(tmp_path / "s.npk")
    EXPORTS[case][1](src, tmp_path)
    assert len(bars) == 1
    bars.check()


def test_every_converter_with_progress_is_covered():
    """Every function of numpack.io taking ``progress`` (aliases unwrapped) is in the
    tables above or, for S3, in test_s3.py."""
    tested = {inspect.unwrap(fn) for fn, _run in [*IMPORTS.values(), *EXPORTS.values()]}
    tested |= {inspect.unwrap(nio.from_s3), inspect.unwrap(nio.to_s3)}
    wanted = set()
    for name in nio.__all__:
        fn = getattr(nio, name)
        if callable(fn) and fn.__module__.startswith("numpack.io"):
            if "progress" in inspect.signature(fn).parameters:
                wanted.add(inspect.unwrap(fn))
    missing = sorted(f.__name__ for f in wanted - tested)
    assert not missing, missing


def test_kernel_copy_is_sliced_whatever_the_chunk_size(tmp_path, bars):
    """The reported bug: one kernel copy for the whole payload left the bar at 0% and the
    header kept it short of 100%. Copies are cut at ``SLICE_BYTES`` even when
    ``chunk_size`` asks for more."""
    np.save(tmp_path / "z.npy", A)
    nio.from_npy(tmp_path / "z.npy", tmp_path / "o.npk", chunk_size=1 << 40, progress=True)
    bars.check()
    (bar,) = bars
    assert bar.total == (tmp_path / "z.npy").stat().st_size
    assert len(bar.seen) == 1 + 1 + A.nbytes // 4096  # start, header, eight slices


def test_csv_re_read_as_float64_restarts_the_bar(tmp_path, bars, load):
    """An int64 guess contradicted after the first 64 KiB: the bar is reset, then ends at
    the file size once."""
    lines = ["1,2"] * 40_000 + ["1.5,2"]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    nio.from_csv(tmp_path / "r.csv", tmp_path / "o.npk", chunk_size=4096, progress=True)
    assert load(tmp_path / "o.npk")["r"].dtype == np.float64
    bars.check(resets=True)
    assert None in bars[0].seen


def test_failed_import_stops_where_it_is(tmp_path, bars, store, h):
    big = np.arange(20_000, dtype=np.float64)
    np.savez(tmp_path / "c.npz", a=big, b=big * 2)
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        info = zf.getinfo("b.npy")
    start = info.header_offset + 30 + len("b.npy") + 200
    raw[start : start + 64] = bytes(64)
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    before = h.store_state(store)
    with pytest.raises(Exception, match=r"c\.npz \[b\]"):
        nio.from_npy(tmp_path / "c.npz", store, chunk_size=4096, progress=True)
    assert h.store_state(store) == before
    (bar,) = bars
    n, total = bar.final
    assert 0 < n < total


def _rows_case(fmt, rows, width, tmp):
    """Round trip of a ``(rows, width)`` float64 array through ``fmt`` with bars."""
    a = np.arange(rows * width, dtype=np.float64).reshape(rows, width)
    src = _store(tmp / "s.npk", a)
    if fmt == "npy":
        nio.to_npy(src, tmp / "a.npy", progress=True)
        nio.from_npy(tmp / "a.npy", tmp / "o.npk", progress=True)
    elif fmt == "safetensors":
        nio.to_safetensors_file(src, tmp / "a.st", progress=True)
        nio.from_safetensors_file(tmp / "a.st", tmp / "o.npk", progress=True)
    else:
        nio.to_csv(src, tmp / "a.csv", chunk_size=4096, progress=True)
        nio.from_csv(tmp / "a.csv", tmp / "o.npk", chunk_size=4096, progress=True)
    return a.nbytes


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(["npy", "safetensors", "csv"]),
    rows=st.one_of(st.just(0), st.integers(0, 2000)),
    width=st.integers(1, 4),
)
def test_bars_end_at_their_totals_for_any_size(bars, fmt, rows, width):
    """For any number of rows (0 included) both bars stay within and end at their totals;
    payloads of more than three slices move them through several values."""
    bars.clear()
    with tempfile.TemporaryDirectory() as tmp:
        nbytes = _rows_case(fmt, rows, width, Path(tmp))
    assert len(bars) == 2
    several = fmt != "csv" and nbytes > 3 * 4096
    bars.check(several=several)


@settings(deadline=None)
@given(
    length=st.integers(0, 1 << 20),
    unit=st.integers(1, 5000),
    limit=st.one_of(st.none(), st.integers(64, 1 << 16)),
)
def test_slices_cover_the_length_in_whole_units(length, unit, limit):
    length -= length % unit
    got = list(slices(length, unit, limit))
    assert sum(n for _s, n in got) == length
    assert [s for s, _n in got] == list(np.cumsum([0] + [n for _s, n in got])[:-1])
    cap = _progress.SLICE_BYTES if limit is None else min(limit, _progress.SLICE_BYTES)
    for _s, n in got:
        assert n % unit == 0 and 0 < n <= max(unit, cap)


def test_progress_counts_clamps_and_finishes_without_a_bar():
    p = Progress(False, 10, "x")
    p.update(4)
    p.update(100)
    assert p.n == 10
    p.set_total(6)
    assert (p.n, p.total) == (6, 6)
    p.reset()
    assert p.n == 0
    p.finish()
    assert (p.n, p.total) == (6, 6)


def test_finish_with_an_unknown_total_and_an_exception(bars):
    with Progress(True, None, "unknown") as p:
        p.update(5)
    with pytest.raises(RuntimeError), Progress(True, 100, "failed") as p:
        p.update(30)
        raise RuntimeError
    known, failed = bars
    assert known.final == (5, 5)
    assert failed.final == (30, 100)
    assert failed.leave


def test_bar_text_shows_100_percent(tmp_path, monkeypatch):
    """Through tqdm's own output: the finished bar of from_npy reads 100% and stays."""
    tqdm = pytest.importorskip("tqdm")
    out = []

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            self.buf = io.StringIO()
            out.append(self.buf)
            super().__init__(*args, file=self.buf, **kwargs)

    monkeypatch.setattr(_progress, "optional", lambda name: type("M", (), {"tqdm": Bar}))
    np.save(tmp_path / "p.npy", A)
    nio.from_npy(tmp_path / "p.npy", tmp_path / "s.npk", progress=True)
    last = out[0].getvalue().rstrip("\n").split("\r")[-1]
    assert "p.npy: 100%" in last, last
    assert os.path.getsize(tmp_path / "p.npy") > 0
