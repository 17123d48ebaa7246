"""numpack.io PyTorch: tensors and .pt files (every dtype torch and numpack share), files
written by torch.save (dicts, bare tensors, legacy format), failures, bounded memory."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import numpack
import numpack.io as nio


def test_pt_round_trip_every_dtype_and_shape(tmp_path, h, load):
    arrays = h.cases()
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save(arrays)
        npk.drop("float32_7x3", [0, 5])  # a deleted row: exported from a spill file
    arrays["float32_7x3"] = np.delete(arrays["float32_7x3"], [0, 5], axis=0)
    nio.to_pt(tmp_path / "s.npk", tmp_path / "a.pt", chunk_size=40)
    obj = torch.load(tmp_path / "a.pt", weights_only=True)
    assert sorted(obj) == sorted(arrays)
    for k, v in arrays.items():
        h.assert_same(obj[k].numpy(), v)
    nio.from_pt(tmp_path / "a.pt", tmp_path / "t.npk", chunk_size=40)
    got = load(tmp_path / "t.npk")
    for k, v in arrays.items():
        h.assert_same(got[k], v)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_files_written_by_torch(tmp_path, h, load):
    w = torch.randn(20, 6)
    torch.save({"w": w, "b": torch.arange(4, dtype=torch.int16), "step": 3, "name": "x"},
               tmp_path / "ckpt.pt")  # fmt: skip
    nio.from_pt(tmp_path / "ckpt.pt", tmp_path / "s.npk")
    got = load(tmp_path / "s.npk")
    assert sorted(got) == ["b", "w"]  # non-tensor values are skipped
    h.assert_same(got["w"], w.numpy())
    nio.from_pt(tmp_path / "ckpt.pt", tmp_path / "k.npk", key="b")
    assert list(load(tmp_path / "k.npk")) == ["b"]
    torch.save(w[:, 1:4].t(), tmp_path / "view.pt")  # a non-contiguous view of a storage
    nio.from_pt(tmp_path / "view.pt", tmp_path / "s.npk", chunk_size=16)
    h.assert_same(load(tmp_path / "s.npk")["view"], w[:, 1:4].t().contiguous().numpy())
    torch.save({"old": w}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    nio.from_pt(tmp_path / "legacy.pt", tmp_path / "s.npk")
    h.assert_same(load(tmp_path / "s.npk")["old"], w.numpy())


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_pt_errors_leave_store_unchanged(tmp_path, store, h):
    before = h.store_state(store)
    # complex32 has no NumPy type (bfloat16 and float8 tensors are stored via ml_dtypes).
    torch.save({"a": torch.ones(3), "h": torch.ones(2, dtype=torch.complex32)}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match=r"b\.pt.*'h' \(torch\.complex32\).*nothing"):
        nio.from_pt(tmp_path / "b.pt", store)
    with pytest.raises(KeyError, match="'zz' not found"):
        nio.from_pt(tmp_path / "b.pt", store, key="zz")
    torch.save({"n": 3}, tmp_path / "n.pt")
    with pytest.raises(TypeError, match="'n' is not a tensor"):
        nio.from_pt(tmp_path / "n.pt", store, key="n")
    torch.save([torch.ones(1)], tmp_path / "l.pt")
    with pytest.raises(TypeError, match="Unsupported PyTorch data type: list"):
        nio.from_pt(tmp_path / "l.pt", store)
    raw = (tmp_path / "b.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(Exception, match=r"cut\.pt"):
        nio.from_pt(tmp_path / "cut.pt", store)
    # 'a' is streamed into the store's temporaries before the empty name fails: nothing shows
    torch.save({"a": torch.ones(1000), "": torch.ones(3)}, tmp_path / "mid.pt")
    with pytest.raises(Exception, match=r"mid\.pt"):
        nio.from_pt(tmp_path / "mid.pt", store, chunk_size=400)
    assert h.store_state(store) == before


class Custom:
    pass


def test_weights_only_by_default(tmp_path, load):
    torch.save({"t": torch.ones(2), "obj": Custom()}, tmp_path / "c.pt")
    with pytest.raises(Exception, match=r"c\.pt.*(Weights only|weights_only)"):
        nio.from_pt(tmp_path / "c.pt", tmp_path / "s.npk")
    nio.from_pt(tmp_path / "c.pt", tmp_path / "s.npk", weights_only=False)
    assert list(load(tmp_path / "s.npk")) == ["t"]


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_tensors_in_memory(tmp_path, h, load):
    t = torch.arange(24, dtype=torch.float64).reshape(4, 6)[:, ::2]  # non-contiguous
    nio.from_tensor(t, tmp_path / "s.npk", chunk_size=16)
    h.assert_same(load(tmp_path / "s.npk")["data"], t.contiguous().numpy())
    c = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64).conj()  # lazy conjugate bit
    nio.from_tensor(c, tmp_path / "s.npk", array_name="c")
    h.assert_same(load(tmp_path / "s.npk")["c"], np.array([1 - 2j, 3 + 1j], np.complex64))
    back = nio.to_tensor(tmp_path / "s.npk", "data", dtype=torch.float32)
    assert back.dtype == torch.float32 and back.shape == (4, 3)
    assert nio.to_tensor(tmp_path / "s.npk", "c", device="cpu").dtype == torch.complex64
    with pytest.raises(TypeError, match=r"Expected torch\.Tensor, got ndarray"):
        nio.from_tensor(np.zeros(2), tmp_path / "s.npk")
    with pytest.raises(ValueError, match="complex32"):
        nio.from_tensor(torch.ones(2, dtype=torch.complex32), tmp_path / "s.npk")


def test_bare_tensor_export_and_aliases(tmp_path):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"x": np.arange(6).reshape(2, 3)})
    nio.to_pt(tmp_path / "s.npk", tmp_path / "x.pt", as_dict=False)
    assert torch.load(tmp_path / "x.pt").tolist() == [[0, 1, 2], [3, 4, 5]]
    # Several arrays: the dict, whatever as_dict says (as 0.6).
    with numpack.NumPack(tmp_path / "two.npk") as npk:
        npk.save({"x": np.arange(6).reshape(2, 3), "y": np.ones(2)})
    nio.to_pt(tmp_path / "two.npk", tmp_path / "xy.pt", as_dict=False)
    assert sorted(torch.load(tmp_path / "xy.pt")) == ["x", "y"]
    for alias, target in [("from_torch", "from_tensor"), ("to_torch", "to_tensor"),
                          ("from_torch_file", "from_pt"), ("to_torch_file", "to_pt"),
                          ("from_pytorch", "from_pt"), ("to_pytorch", "to_pt")]:  # fmt: skip
        fn = getattr(nio, alias)
        with pytest.warns(DeprecationWarning, match=rf"{alias}\(\) is deprecated.*{target}\(\)"):
            if alias.startswith("to_"):
                fn(tmp_path / "s.npk", *([tmp_path / "y.pt"] if "tensor" not in target else []))
            else:
                fn(torch.ones(1) if target == "from_tensor" else tmp_path / "x.pt",
                   tmp_path / "n.npk")  # fmt: skip


def test_pickled_objects_need_weights_only_false_with_a_clear_error(tmp_path):
    import pickle

    f = tmp_path / "m.pt"
    torch.save({"t": torch.arange(3), "n": np.ones(3)}, f)
    with pytest.raises(pickle.UnpicklingError, match="weights_only=False"):
        nio.from_pt(f, tmp_path / "s.npk")
    if (tmp_path / "s.npk").exists():
        with numpack.NumPack(tmp_path / "s.npk") as npk:
            assert npk.get_member_list() == []  # nothing imported
    nio.from_pt(f, tmp_path / "s.npk", drop_if_exists=True, weights_only=False)
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        assert npk.get_member_list() == ["t"]  # non-tensors are skipped, as in 0.6
        assert npk.load("t").tolist() == [0, 1, 2]
