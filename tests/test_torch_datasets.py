"""numpack.torch: datasets pinned to a version, read by DataLoader workers (fork and spawn)
while another process writes, and by two DDP ranks (gloo)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ntorch = pytest.importorskip("numpack.torch")

from numpack import NumPack  # noqa: E402

ROWS = 3000


def make_store(path: Path, rows: int = ROWS) -> None:
    with NumPack(path, drop_if_exists=True) as npk:
        x = np.repeat(np.arange(rows, dtype=np.float32)[:, None], 8, axis=1)
        npk.save({"x": x, "y": np.arange(rows, dtype=np.int64)})


WRITER = textwrap.dedent(
    """
    import sys, os, numpy as np
    from numpack import NumPack
    path, stop = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(1)
    with NumPack(path) as npk:
        while not os.path.exists(stop):
            n = npk.get_shape("y")[0]
            rows = rng.choice(n, 50, replace=False)
            npk.replace({"x": np.full((50, 8), -1, np.float32),
                         "y": np.full(50, -1, np.int64)}, rows)
            npk.append({"x": np.full((10, 8), -2, np.float32),
                        "y": np.full(10, -2, np.int64)})
    """
)


class Writer:
    """Another process replacing and appending rows until stopped."""

    def __init__(self, path: Path) -> None:
        self.stop = path.parent / "stop-writer"
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(self.stop)])

    def close(self) -> None:
        self.stop.touch()
        assert self.proc.wait(timeout=60) == 0


def check_rows(xs: list[np.ndarray], ys: list[np.ndarray], rows: int = ROWS) -> None:
    y = np.concatenate(ys)
    x = np.concatenate(xs)
    assert np.array_equal(np.sort(y), np.arange(rows)), "not every row of the version exactly once"
    assert np.array_equal(x[:, 0], y.astype(np.float32)) and np.all(x == x[:, :1])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_read_the_pinned_version_while_another_process_writes(
    tmp_path: Path, context: str
) -> None:
    path = tmp_path / "s.npk"
    make_store(path)
    with NumPack(path) as parent:  # the parent holds an open handle through the fork
        assert parent.get_shape("x") == (ROWS, 8)
        ds = ntorch.NumPackDataset(path, arrays=("x", "y"))
        writer = Writer(path)
        try:
            for collate in (ntorch.collate, None):
                loader = torch.utils.data.DataLoader(
                    ds,
                    batch_size=64,
                    shuffle=True,
                    num_workers=2,
                    multiprocessing_context=context,
                    collate_fn=collate,
                    timeout=120,
                )
                xs, ys = [], []
                for xb, yb in loader:
                    assert isinstance(xb, torch.Tensor) and xb.dtype == torch.float32
                    assert yb.dtype == torch.int64
                    xs.append(xb.numpy())
                    ys.append(yb.numpy())
                check_rows(xs, ys)
        finally:
            writer.close()
        assert parent.get_shape("y")[0] > ROWS  # the writer did write
        assert len(ds) == ROWS
        ds.close()


def test_iterable_dataset_shards_by_worker_and_shuffles_by_epoch(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    make_store(path)
    ds = ntorch.NumPackIterableDataset(
        path, chunk_rows=128, batch_size=50, shuffle=True, shuffle_buffer=500, seed=3
    )
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=120
        )
        xs, ys = [], []
        for xb, yb in loader:
            assert len(yb) <= 50
            xs.append(xb.numpy())
            ys.append(yb.numpy())
        check_rows(xs, ys)
        orders.append(np.concatenate(ys))
    assert not np.array_equal(orders[0], orders[1]), "set_epoch did not change the order"
    # Same seed and epoch: the same order again.
    ds.set_epoch(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None)
    again = np.concatenate([yb.numpy() for _, yb in loader])
    single = ntorch.NumPackIterableDataset(
        path, chunk_rows=128, batch_size=50, shuffle=True, shuffle_buffer=500, seed=3
    )
    assert np.array_equal(again, np.concatenate([yb.numpy() for _, yb in single]))
    # Readers' chunks partition the rows.
    spans = [s for r in range(3) for s in ds.chunks(r, 3)]
    assert sorted(spans) == [(s, min(s + 128, ROWS)) for s in range(0, ROWS, 128)]
    # Rows one by one, unshuffled: in order.
    plain = ntorch.NumPackIterableDataset(path, arrays="y", chunk_rows=1000)
    assert [int(v) for v in plain] == list(range(ROWS))


def test_dataset_reads_its_version_after_writes_and_through_pickle(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    make_store(path, 100)
    ds = ntorch.NumPackDataset(path, arrays=("x", "y"))
    with NumPack(path) as npk:
        npk.replace({"y": np.full(10, -5, np.int64)}, list(range(10)))
        npk.append({"x": np.zeros((5, 8), np.float32), "y": np.zeros(5, np.int64)})
        npk.drop("y", [20, 21])
        npk.drop("x", [20, 21])
    assert len(ds) == 100
    x, y = ds[3]
    assert int(y) == 3 and float(x[0]) == 3.0
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.version == ds.version and len(copy) == 100
    batch = copy.__getitems__([0, 5, 99, -1])
    xb, yb = ntorch.collate(batch)
    assert yb.tolist() == [0, 5, 99, 99] and xb.shape == (4, 8)
    assert len(batch) == 4 and int(batch[2][1]) == 99
    # A batch index through __getitem__, and a transform.
    tds = ntorch.NumPackDataset(path, arrays="y", version=ds.version, transform=lambda a: a * 2)
    assert tds[np.array([1, 2])].tolist() == [2, 4]
    assert ntorch.collate(tds.__getitems__([4])).tolist() == [8]
    # The current version, opened fresh, is a different state.
    now = ntorch.NumPackDataset(path, arrays="y")
    assert len(now) == 103 and int(now[0]) == -5


def test_dataset_arguments_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    make_store(path, 10)
    with NumPack(path) as npk:
        npk.save({"z": np.zeros(7, np.int64), "s": np.array(3.0)})
    with pytest.raises(ValueError, match="same number of rows"):
        ntorch.NumPackDataset(path, arrays=("x", "z"))
    with pytest.raises(ValueError, match="0-d"):
        ntorch.NumPackDataset(path, arrays="s")
    with pytest.raises(KeyError):
        ntorch.NumPackDataset(path, arrays=("x", "missing"))
    with pytest.raises(TypeError):
        ntorch.NumPackDataset(path, arrays=())
    with pytest.raises(ValueError, match="twice"):
        ntorch.NumPackDataset(path, arrays=("x", "x"))
    ds = ntorch.NumPackDataset(path, arrays="y")
    with pytest.raises(IndexError, match="out of bounds"):
        ds[10]
    with pytest.raises(TypeError):
        ds["a"]
    with pytest.raises(ValueError):
        ntorch.NumPackIterableDataset(path, chunk_rows=0)
    with pytest.raises(ValueError):
        ntorch.NumPackIterableDataset(path, batch_size=-1)


DDP = textwrap.dedent(
    """
    import sys, os, numpy as np, torch, torch.distributed as dist
    import numpack.torch as ntorch

    def run(rank, path, out, port):
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = port
        dist.init_process_group("gloo", rank=rank, world_size=2)
        ds = ntorch.NumPackDataset(path, arrays="y", version=int(sys.argv[4]))
        sampler = torch.utils.data.DistributedSampler(ds, shuffle=True, seed=1)
        loader = torch.utils.data.DataLoader(ds, batch_size=32, sampler=sampler,
                                             collate_fn=ntorch.collate)
        mapped = np.concatenate([b.numpy() for b in loader])
        it = ntorch.NumPackIterableDataset(path, arrays="y", version=int(sys.argv[4]),
                                           chunk_rows=100, batch_size=64)
        streamed = np.concatenate([b.numpy() for b in it])
        np.save(f"{out}/mapped{rank}.npy", mapped)
        np.save(f"{out}/streamed{rank}.npy", streamed)
        dist.barrier()
        dist.destroy_process_group()

    if __name__ == "__main__":
        torch.multiprocessing.spawn(run, args=(sys.argv[1], sys.argv[2], sys.argv[3]), nprocs=2)
    """
)


def test_two_ddp_ranks_read_disjoint_shards_of_the_version(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s.npk"
    make_store(path, 1000)
    with NumPack(path) as npk:
        version = npk.version
        pin = npk.snapshot()  # keeps the version while the ranks open theirs
        npk.append({"x": np.zeros((7, 8), np.float32), "y": np.full(7, -1, np.int64)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path), port, str(version)],
        check=True,
        timeout=300,
        env=env,
    )
    pin.close()
    m0, m1 = (np.load(tmp_path / f"mapped{r}.npy") for r in (0, 1))
    assert len(m0) == len(m1) == 500  # DistributedSampler: equal shares
    assert np.array_equal(np.sort(np.concatenate([m0, m1])), np.arange(1000))
    s0, s1 = (np.load(tmp_path / f"streamed{r}.npy") for r in (0, 1))
    assert not set(s0.tolist()) & set(s1.tolist())
    assert np.array_equal(np.sort(np.concatenate([s0, s1])), np.arange(1000))


def test_handles_pickle_by_what_they_name(tmp_path: Path) -> None:
    path = tmp_path / "s.npk"
    make_store(path, 10)
    with NumPack(path) as npk, NumPack(path, version=npk.version) as old:
        v = npk.version
        copy = pickle.loads(pickle.dumps(npk))
        assert copy.is_opened and copy.get_shape("y") == (10,)
        npk.append({"x": np.zeros((1, 8), np.float32), "y": np.zeros(1, np.int64)})
        assert copy.get_shape("y") == (11,)
        copy.close()
        closed = pickle.loads(pickle.dumps(NumPack(path, warn_no_context=False)))
        assert not closed.is_opened
        # A pinned handle's copy pins the same version (the original keeps it readable).
        again = pickle.loads(pickle.dumps(old))
        assert again.version == v and again.get_shape("y") == (10,)
        again.close()
    # drop_if_exists is never carried to a copy.
    wiping = NumPack(path, drop_if_exists=True, warn_no_context=False)
    pickle.loads(pickle.dumps(wiping)).open()
    with NumPack(path) as npk:
        assert npk.get_shape("y") == (11,)
