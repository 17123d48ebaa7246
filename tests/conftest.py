"""Shared fixtures of the numpack test suite.

Tests are written against the contract in ``API.md`` / ``FORMAT.md``; they use the public
``numpack`` package only (no mocks).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import numpy as np
import pytest
from helpers import BUCKET, DTYPES, random_array

import numpack


def pytest_configure(config):
    # Packages fetched from URLs (numpack._fetch) are cached here, not in the user's home;
    # worker processes (Ray, Dask) inherit it.
    cache = tempfile.mkdtemp(prefix="numpack-test-cache-")
    os.environ["NUMPACK_CACHE_DIR"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    config.addinivalue_line(
        "markers", "slow: spawns processes (Dask process scheduler, concurrent writers)"
    )


@pytest.fixture
def dtypes():
    """All 14 supported dtypes."""
    return list(DTYPES)


@pytest.fixture(params=DTYPES, ids=[d.name for d in DTYPES])
def dtype(request):
    """Parametrises a test over the 14 supported dtypes."""
    return request.param


@pytest.fixture
def make_array():
    """Factory ``make_array(shape, dtype, seed=None)``: a fresh random array; successive calls
    without a seed give different values."""
    counter = iter(range(1, 1_000_000))

    def make(shape, dtype=np.float64, seed=None):
        return random_array(shape, dtype, next(counter) if seed is None else seed)

    return make


@pytest.fixture
def store_path(tmp_path):
    """Path of a store directory that does not exist yet."""
    return tmp_path / "store.npk"


@pytest.fixture
def npk(store_path):
    """An open ``NumPack`` on a fresh store, closed after the test."""
    with numpack.NumPack(store_path) as store:
        yield store


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (moto) on 127.0.0.1 for the session; its URL."""
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """``s3fs`` options of the local server (also set as fsspec's defaults for ``s3://``)."""
    fsspec = pytest.importorskip("fsspec")
    s3fs = pytest.importorskip("s3fs")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server}}
    monkeypatch.setitem(fsspec.config.conf, "s3", opts)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    fs.invalidate_cache()
    return opts, fs
