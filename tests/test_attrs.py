"""Array attributes (``npk.attrs``): a persistent dict of JSON values per array, changed in
commits, kept by compaction, clone, pack and the conversions to formats with metadata,
bounded and checked when read."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from numpack import NumPack, _core
from numpack.exceptions import ArrayNotFoundError, CorruptStoreError

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(["model", "dim", "norm", "schema", "ü"])
NAMES = st.sampled_from(["a", "b"])


class AttrsMachine(RuleBasedStateMachine):
    """Attributes under every mutation, against a dict model, seen by a second handle."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "s.npk")
        self.npk = NumPack(self.path)
        self.npk.open()
        self.other = NumPack(self.path)
        self.other.open()
        self.model: dict[str, dict] = {}

    @rule(name=NAMES)
    def save(self, name):
        self.npk.save({name: np.arange(6, dtype=np.float32).reshape(3, 2)})
        self.model.setdefault(name, {})  # a save over an array keeps its attributes

    @precondition(lambda self: self.model)
    @rule(data=st.data(), key=KEYS, value=JSON)
    def set_key(self, data, key, value):
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.npk.attrs[name][key] = value
        self.model[name][key] = value

    @precondition(lambda self: self.model)
    @rule(data=st.data(), new=st.dictionaries(KEYS, JSON, max_size=3), whole=st.booleans())
    def update_or_replace(self, data, new, whole):
        name = data.draw(st.sampled_from(sorted(self.model)))
        if whole:
            self.npk.attrs[name] = new
            self.model[name] = dict(new)
        else:
            self.npk.attrs[name].update(new)
            self.model[name].update(new)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), key=KEYS)
    def delete_key(self, data, key):
        name = data.draw(st.sampled_from(sorted(self.model)))
        if key in self.model[name]:
            del self.npk.attrs[name][key]
            del self.model[name][key]
        else:
            with pytest.raises(KeyError):
                del self.npk.attrs[name][key]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def compact_append_drop_rows(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.npk.append({name: np.ones((2, 2), np.float32)})
        self.npk.drop(name, [0])
        self.npk.update(name)

    @precondition(lambda self: "a" in self.model and "c" not in self.model)
    @rule()
    def clone(self):
        self.npk.clone("a", "c")
        self.model["c"] = dict(self.model["a"])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def drop_array(self, data):
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.npk.drop(name)
        del self.model[name]

    @invariant()
    def both_handles_see_the_model(self):
        for h in (self.npk, self.other):
            got = {n: h.attrs[n].to_dict() for n in h.attrs}
            assert got == self.model
        for name in ("a", "b", "c"):
            if name not in self.model:
                with pytest.raises(KeyError):
                    self.npk.attrs[name]

    def teardown(self):
        self.npk.close()
        self.other.close()
        with NumPack(self.path) as npk:
            assert {n: npk.attrs[n].to_dict() for n in npk.attrs} == self.model
        problems, _ = _core.verify(self.path)
        assert problems == []
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


AttrsMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_attrs_state_machine = AttrsMachine.TestCase


def _store(tmp_path):
    npk = NumPack(tmp_path / "s.npk")
    npk.open()
    npk.save({"emb": np.random.default_rng(0).random((5, 3)).astype(np.float32)})
    return npk


def test_bad_values_are_refused_and_change_nothing(tmp_path):
    npk = _store(tmp_path)
    npk.attrs["emb"]["model"] = "e5-base"
    with pytest.raises(ValueError, match="JSON"):
        npk.attrs["emb"]["x"] = float("nan")
    with pytest.raises(TypeError):
        npk.attrs["emb"]["x"] = object()
    with pytest.raises(TypeError):
        npk.attrs["emb"] = [1, 2]
    with pytest.raises(TypeError):
        npk.attrs["emb"].update({1: 2})
    with pytest.raises(ValueError, match="1 MiB"):
        npk.attrs["emb"]["big"] = "x" * (1 << 20)
    npk.attrs["emb"]["half"] = "x" * (600 << 10)
    with pytest.raises(ValueError, match="1 MiB"):
        npk.attrs["emb"]["other half"] = "y" * (600 << 10)
    with pytest.raises(ArrayNotFoundError):
        npk.attrs["nope"]
    with pytest.raises(KeyError):
        npk.attrs["nope"]["k"] = 1
    assert set(npk.attrs["emb"]) == {"model", "half"}
    npk.close()


@pytest.mark.parametrize(
    "content",
    [b"{", b"[1, 2]", b"\xff\xfe", b"{" * 300 + b"}" * 300, b" " * ((1 << 20) + 1), "link", "fifo"],
)
def test_a_hostile_attributes_file_is_a_corrupt_store_error(tmp_path, content):
    npk = _store(tmp_path)
    f = tmp_path / "s.npk" / "attrs_emb.npka"
    if content == "link":
        (tmp_path / "elsewhere").write_text('{"a": 1}')
        f.symlink_to(tmp_path / "elsewhere")
    elif content == "fifo":
        os.mkfifo(f)
    else:
        f.write_bytes(content)
    with pytest.raises(CorruptStoreError, match="attrs_emb"):
        npk.attrs["emb"].to_dict()
    with pytest.raises(CorruptStoreError):
        npk.attrs["emb"]["k"] = 1
    problems, _ = _core.verify(str(tmp_path / "s.npk"))
    assert problems
    # The data is untouched and setting attributes anew works once the file is removed.
    np.testing.assert_array_equal(npk.load("emb").shape, (5, 3))
    f.unlink()
    npk.attrs["emb"]["k"] = 1
    assert npk.attrs["emb"].to_dict() == {"k": 1}
    npk.close()


def _writer(path, who, n):
    with NumPack(path) as npk:
        for i in range(n):
            npk.attrs["emb"][f"{who}{i}"] = i


def test_concurrent_writers_lose_no_key(tmp_path):
    npk = _store(tmp_path)
    npk.close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path / "s.npk", w, 15)) for w in "xyz"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with NumPack(tmp_path / "s.npk") as npk:
        assert npk.attrs["emb"].to_dict() == {f"{w}{i}": i for w in "xyz" for i in range(15)}


