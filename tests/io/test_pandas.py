"""numpack.io pandas: DataFrames in and out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import numpack
import numpack.io as nio


def test_dataframe_round_trip(tmp_path, h, load):
    x = h.sample((50,), np.float64)
    df = pd.DataFrame({"a": np.arange(50, dtype=np.int32), "b": x})
    nio.from_dataframe(df, tmp_path / "s.npk", chunk_size=64)
    got = load(tmp_path / "s.npk")["data"]
    h.assert_same(got, np.column_stack([np.arange(50), x]))
    back = nio.to_dataframe(tmp_path / "s.npk", columns=["a", "b"])
    assert list(back.columns) == ["a", "b"]
    h.assert_same(back.to_numpy(), got)
    assert list(nio.to_dataframe(tmp_path / "s.npk").columns) == ["col0", "col1"]


def test_dataframe_dtypes_and_shapes(tmp_path, load):
    df = pd.DataFrame({"flag": [True, False], "n": np.array([3, 4], np.uint8)})
    nio.from_dataframe(df, tmp_path / "s.npk", array_name="d")
    assert load(tmp_path / "s.npk")["d"].dtype == np.uint8
    nio.from_dataframe(pd.DataFrame({"a": pd.Series([], dtype=np.float32)}), tmp_path / "s.npk",
                       array_name="e")  # fmt: skip
    assert load(tmp_path / "s.npk")["e"].shape == (0, 1)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"v": np.arange(3), "z": np.array(2.5), "c": np.zeros((2, 2, 2))})
    assert nio.to_dataframe(tmp_path / "s.npk", "v")["data"].tolist() == [0, 1, 2]
    assert nio.to_dataframe(tmp_path / "s.npk", "z")["data"].tolist() == [2.5]
    assert nio.to_dataframe(tmp_path / "s.npk", "c").shape == (2, 4)


def test_dataframe_errors(tmp_path, store, h):
    before = h.store_state(store)
    with pytest.raises(ValueError, match=r"Unsupported dtype.*name"):
        nio.from_dataframe(pd.DataFrame({"x": [1.0], "name": ["a"]}), store)
    with pytest.raises(ValueError, match="rows 0-"):
        nio.from_dataframe(pd.DataFrame({"i": pd.array([1, None], dtype="Int64")}), store)
    with pytest.raises(TypeError):
        nio.from_dataframe(np.zeros(3), store)
    assert h.store_state(store) == before


def test_deprecated_aliases(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"from_pandas\(\) is deprecated .* from_dataframe"):
        nio.from_pandas(pd.DataFrame({"a": [1.0]}), tmp_path / "s.npk")
    with pytest.warns(DeprecationWarning, match=r"to_pandas\(\) is deprecated .* to_dataframe"):
        assert nio.to_pandas(tmp_path / "s.npk").shape == (1, 1)
