"""Hypothesis state machine: random sequences of NumPack operations checked against a model
(a dict of NumPy arrays holding the logical content of every array).

Two processes share the store: the test process and a long-lived child (one per machine run,
``helpers.StoreProcess``) with its own ``NumPack`` handle.  Every rule draws which of them
performs it, so writes of one are read back by the other, and both processes' views are
checked against the model after every step."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from helpers import DTYPES, StoreProcess, random_array, run_op
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from numpack import NumPack
from numpack.exceptions import ArrayNotFoundError, IndexOutOfRangeError

NAMES = ["a", "b", "c", "d/e", "ü"]
MISSING = "never-saved"
TRAILING = [(), (3,), (2, 2)]
SEEDS = st.integers(0, 2**32 - 1)
#: Which process performs a rule: the test process or the child.
VIA = st.sampled_from(["parent", "child"])


def assert_same(actual, expected):
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


def row_keys(n, data, *, unique=False):
    """Draw a row index for ``n`` >= 1 logical rows: int, list, int ndarray, or slice."""
    kind = data.draw(st.sampled_from(["int", "list", "ndarray", "slice"]))
    if kind == "int":
        return data.draw(st.integers(-n, n - 1))
    if kind == "slice":
        return slice_key(n, data)
    items = st.lists(
        st.integers(-n, n - 1),
        min_size=1,
        max_size=n + 2,
        unique_by=(lambda i: i % n) if unique else None,
    )
    values = data.draw(items)
    return values if kind == "list" else np.array(values, dtype=np.int64)


def slice_key(n, data):
    start = data.draw(st.none() | st.integers(-n - 2, n + 2))
    stop = data.draw(st.none() | st.integers(-n - 2, n + 2))
    step = data.draw(st.none() | st.integers(-3, 3).filter(bool))
    return slice(start, stop, step)


def selected(n, key):
    """Positions (in order) that ``key`` selects from ``n`` rows, as NumPy means it."""
    return np.atleast_1d(np.arange(n)[key])


class NumPackMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="numpack-sm-")
        self.path = os.path.join(self.dir, "store.npk")
        self.npk = NumPack(self.path)
        self.child = None
        try:
            self.npk.open()
            self.child = StoreProcess(timeout=60)
            self.child.open(self.path)
        except BaseException:
            self.teardown()
            raise
        self.model: dict[str, np.ndarray] = {}

    def teardown(self):
        try:
            if self.child is not None:
                self.child.stop()
        finally:
            try:
                self.npk.close()
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------------
    def do(self, via, *op):
        """Perform ``op`` (``helpers.run_op`` form) in the test process or in the child."""
        if via == "parent":
            return run_op(self.npk, op)
        return self.child.call(op)

    def names_with_rows(self, min_rows=0):
        return sorted(n for n, a in self.model.items() if a.ndim >= 1 and a.shape[0] >= min_rows)

    def has_rows(self, min_rows=0):
        return bool(self.names_with_rows(min_rows))

    def draw_names(self, data, min_rows):
        """1-3 distinct arrays with at least ``min_rows`` rows, for a multi-array call."""
        return data.draw(
            st.lists(st.sampled_from(self.names_with_rows(min_rows)), min_size=1, max_size=3).map(
                lambda names: sorted(set(names))
            )
        )

    # --- writes ------------------------------------------------------------------------------
    @rule(
        via=VIA,
        name=st.sampled_from(NAMES),
        dtype=st.sampled_from(DTYPES),
        trailing=st.sampled_from(TRAILING),
        rows=st.integers(0, 6),
        seed=SEEDS,
    )
    def save(self, via, name, dtype, trailing, rows, seed):
        arr = random_array((rows, *trailing), dtype, seed)
        self.do(via, "save", {name: arr})
        self.model[name] = arr.copy()

    @rule(via=VIA, name=st.sampled_from(NAMES), dtype=st.sampled_from(DTYPES), seed=SEEDS)
    def save_scalar(self, via, name, dtype, seed):
        arr = random_array((), dtype, seed)
        self.do(via, "save", {name: arr})
        self.model[name] = arr.copy()

    @precondition(lambda self: self.has_rows())
    @rule(via=VIA, data=st.data(), rows=st.integers(0, 4), seed=SEEDS)
    def append(self, via, data, rows, seed):
        name = data.draw(st.sampled_from(self.names_with_rows()))
        current = self.model[name]
        new = random_array((rows, *current.shape[1:]), current.dtype, seed)
        self.do(via, "append", {name: new})
        self.model[name] = np.concatenate([current, new])

    @precondition(lambda self: self.has_rows())
    @rule(via=VIA, data=st.data(), rows=st.integers(50, 80), seed=SEEDS)
    def append_many(self, via, data, rows, seed):
        """Grows arrays past 64 rows so that bitmaps span several words."""
        self.append(via, data, rows, seed)

    @precondition(lambda self: self.has_rows())
    @rule(via=VIA, data=st.data(), seed=SEEDS)
    def append_several(self, via, data, seed):
        """One call appending to several arrays (one commit)."""
        names = self.draw_names(data, 0)
        new = {}
        for k, name in enumerate(names):
            current = self.model[name]
            rows = data.draw(st.integers(0, 4))
            new[name] = random_array((rows, *current.shape[1:]), current.dtype, seed + k)
        self.do(via, "append", new)
        for name, rows in new.items():
            self.model[name] = np.concatenate([self.model[name], rows])

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data(), seed=SEEDS, broadcast=st.booleans())
    def replace(self, via, data, seed, broadcast):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        current = self.model[name]
        n = current.shape[0]
        key = row_keys(n, data, unique=True)
        positions = selected(n, key)
        if len(positions) == 0:
            return
        count = 1 if broadcast else len(positions)
        values = random_array((count, *current.shape[1:]), current.dtype, seed)
        self.do(via, "replace", {name: values}, key)
        updated = current.copy()
        updated[positions] = values
        self.model[name] = updated

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data(), seed=SEEDS)
    def replace_several(self, via, data, seed):
        """One call replacing the same rows (an int or a slice, one broadcast row each) of
        several arrays; negative indexes and slices resolve against each array."""
        names = self.draw_names(data, 1)
        n = min(self.model[name].shape[0] for name in names)
        key = data.draw(st.integers(-n, n - 1)) if data.draw(st.booleans()) else slice_key(n, data)
        values = {}
        for k, name in enumerate(names):
            current = self.model[name]
            values[name] = random_array((1, *current.shape[1:]), current.dtype, seed + k)
        self.do(via, "replace", values, key)
        for name, rows in values.items():
            updated = self.model[name].copy()
            updated[selected(len(updated), key)] = rows
            self.model[name] = updated

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data(), as_mask=st.booleans())
    def drop_rows(self, via, data, as_mask):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        current = self.model[name]
        n = current.shape[0]
        if as_mask:
            key = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            positions = np.flatnonzero(key)
        else:
            key = row_keys(n, data)
            positions = selected(n, key)
        self.do(via, "drop", name, key)
        self._dropped(name, np.delete(current, positions, axis=0), len(positions))

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data())
    def drop_rows_several(self, via, data):
        """One call dropping the same rows (resolved against each array) of several arrays."""
        names = self.draw_names(data, 1)
        key = row_keys(min(self.model[name].shape[0] for name in names), data)
        self.do(via, "drop", names, key)
        for name in names:
            current = self.model[name]
            gone = selected(len(current), key)
            self._dropped(name, np.delete(current, gone, axis=0), len(set(gone)))

    def _dropped(self, name, left, deleted):
        """The model after a row drop: an array whose last rows went is removed (as 0.6)."""
        if deleted and len(left) == 0:
            self.model.pop(name)
        else:
            self.model[name] = left

    @rule(via=VIA, names=st.lists(st.sampled_from([*NAMES, MISSING]), max_size=3))
    def drop_arrays(self, via, names):
        self.do(via, "drop", names)
        for name in names:
            self.model.pop(name, None)

    @precondition(lambda self: self.model)
    @rule(via=VIA, data=st.data())
    def update(self, via, data):
        self.do(via, "update", data.draw(st.sampled_from(sorted(self.model))))

    @precondition(lambda self: self.model and len(self.model) < len(NAMES))
    @rule(via=VIA, data=st.data())
    def clone(self, via, data):
        source = data.draw(st.sampled_from(sorted(self.model)))
        target = data.draw(st.sampled_from([n for n in NAMES if n not in self.model]))
        self.do(via, "clone", source, target)
        self.model[target] = self.model[source].copy()

    @rule()
    def reopen(self):
        self.npk.close()
        self.npk = NumPack(self.path)
        self.npk.open()

    @rule()
    def reopen_child(self):
        self.child.open(self.path)

    @precondition(lambda self: len(self.model) > 2)
    @rule(via=VIA)
    def reset(self, via):
        self.do(via, "reset")
        self.model.clear()

    # --- calls that must fail and change nothing ----------------------------------------------
    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data(), seed=SEEDS)
    def failing_call(self, via, data, seed):
        names = self.draw_names(data, 1)
        name = names[0]
        current = self.model[name]
        n = current.shape[0]
        out_of_range = data.draw(st.sampled_from([n, n + 3, -n - 1]))
        good = {k: self.model[k][:1].copy() for k in names}
        kind = data.draw(
            st.sampled_from(
                [
                    "getitem",
                    "drop",
                    "replace",
                    "append_missing",
                    "drop_missing",
                    "append_dtype",
                ]
            )
        )
        if kind == "getitem":
            op, error = ("getitem", name, [0, out_of_range]), IndexOutOfRangeError
        elif kind == "drop":
            op, error = ("drop", names, [0, out_of_range]), IndexOutOfRangeError
        elif kind == "replace":
            op, error = ("replace", good, [out_of_range]), IndexOutOfRangeError
        elif kind == "append_missing":
            # One missing array in the call: the others must not grow either.
            op, error = ("append", {**good, MISSING: np.zeros(3)}), ArrayNotFoundError
        elif kind == "drop_missing":
            op, error = ("drop", [*names, MISSING], 0), ArrayNotFoundError
        else:
            other = np.int8 if current.dtype != np.int8 else np.int16
            wrong = random_array(current[:1].shape, other, seed)
            op, error = ("append", {**good, name: wrong}), TypeError
        with pytest.raises(error):
            self.do(via, *op)

    # --- reads -------------------------------------------------------------------------------
    @precondition(lambda self: self.model)
    @rule(via=VIA, data=st.data())
    def load(self, via, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        assert_same(self.do(via, "load", name), self.model[name])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def lazy_full(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        lazy = self.npk.load(name, lazy=True)
        assert lazy.shape == self.model[name].shape
        assert lazy.dtype == self.model[name].dtype
        assert_same(np.asarray(lazy), self.model[name])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def lazy_full_in_child(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        assert_same(self.child.call(("lazy_asarray", name)), self.model[name])

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data())
    def lazy_index(self, via, data):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        expected = self.model[name]
        n = expected.shape[0]
        if data.draw(st.booleans()):
            key = row_keys(n, data)
        else:
            key = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        got = self.do(via, "lazy_getitem", name, key)
        want = expected[key]
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)

    @precondition(lambda self: self.has_rows(1))
    @rule(via=VIA, data=st.data())
    def getitem(self, via, data):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        expected = self.model[name]
        key = row_keys(expected.shape[0], data)
        want = (
            expected[[key]]
            if isinstance(key, int)
            else expected[np.asarray(key, dtype=np.intp)]
            if isinstance(key, list)
            else expected[key]
        )
        assert_same(self.do(via, "getitem", name, key), want)

    @precondition(lambda self: self.has_rows())
    @rule(via=VIA, data=st.data(), buffer_size=st.none() | st.integers(1, 4))
    def stream(self, via, data, buffer_size):
        name = data.draw(st.sampled_from(self.names_with_rows()))
        expected = self.model[name]
        batches = self.do(via, "stream_list", name, buffer_size)
        size = buffer_size or 1
        assert len(batches) == -(-expected.shape[0] // size)
        for i, batch in enumerate(batches):
            assert_same(batch, expected[i * size : (i + 1) * size])

    @invariant()
    def members_and_shapes(self):
        assert self.npk.get_member_list() == sorted(self.model)
        assert len(self.npk) == len(self.model)
        for name, arr in self.model.items():
            assert self.npk.get_shape(name) == arr.shape

    @invariant()
    def child_sees_the_same(self):
        count, shapes = self.child.call(("summary",))
        assert count == len(self.model)
        assert shapes == {name: arr.shape for name, arr in self.model.items()}


TestNumPackStateMachine = NumPackMachine.TestCase
TestNumPackStateMachine.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestNumPackStateMachine = pytest.mark.timeout(900)(TestNumPackStateMachine)
