"""Data and process helpers shared by the test modules (imported as ``helpers``; a module,
not the conftest, so that ``tests/io/conftest.py`` cannot shadow them)."""

from __future__ import annotations

import builtins
import multiprocessing
import struct

import numpy as np

import numpack.exceptions
from numpack import NumPack

#: The 14 dtypes the store supports, in the order of their format codes (FORMAT.md).
DTYPES = [
    np.dtype(name)
    for name in (
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
]


def random_array(shape, dtype, seed=0):
    """A C-contiguous array of ``shape`` and ``dtype`` with varied values (full integer
    range, signed floats, complex with both parts, booleans), never NaN."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    if dtype.kind == "b":
        values = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    elif dtype.kind == "f":
        values = rng.standard_normal(shape) * 100
    elif dtype.kind == "c":
        values = rng.standard_normal(shape) * 100 + 1j * rng.standard_normal(shape) * 100
    else:  # pragma: no cover - only the 14 supported dtypes are used
        raise ValueError(dtype)
    out = np.ascontiguousarray(np.asarray(values).astype(dtype)).reshape(shape)
    assert out.dtype == dtype and out.shape == shape
    return out


# --- a NumPack handle in another process ---------------------------------------------------
#
# The children are forked from a forkserver that has imported numpy and numpack: starting one
# costs a few milliseconds, and no child is forked from the pytest process, whose rayon
# threads (started by earlier tests) would not exist in a forked child.


def mp_context():
    """The multiprocessing context for store processes: forkserver where there is one
    (children fork from a clean, single-threaded server), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "numpack", "helpers"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


# Pseudo-methods a store process understands besides the ``NumPack`` methods themselves.


def _lazy_asarray(npk, name):
    return np.asarray(npk.load(name, lazy=True))


def _lazy_getitem(npk, name, key):
    return npk.load(name, lazy=True)[key]


def _stream_list(npk, name, buffer_size):
    return list(npk.stream_load(name, buffer_size))


def _summary(npk):
    """``(len(npk), {name: shape})`` in one round trip."""
    return len(npk), {name: npk.get_shape(name) for name in npk.get_member_list()}


_PSEUDO = {
    "lazy_asarray": _lazy_asarray,
    "lazy_getitem": _lazy_getitem,
    "stream_list": _stream_list,
    "summary": _summary,
}


def run_op(npk, op):
    """Perform ``op`` = ``(method, *args)`` on ``npk``: a ``NumPack`` method name or one of
    the pseudo-methods above.  Returns what the call returns."""
    method, *args = op
    if method in _PSEUDO:
        return _PSEUDO[method](npk, *args)
    return getattr(npk, method)(*args)


def _failure(exc):
    cls = type(exc)
    return ("err", cls.__module__, cls.__qualname__, str(exc))


def _outcome(npk, op):
    try:
        return ("ok", run_op(npk, op))
    except Exception as exc:
        return _failure(exc)


def serve_store(conn, barrier):
    """Child side of :class:`StoreProcess`: one ``NumPack`` handle, driven through ``conn``.

    Requests are ``(kind, payload)``; ``None`` stops the child.  ``open`` (path) and
    ``close`` manage the handle, ``call`` (op) performs one op, ``batch`` ((ops, sync))
    waits on ``barrier`` when ``sync`` and then performs the ops one after the other,
    replying with one outcome per op: ``("ok", value)`` or ``("err", module, class, message)``.
    """
    npk = None
    try:
        while True:
            request = conn.recv()
            if request is None:
                break
            kind, payload = request
            try:
                if kind == "open":
                    if npk is not None:
                        npk.close()
                        npk = None
                    npk = NumPack(payload)
                    npk.open()
                    reply = ("ok", None)
                elif kind == "close":
                    if npk is not None:
                        npk.close()
                    npk = None
                    reply = ("ok", None)
                elif kind == "call":
                    reply = _outcome(npk, payload)
                elif kind == "batch":
                    ops, sync = payload
                    if sync:
                        barrier.wait(60)
                    reply = ("ok", [_outcome(npk, op) for op in ops])
                else:
                    raise ValueError(f"unknown request {kind!r}")
            except Exception as exc:
                reply = _failure(exc)
            conn.send(reply)
    finally:
        if npk is not None:
            npk.close()


def rebuild_exception(module, qualname, message):
    """The exception a child reported, as an instance of the same class where it is a
    numpack or built-in exception (else a ``RuntimeError`` naming the class)."""
    if module.startswith("numpack"):
        cls = getattr(numpack.exceptions, qualname, None)
    elif module == "builtins":
        cls = getattr(builtins, qualname, None)
    else:
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return cls(message)
    return RuntimeError(f"{module}.{qualname}: {message}")


class StoreProcess:
    """A child process holding its own ``NumPack`` handle, driven from the test process.

    ``call(op)`` performs one op in the child and returns its result or raises the
    exception the child got (same class); ``start_batch``/``finish_batch`` run a list of
    ops (after waiting on the shared ``barrier`` when ``sync``) and return one outcome per op.
    Always ``stop()`` it (idempotent).
    """

    def __init__(self, ctx=None, barrier=None, timeout=120):
        ctx = ctx or mp_context()
        self.timeout = timeout
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_store, args=(child, barrier), daemon=True)
        self.process.start()
        child.close()

    def _send(self, kind, payload=None):
        self._conn.send((kind, payload))

    def _receive(self):
        if not self._conn.poll(self.timeout):
            raise TimeoutError(f"store process {self.process.pid} did not answer")
        try:
            return self._conn.recv()
        except EOFError:
            self.process.join(5)
            raise RuntimeError(
                f"store process {self.process.pid} died (exit code {self.process.exitcode})"
            ) from None

    def _result(self):
        reply = self._receive()
        if reply[0] == "err":
            raise rebuild_exception(*reply[1:])
        return reply[1]

    def open(self, path):
        self._send("open", str(path))
        return self._result()

    def close(self):
        self._send("close")
        return self._result()

    def call(self, op):
        self._send("call", op)
        return self._result()

    def start_batch(self, ops, sync=True):
        self._send("batch", (list(ops), sync))

    def finish_batch(self):
        return self._result()

    def poll(self):
        """Whether the child's reply to the last request is there (or the child is gone)."""
        return self._conn.poll(0)

    def stop(self):
        if self.process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self._conn.close()