ATTRS = {
    "model": "e5-base",
    "dim": 3,
    "norm": True,
    "scale": 0.5,
    "tags": ["a", "b"],
    "cfg": {"lr": 1e-3, "none": None},
}


def _exported(tmp_path):
    npk = _store(tmp_path)
    npk.attrs["emb"] = ATTRS
    npk.close()
    return tmp_path / "s.npk"


@pytest.mark.parametrize(
    "fmt", ["parquet", "feather", "table", "hdf5", "zarr", "safetensors", "pack"]
)
def test_conversions_with_metadata_carry_attributes(tmp_path, fmt):
    import numpack.io as nio

    src = _exported(tmp_path)
    back = tmp_path / "back.npk"
    if fmt == "parquet":
        nio.to_parquet_file(src, tmp_path / "x.parquet", "emb")
        import pyarrow.parquet as pq

        meta = pq.read_schema(tmp_path / "x.parquet").metadata
        assert json.loads(meta[b"numpack.attrs"]) == ATTRS
        nio.from_parquet_file(tmp_path / "x.parquet", back, "emb")
    elif fmt == "feather":
        nio.to_feather_file(src, tmp_path / "x.feather", "emb")
        nio.from_feather_file(tmp_path / "x.feather", back, "emb")
    elif fmt == "table":
        table = nio.to_table(src, "emb")
        assert json.loads(table.schema.metadata[b"numpack.attrs"]) == ATTRS
        nio.from_table(table, back, "emb")
    elif fmt == "hdf5":
        nio.to_hdf5(src, tmp_path / "x.h5")
        import h5py

        with h5py.File(tmp_path / "x.h5") as f:
            assert f["emb"].attrs["model"] == "e5-base" and f["emb"].attrs["dim"] == 3
        nio.from_hdf5(tmp_path / "x.h5", back)
    elif fmt == "zarr":
        nio.to_zarr(src, tmp_path / "x.zarr")
        import zarr

        assert dict(zarr.open_group(str(tmp_path / "x.zarr"))["emb"].attrs) == ATTRS
        nio.from_zarr(tmp_path / "x.zarr", back)
    elif fmt == "safetensors":
        nio.to_safetensors_file(src, tmp_path / "x.safetensors", metadata={"user": "kept"})
        from safetensors import safe_open

        with safe_open(str(tmp_path / "x.safetensors"), "np") as f:
            meta = f.metadata()
        assert meta["user"] == "kept" and json.loads(meta["numpack.attrs.emb"]) == ATTRS
        nio.from_safetensors_file(tmp_path / "x.safetensors", back)
    else:
        nio.pack(src, tmp_path / "x.npkg")
        nio.unpack(tmp_path / "x.npkg", back)
    with NumPack(back) as npk:
        assert npk.attrs["emb"].to_dict() == ATTRS
        assert npk.load("emb").shape == (5, 3)


