"""Vector indexes: ``create_index`` / ``search`` / ``index_info`` / ``reindex`` /
``drop_index``, kept up by every commit of the array, and checked against the exact engine.

The state machine interleaves appends, replaces, drops, compactions and reindexes with
searches; after every step an exhaustive index search (every list, one candidate per result)
must find exactly the exact engine's scores, and a default search must return unique live
rows whose scores are the exact scores of what the array holds now."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from numpack import NumPack
from numpack.exceptions import CorruptStoreError
from numpack.vector_engine import StreamingVectorEngine

DIM = 6


def exact_scores(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """float64 scores of every row of ``x`` for each query (the engine's definitions)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "dot":
        return q64 @ x64.T
    if metric == "cosine":
        nx = np.linalg.norm(x64, axis=1)
        nq = np.linalg.norm(q64, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (q64 @ x64.T) / np.outer(nq, nx)
    d = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    return d if metric == "l2sq" else np.sqrt(d)


def clustered(seed: int, centres: int, rows: int, dim: int, spread: float) -> np.ndarray:
    """``rows`` float32 vectors around ``centres`` Gaussian centres (seeded)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32) * spread
    return (c[rng.integers(0, centres, rows)] + rng.standard_normal((rows, dim))).astype(np.float32)


def test_create_search_info_drop(tmp_path: Path) -> None:
    x = clustered(1, 20, 5000, 16, 4.0)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"emb": x})
        assert npk.index_info("emb") is None
        npk.create_index("emb", metric="cosine", nlist=32)
        info = npk.index_info("emb")
        assert info is not None
        assert (info["kind"], info["metric"], info["nlist"], info["dim"]) == (
            "ivf_flat", "cosine", 32, 16,
        )  # fmt: skip
        assert info["listed"] == 5000 and info["current"]
        q = x[:40] + 0.05
        idx, sc = npk.search("emb", q, k=10)
        ex_i, _ex_s = npk.search("emb", q, k=10, exact=True)
        assert idx.shape == sc.shape == (40, 10) and idx.dtype == np.uint64
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, ex_i, strict=True)])
        assert recall >= 0.9
        # Scores are exact: those of the rows returned.
        want = exact_scores(x, q, "cosine")
        np.testing.assert_allclose(sc, np.take_along_axis(want, idx.astype(np.int64), 1))
        # A 1-d query, and k past the rows.
        i1, _s1 = npk.search("emb", q[0], k=3)
        assert i1.shape == (1, 3)
        assert npk.search("emb", q[:2], k=10**9)[0].shape == (2, 5000)
        # Another metric than the index's is searched exactly.
        _li, ls = npk.search("emb", q[:3], k=5, metric="l2")
        np.testing.assert_allclose(ls, np.sort(exact_scores(x, q[:3], "l2"), axis=1)[:, :5])
        assert npk.drop_index("emb") and not npk.drop_index("emb")
        assert npk.index_info("emb") is None
        assert not any(n.startswith("index_") for n in os.listdir(tmp_path / "s.npk"))


def test_ivf_pq(tmp_path: Path) -> None:
    x = clustered(4, 30, 8000, 32, 3.0)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"emb": x})
        npk.create_index("emb", metric="cosine", kind="ivf_pq", nlist=16, m=8)
        info = npk.index_info("emb")
        assert info is not None and info["kind"] == "ivf_pq" and info["m"] == 8
        # 8 bytes of row number and 8 of code per row, against 8 + 128 for ivf_flat.
        assert info["base_bytes"] < 8000 * 17 + 16 * 32 * 4 + 256 * 32 * 4 + 1000
        q = x[:50] + 0.1
        ex_i, _ = npk.search("emb", q, k=10, exact=True)
        idx, sc = npk.search("emb", q, k=10, nprobe=8, refine=20)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, ex_i, strict=True)])
        assert recall >= 0.9, recall
        np.testing.assert_allclose(
            sc, np.take_along_axis(exact_scores(x, q, "cosine"), idx.astype(np.int64), 1)
        )
        # Kept up like ivf_flat, and kept as ivf_pq by reindex and compaction.
        npk.append({"emb": q})
        npk.replace({"emb": -x[:5]}, [10, 11, 12, 13, 14])
        npk.drop("emb", [0, 1])
        got, _ = npk.search("emb", q, k=1, nprobe=16, refine=100)
        assert [int(r[0]) for r in got] == list(range(7998, 8048))
        npk.update("emb")
        npk.reindex("emb")
        assert npk.index_info("emb")["kind"] == "ivf_pq"  # type: ignore[index]
        with pytest.raises(ValueError, match="cosine or dot"):
            npk.create_index("emb", metric="l2", kind="ivf_pq")
        with pytest.raises(ValueError, match="divide"):
            npk.create_index("emb", kind="ivf_pq", m=5)
        with pytest.raises(ValueError, match="ivf_pq"):
            npk.create_index("emb", m=4)


def test_what_cannot_be_indexed(tmp_path: Path) -> None:
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"i": np.zeros((10, 4), np.int64), "one": np.zeros(10, np.float32)})
        npk.save({"f": np.ones((10, 4), np.float32)})
        with pytest.raises(TypeError, match="float32"):
            npk.create_index("i")
        with pytest.raises(ValueError, match="2-d"):
            npk.create_index("one")
        with pytest.raises(ValueError, match="kind"):
            npk.create_index("f", kind="hnsw")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="metric"):
            npk.create_index("f", metric="hamming")
        with pytest.raises(ValueError, match="nlist"):
            npk.create_index("f", nlist=0)
        with pytest.raises(KeyError):
            npk.create_index("nope")
        with pytest.raises(ValueError, match="no index"):
            npk.reindex("f")
        npk.create_index("f", metric="l2", nlist=4)
        with pytest.raises(ValueError, match=r"[Dd]imension"):
            npk.search("f", np.ones((1, 3), np.float32))


def test_saving_anew_or_dropping_the_array_drops_its_index(tmp_path: Path) -> None:
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    with NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": x})
        npk.create_index("a", metric="l2", nlist=4)
        npk.save({"a": x[:50]})
        assert npk.index_info("a") is None
        npk.create_index("a", metric="l2", nlist=4)
        npk.drop("a")
        assert not any(n.startswith("index_") for n in os.listdir(tmp_path / "s.npk"))


def test_streaming_engine_and_other_handles_use_the_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 8)).astype(np.float32)
    path = tmp_path / "s.npk"
    with NumPack(path) as npk:
        npk.save({"v": x})
        npk.create_index("v", metric="dot", nlist=16)
        q = rng.standard_normal((5, 8)).astype(np.float32)
        want = npk.search("v", q, k=4)
    eng = StreamingVectorEngine()
    idx, _sc = eng.streaming_multi_query_top_k(q, path, "v", "dot", 4)
    np.testing.assert_array_equal(idx.reshape(5, 4), want[0])
    i1, _ = eng.streaming_top_k_from_file(q[0], path, "v", "dot", 4)
    np.testing.assert_array_equal(i1, want[0][0])
    # exact=True, or another metric, is the exact engine.
    ex, _ = eng.streaming_multi_query_top_k(q, path, "v", "dot", 4, exact=True)
    assert ex.shape == (20,)
    # A second handle appends: the first sees the rows through the index at once.
    with NumPack(path) as a, NumPack(path) as b:
        b.append({"v": q * 100})
        got, _ = a.search("v", q, k=1)
        want_i, _ = a.search("v", q, k=1, exact=True)
        np.testing.assert_array_equal(got, want_i)
        assert all(int(r[0]) >= 3000 for r in got)


def test_a_snapshot_searches_its_own_version(tmp_path: Path) -> None:
    x = np.arange(200, dtype=np.float32).reshape(50, 4)
    path = tmp_path / "s.npk"
    with NumPack(path) as npk:
        npk.set_history(10)
        npk.save({"v": x})
        npk.create_index("v", metric="l2", nlist=4)
        v0 = npk.version
        npk.replace({"v": x[:1] + 1000}, [10])
        q = x[10:11]
        assert int(npk.search("v", q, k=1)[0][0, 0]) != 10
    with NumPack(path, version=v0) as old:
        idx, sc = old.search("v", q, k=1, metric="l2")
        assert int(idx[0, 0]) == 10 and sc[0, 0] == 0.0


def test_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    with NumPack(path) as npk:
        npk.save({"v": np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "numpack", *args], capture_output=True, text=True
        )

    assert cli("index", "create", str(path), "v", "--metric", "l2", "--nlist", "8").returncode == 0
    out = cli("index", "info", str(path), "v")
    assert out.returncode == 0 and "l2, 8 lists, 500 rows of 4" in out.stdout
    assert '"current": true' in cli("index", "info", str(path), "v", "--json").stdout
    assert cli("index", "reindex", str(path), "v", "--nlist", "5").returncode == 0
    assert '"nlist": 5' in cli("index", "info", str(path), "v", "--json").stdout
    assert cli("index", "drop", str(path), "v").returncode == 0
    bad = cli("index", "info", str(path), "v")
    assert bad.returncode == 1 and "no index" in bad.stderr
    assert "no array" in cli("index", "create", str(path), "w").stderr


def test_damaged_index_files_are_corrupt_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    with NumPack(path) as npk:
        npk.save({"v": x})
        npk.create_index("v", metric="l2", nlist=4)
    base = path / "index_v.npki"
    good = base.read_bytes()
    for bad in (good[:-7], good[:40], b"\0" * len(good), good[:-1] + bytes([good[-1] ^ 1])):
        base.write_bytes(bad)
        with NumPack(path) as npk:
            with pytest.raises(CorruptStoreError):
                npk.search("v", x[:1])
            with pytest.raises(CorruptStoreError):
                npk.append({"v": x[:1]})
            # Dropping the index (and creating it again) is the way out.
            assert npk.drop_index("v")
            npk.create_index("v", metric="l2", nlist=4)
            good = base.read_bytes()
    # Not a regular file: refused, never followed or waited on.
    base.unlink()
    os.mkfifo(base)
    with NumPack(path) as npk, pytest.raises(CorruptStoreError):
        npk.search("v", x[:1])
    base.unlink()
    os.symlink(tmp_path / "elsewhere", base)
    with NumPack(path) as npk, pytest.raises(CorruptStoreError):
        npk.index_info("v")
    base.unlink()
    base.write_bytes(good)
    # A hard-linked log is never written through.
    log = path / "index_v.npkx"
    os.link(log, tmp_path / "outside")
    with NumPack(path) as npk:
        with pytest.raises(CorruptStoreError, match="hard links"):
            npk.append({"v": x[:1]})
        assert npk.load("v").shape == (100, 4)
    assert (tmp_path / "outside").stat().st_size == 16


def test_a_writer_that_ignores_indexes_leaves_it_stale_and_searches_go_exact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.npk"
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    with NumPack(path) as npk:
        npk.save({"v": x})
        npk.create_index("v", metric="l2", nlist=4)
    # As the published package would: the array rewritten, the index files left alone.
    saved = {n: (path / n).read_bytes() for n in ("index_v.npki", "index_v.npkx")}
    with NumPack(path) as npk:
        npk.save({"v": -x})
    for n, b in saved.items():
        (path / n).write_bytes(b)
    with NumPack(path) as npk:
        info = npk.index_info("v")
        assert info is not None and not info["current"]
        idx, sc = npk.search("v", -x[5:6], k=1)
        assert int(idx[0, 0]) == 5 and sc[0, 0] == 0.0
        npk.reindex("v")
        assert npk.index_info("v")["current"]  # type: ignore[index]


class IndexMachine(RuleBasedStateMachine):
    """An indexed array and its model (the logical rows), through every kind of commit."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.npk = NumPack(Path(self.tmp.name) / "s.npk")
        self.npk.open()
        self.next = 0

    def fresh(self, n: int) -> np.ndarray:
        """``n`` new distinct rows of small integers (float32 scores exact)."""
        i = np.arange(self.next, self.next + n, dtype=np.float32)[:, None]
        self.next += n
        k = np.arange(DIM, dtype=np.float32)[None, :]
        return ((i * (k + 3)) % 23 - 11 + k).astype(np.float32)

    @initialize(
        metric=st.sampled_from(["l2", "dot", "cosine", "l2sq"]),
        pq=st.sampled_from([None, 1, 2, 3, 6]),
        n=st.integers(1, 60),
    )
    def start(self, metric: str, pq: int | None, n: int) -> None:
        self.metric = metric
        self.pq = pq if metric in ("dot", "cosine") else None
        self.model = self.fresh(n)
        self.npk.save({"v": self.model})
        kind = "ivf_flat" if self.pq is None else "ivf_pq"
        self.npk.create_index("v", metric=metric, kind=kind, nlist=min(5, n), m=self.pq)

    @rule(n=st.integers(1, 30))
    def append(self, n: int) -> None:
        rows = self.fresh(n)
        self.npk.append({"v": rows})
        self.model = np.concatenate([self.model, rows])

    @rule(data=st.data())
    def replace(self, data: Any) -> None:
        idx = data.draw(st.lists(st.integers(0, len(self.model) - 1), min_size=1, max_size=8))
        rows = self.fresh(len(idx))
        self.npk.replace({"v": rows}, idx)
        for i, r in zip(idx, rows, strict=True):
            self.model[i] = r

    @rule(data=st.data())
    def drop(self, data: Any) -> None:
        if len(self.model) < 2:
            return
        idx = data.draw(
            st.lists(st.integers(0, len(self.model) - 1), min_size=1, max_size=5, unique=True)
        )
        if len(idx) >= len(self.model):
            return
        self.npk.drop("v", idx)
        self.model = np.delete(self.model, idx, axis=0)

    @rule()
    def compact(self) -> None:
        self.npk.update("v")

    @rule(nlist=st.integers(1, 7))
    def reindex(self, nlist: int) -> None:
        self.npk.reindex("v", nlist=min(nlist, len(self.model)))

    @invariant()
    def searches_match_the_exact_engine(self) -> None:
        if not hasattr(self, "model"):
            return
        info = self.npk.index_info("v")
        assert info is not None and info["current"]
        assert len(self.model) <= info["listed"]
        q = np.concatenate([self.model[:2], self.model[-2:]]) + np.float32(0.5)
        k = 4
        want = exact_scores(self.model, q, self.metric)
        similarity = self.metric in ("dot", "cosine")
        # Exhaustive: the exact engine's scores (PQ codes approximate: every row rescored).
        refine = 1 if self.pq is None else 10**6
        idx, sc = self.npk.search("v", q, k=k, nprobe=info["nlist"], refine=refine)
        _ex_i, ex_s = self.npk.search("v", q, k=k, exact=True)
        np.testing.assert_allclose(sc, ex_s, rtol=1e-9, atol=1e-9)
        ordered = np.sort(want, axis=1)
        best = ordered[:, ::-1] if similarity else ordered
        np.testing.assert_allclose(ex_s, best[:, : ex_s.shape[1]], rtol=1e-6, atol=1e-6)
        # Default probing: unique live rows, scored as the array holds them now.
        idx, sc = self.npk.search("v", q, k=k, nprobe=1)
        for row_i, row_s, w in zip(idx, sc, want, strict=True):
            assert len(set(row_i.tolist())) == len(row_i) == min(k, len(self.model))
            assert all(int(r) < len(self.model) for r in row_i)
            np.testing.assert_allclose(row_s, w[row_i.astype(np.int64)], rtol=1e-6, atol=1e-6)

    def teardown(self) -> None:
        self.npk.close()
        self.tmp.cleanup()


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