# --- a writer to be killed --------------------------------------------------------------------


def multi_array_calls(seed):
    """The endless, deterministic call sequence of :func:`multi_array_writer` for ``seed``, as
    ``run_op`` ops that each name both ``x`` (int64, rows ``[v, -v]``) and ``y`` (float64,
    ``v``): appends of 1-2000 rows of new values (the first call always), replaces of the last
    one or two rows (one new value, broadcast), drops of the last one or three rows.  Any
    state they leave has ``x[:, 0] == y`` and ``x[:, 1] == -y``; values are unique per
    ``seed`` (``seed * 10**9`` upwards)."""
    rng = np.random.default_rng(seed)
    next_value = seed * 10**9
    choice = 0
    while True:
        if choice < 6:
            count = int(rng.integers(1, 2001))
            values = np.arange(next_value, next_value + count, dtype=np.int64)
            next_value += count
            yield ("append", {"x": np.stack([values, -values], axis=1), "y": values.astype(float)})
        elif choice < 8:
            value = np.array([next_value], dtype=np.int64)
            next_value += 1
            key = slice(-2, None) if choice == 6 else slice(-1, None)
            rows = {"x": np.stack([value, -value], axis=1), "y": value.astype(float)}
            yield ("replace", rows, key)
        else:
            yield ("drop", ["x", "y"], slice(-3, None) if choice == 8 else slice(-1, None))
        choice = int(rng.integers(0, 10))


def multi_array_writer(path, done, seed):
    """Perform ``multi_array_calls(seed)`` on the store at ``path`` forever, storing in
    ``done`` (a shared ``RawValue``) the number of calls that have returned."""
    with NumPack(path) as npk:
        for op in multi_array_calls(seed):
            run_op(npk, op)
            done.value += 1


#: The bucket of the local S3 server's tests (the ``s3`` fixture creates it).
BUCKET = "numpack-test"


def metadata_bytes(records) -> bytes:
    """``metadata.npkm`` by hand (FORMAT.md): records of (name, shape, data file, dtype code,
    size in bytes)."""
    out = b"NPKB" + struct.pack("<I", 1) + struct.pack("<Q", 0) + struct.pack("<I", len(records))
    for name, shape, file, code, size in records:
        n, f = name.encode(), file.encode()
        out += struct.pack("<I", len(n)) + n + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<I", len(f)) + f + struct.pack("<QQ", 0, size)
        out += struct.pack("<BBIQQ", code, 0, 0, 0, 0) + b"\x00"
    return out