def test_native_hdf5_and_zarr_attributes_are_imported(tmp_path):
    import h5py
    import zarr

    import numpack.io as nio

    with h5py.File(tmp_path / "x.h5", "w") as f:
        d = f.create_dataset("v", data=np.zeros((2, 2)))
        d.attrs["units"] = "m"
        d.attrs["scale"] = np.float32(2.0)
        d.attrs["axes"] = np.array([1, 2])
        d.attrs["blob"] = np.void(b"\x00\x01")
    nio.from_hdf5(tmp_path / "x.h5", tmp_path / "h.npk")
    with NumPack(tmp_path / "h.npk") as npk:
        assert npk.attrs["v"].to_dict() == {"units": "m", "scale": 2.0, "axes": [1, 2]}
    g = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    a = g.create_array("v", shape=(2,), dtype="f4")
    a.attrs["units"] = "s"
    nio.from_zarr(tmp_path / "x.zarr", tmp_path / "z.npk")
    with NumPack(tmp_path / "z.npk") as npk:
        assert npk.attrs["v"].to_dict() == {"units": "s"}


def test_cli_info_shows_attributes(tmp_path):
    src = _exported(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "numpack", "info", "--json", str(src)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["arrays"][0]["attrs"] == ATTRS
    text = subprocess.run(
        [sys.executable, "-m", "numpack", "info", str(src)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"model": "e5-base"' in text


def test_foreign_attributes_numpack_cannot_keep_are_skipped(tmp_path):
    import zarr

    import numpack.io as nio

    g = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    a = g.create_array("v", shape=(2,), dtype="f4")
    a.attrs["ok"] = 1
    a.attrs["nan"] = float("nan")
    nio.from_zarr(tmp_path / "x.zarr", tmp_path / "z.npk")
    with NumPack(tmp_path / "z.npk") as npk:
        assert npk.attrs["v"].to_dict() == {"ok": 1}


def test_attributes_hdf5_cannot_name_natively_still_round_trip(tmp_path):
    import numpack.io as nio

    npk = _store(tmp_path)
    odd = {"": "empty key", "nul": "a\x00b", "big": 2**70}
    npk.attrs["emb"] = odd
    npk.close()
    nio.to_hdf5(tmp_path / "s.npk", tmp_path / "x.h5")
    nio.from_hdf5(tmp_path / "x.h5", tmp_path / "back.npk")
    with NumPack(tmp_path / "back.npk") as back:
        assert back.attrs["emb"].to_dict() == odd


def test_a_damaged_attributes_file_does_not_stop_info_or_exports(tmp_path):
    import numpack.io as nio

    npk = _store(tmp_path)
    npk.close()
    (tmp_path / "s.npk" / "attrs_emb.npka").write_bytes(b"{broken")
    out = subprocess.run(
        [sys.executable, "-m", "numpack", "info", "--json", str(tmp_path / "s.npk")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "<unreadable>" in json.loads(out)["arrays"][0]["attrs"]
    with pytest.warns(UserWarning, match="not exported"):
        nio.to_parquet_file(tmp_path / "s.npk", tmp_path / "x.parquet", "emb")
    nio.from_parquet_file(tmp_path / "x.parquet", tmp_path / "b.npk", "emb")
    with NumPack(tmp_path / "b.npk") as b:
        assert b.load("emb").shape == (5, 3) and b.attrs["emb"].to_dict() == {}
