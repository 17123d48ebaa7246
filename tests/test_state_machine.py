"""Hypothesis state machine: random sequences of NumPack operations checked against a model
(a dict of NumPy arrays holding the logical content of every array)."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
from helpers import DTYPES, random_array
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from numpack import NumPack

NAMES = ["a", "b", "c", "d/e", "ü"]
TRAILING = [(), (3,), (2, 2)]
SEEDS = st.integers(0, 2**32 - 1)


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
        start = data.draw(st.none() | st.integers(-n - 2, n + 2))
        stop = data.draw(st.none() | st.integers(-n - 2, n + 2))
        step = data.draw(st.none() | st.integers(-3, 3).filter(bool))
        return slice(start, stop, step)
    items = st.lists(
        st.integers(-n, n - 1),
        min_size=1,
        max_size=n + 2,
        unique_by=(lambda i: i % n) if unique else None,
    )
    values = data.draw(items)
    return values if kind == "list" else np.array(values, dtype=np.int64)


def selected(n, key):
    """Positions (in order) that ``key`` selects from ``n`` rows, as NumPy means it."""
    return np.atleast_1d(np.arange(n)[key])


class NumPackMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="numpack-sm-")
        self.path = os.path.join(self.dir, "store.npk")
        self.npk = NumPack(self.path)
        self.npk.open()
        self.model: dict[str, np.ndarray] = {}

    def teardown(self):
        try:
            self.npk.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------------
    def names_with_rows(self, min_rows=0):
        return sorted(n for n, a in self.model.items() if a.ndim >= 1 and a.shape[0] >= min_rows)

    def has_rows(self, min_rows=0):
        return bool(self.names_with_rows(min_rows))

    # --- writes ------------------------------------------------------------------------------
    @rule(
        name=st.sampled_from(NAMES),
        dtype=st.sampled_from(DTYPES),
        trailing=st.sampled_from(TRAILING),
        rows=st.integers(0, 6),
        seed=SEEDS,
    )
    def save(self, name, dtype, trailing, rows, seed):
        arr = random_array((rows, *trailing), dtype, seed)
        self.npk.save({name: arr})
        self.model[name] = arr.copy()

    @rule(name=st.sampled_from(NAMES), dtype=st.sampled_from(DTYPES), seed=SEEDS)
    def save_scalar(self, name, dtype, seed):
        arr = random_array((), dtype, seed)
        self.npk.save({name: arr})
        self.model[name] = arr.copy()

    @precondition(lambda self: self.has_rows())
    @rule(data=st.data(), rows=st.integers(0, 4), seed=SEEDS)
    def append(self, data, rows, seed):
        name = data.draw(st.sampled_from(self.names_with_rows()))
        current = self.model[name]
        new = random_array((rows, *current.shape[1:]), current.dtype, seed)
        self.npk.append({name: new})
        self.model[name] = np.concatenate([current, new])

    @precondition(lambda self: self.has_rows())
    @rule(data=st.data(), rows=st.integers(50, 80), seed=SEEDS)
    def append_many(self, data, rows, seed):
        """Grows arrays past 64 rows so that bitmaps span several words."""
        self.append(data, rows, seed)

    @precondition(lambda self: self.has_rows(1))
    @rule(data=st.data(), seed=SEEDS, broadcast=st.booleans())
    def replace(self, data, seed, broadcast):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        current = self.model[name]
        n = current.shape[0]
        key = row_keys(n, data, unique=True)
        positions = selected(n, key)
        if len(positions) == 0:
            return
        count = 1 if broadcast else len(positions)
        values = random_array((count, *current.shape[1:]), current.dtype, seed)
        self.npk.replace({name: values}, key)
        updated = current.copy()
        updated[positions] = values
        self.model[name] = updated

    @precondition(lambda self: self.has_rows(1))
    @rule(data=st.data(), as_mask=st.booleans())
    def drop_rows(self, data, as_mask):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        current = self.model[name]
        n = current.shape[0]
        if as_mask:
            key = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            positions = np.flatnonzero(key)
        else:
            key = row_keys(n, data)
            positions = selected(n, key)
        self.npk.drop(name, key)
        self.model[name] = np.delete(current, positions, axis=0)

    @rule(names=st.lists(st.sampled_from(NAMES), max_size=3))
    def drop_arrays(self, names):
        self.npk.drop(names)
        for name in names:
            self.model.pop(name, None)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def update(self, data):
        self.npk.update(data.draw(st.sampled_from(sorted(self.model))))

    @precondition(lambda self: self.model and len(self.model) < len(NAMES))
    @rule(data=st.data())
    def clone(self, data):
        source = data.draw(st.sampled_from(sorted(self.model)))
        target = data.draw(st.sampled_from([n for n in NAMES if n not in self.model]))
        self.npk.clone(source, target)
        self.model[target] = self.model[source].copy()

    @rule()
    def reopen(self):
        self.npk.close()
        self.npk = NumPack(self.path)
        self.npk.open()

    @precondition(lambda self: len(self.model) > 2)
    @rule()
    def reset(self):
        self.npk.reset()
        self.model.clear()

    # --- reads -------------------------------------------------------------------------------
    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def load(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        assert_same(self.npk.load(name), self.model[name])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def lazy_full(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        lazy = self.npk.load(name, lazy=True)
        assert lazy.shape == self.model[name].shape
        assert lazy.dtype == self.model[name].dtype
        assert_same(np.asarray(lazy), self.model[name])

    @precondition(lambda self: self.has_rows(1))
    @rule(data=st.data())
    def lazy_index(self, data):
        name = data.draw(st.sampled_from(self.names_with_rows(1)))
        expected = self.model[name]
        n = expected.shape[0]
        if data.draw(st.booleans()):
            key = row_keys(n, data)
        else:
            key = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        got = self.npk.load(name, lazy=True)[key]
        want = expected[key]
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)

    @precondition(lambda self: self.has_rows(1))
    @rule(data=st.data())
    def getitem(self, data):
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
        assert_same(self.npk.getitem(name, key), want)

    @precondition(lambda self: self.has_rows())
    @rule(data=st.data(), buffer_size=st.none() | st.integers(1, 4))
    def stream(self, data, buffer_size):
        name = data.draw(st.sampled_from(self.names_with_rows()))
        expected = self.model[name]
        batches = list(self.npk.stream_load(name, buffer_size))
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


TestNumPackStateMachine = NumPackMachine.TestCase
TestNumPackStateMachine.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
