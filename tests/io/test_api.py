"""numpack.io's public surface: the 70 names of 0.6, lazy optional imports, DependencyError,
the size utilities."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import numpack
import numpack.io as nio
from numpack._deps import require

PUBLISHED = """DependencyError get_file_size is_large_file estimate_chunk_rows from_npy to_npy
from_numpy to_numpy from_csv to_csv from_txt to_txt from_hdf5 to_hdf5 from_zarr to_zarr
from_parquet to_parquet from_parquet_file to_parquet_file from_parquet_table to_parquet_table
from_feather to_feather from_feather_file to_feather_file from_table to_table from_arrow
to_arrow from_dataframe to_dataframe from_pandas to_pandas from_pt to_pt from_torch_file
to_torch_file from_pytorch to_pytorch from_tensor to_tensor from_torch to_torch
from_safetensors_file to_safetensors_file from_tensor_dict to_tensor_dict from_safetensors
to_safetensors get_safetensors_metadata iter_safetensors from_s3 to_s3 pack unpack
get_package_info LARGE_FILE_THRESHOLD DEFAULT_CHUNK_SIZE DEFAULT_BATCH_ROWS DLPackBuffer
to_dlpack from_dlpack numpy_to_arrow_zero_copy arrow_to_numpy_zero_copy
table_to_numpy_zero_copy numpy_to_torch_zero_copy torch_to_numpy_zero_copy ZeroCopyArray
wrap_for_zero_copy""".split()


def fresh_python(code: str) -> str:
    """Standard output of ``code`` run in a fresh interpreter (which must succeed)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_all_published_names():
    assert len(PUBLISHED) == 70
    assert nio.__all__ == PUBLISHED
    assert all(callable(getattr(nio, n)) or n.isupper() for n in PUBLISHED)
    assert nio.pack is numpack.pack and nio.DependencyError is numpack.DependencyError
    assert issubclass(nio.DependencyError, ImportError)


def test_import_is_lazy():
    code = ("import sys, numpack.io; heavy = {'pyarrow', 'torch', 'h5py', 'zarr', 'pandas', "
            "'s3fs', 'tqdm', 'safetensors'}; print(sorted(heavy & set(sys.modules)))")  # fmt: skip
    assert fresh_python(code).strip() == "[]"


def test_dependency_error_names_the_extra():
    with pytest.raises(nio.DependencyError) as e:
        require("pyarrow_not_installed_xyz")
    assert "pip install" in str(e.value)
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "import numpack.io as nio\n"
        "try:\n    nio.to_table('x')\n"
        "except nio.DependencyError as e:\n    print(e)\n"
    )
    out = fresh_python(code)
    assert "The optional dependency 'pyarrow' is required" in out
    assert "pip install numpack[parquet]" in out


def test_size_utilities(tmp_path):
    assert nio.DEFAULT_CHUNK_SIZE == 64 << 20 and nio.LARGE_FILE_THRESHOLD == 1 << 30
    assert nio.DEFAULT_BATCH_ROWS == 100_000
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 10)
    (tmp_path / "d" / "b").write_bytes(b"x" * 5)
    assert nio.get_file_size(tmp_path / "d") == 15 and nio.get_file_size(tmp_path / "d" / "a") == 10
    assert nio.get_file_size(tmp_path / "none") == 0
    assert nio.is_large_file(tmp_path / "d", threshold=14) and not nio.is_large_file(tmp_path / "d")
    f4 = np.dtype(np.float32)
    assert nio.estimate_chunk_rows((), f4) == 1
    assert nio.estimate_chunk_rows((10, 0), f4) == 100_000
    assert nio.estimate_chunk_rows((0, 4), f4) == 0
    assert nio.estimate_chunk_rows((100, 4), f4, target_chunk_bytes=160) == 10
    assert nio.estimate_chunk_rows((10**9,), f4) == 1_000_000


def test_exporters_handle_empty_stores_and_names(tmp_path):
    with numpack.NumPack(tmp_path / "s.npk") as npk:
        npk.save({"a": np.zeros(2), "b": np.ones(2)})
    with pytest.raises(ValueError, match=r"NumPack contains multiple arrays \['a', 'b'\]"):
        nio.to_parquet(tmp_path / "s.npk", tmp_path / "x.parquet")
    with numpack.NumPack(tmp_path / "e.npk") as npk:
        pass
    with pytest.raises(ValueError, match="NumPack contains no arrays"):
        nio.to_feather(tmp_path / "e.npk", tmp_path / "x.feather")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npk", "s.npk"]


def test_io_is_an_attribute_of_numpack_and_lib_numpack_names_exist():
    code = (
        "import sys, numpack\n"
        "assert 'numpack.io' not in sys.modules\n"
        "assert callable(numpack.io.from_npy)\n"
        "from numpack._lib_numpack import NumPack, LazyArray, VectorEngine, StreamingVectorEngine\n"
        "assert NumPack is numpack.NumPack and VectorEngine is numpack.vector_engine.VectorEngine\n"
        "try:\n    numpack.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    assert "no attribute 'no_such_name'" in fresh_python(code)
