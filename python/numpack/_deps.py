"""Lazy imports of the optional dependencies, with an error that names the pip command.

Nothing here imports an optional library at import time: each conversion calls
:func:`require` when it runs, so ``import numpack.io`` costs nothing and works without any
extra installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import DependencyError

__all__ = ["DependencyError", "EXTRAS", "optional", "require"]

#: The pip extra of numpack that installs each optional library.
EXTRAS = {
    "pyarrow": "parquet",
    "h5py": "hdf5",
    "zarr": "zarr",
    "torch": "torch",
    "safetensors": "safetensors",
    "pandas": "pandas",
    "s3fs": "s3",
    "fsspec": "s3",
    "tqdm": "progress",
    "dask": "dask",
    "ray": "ray",
    "ml_dtypes": "ml",
}


def _message(package: str) -> str:
    extra = EXTRAS.get(package)
    command = f"pip install numpack[{extra}]" if extra else f"pip install {package}"
    return (
        f"The optional dependency '{package}' is required to use this feature.\n"
        f"Please run: {command}"
    )


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyarrow.parquet"``) or raise :class:`DependencyError`.

    Parameters
    ----------
    module : str
        Dotted module name; its top-level package selects the extra named in the error.

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    DependencyError
        If the package is not installed; the message names ``pip install numpack[<extra>]``.
    """
    package = module.split(".", 1)[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".", 1)[0] != package:
            raise  # the package is there but one of *its* dependencies is broken
        raise DependencyError(_message(package)) from e


def optional(module: str) -> ModuleType | None:
    """Import ``module`` if it is installed, else return ``None``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
