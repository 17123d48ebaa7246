"""The README's Python examples run as written."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_block(code: str, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(README), "exec"), {})
    finally:
        os.chdir(cwd)
    # The blocks carry their own asserts; a block that creates a store must leave it valid.
    if "quickstart.npk" in code:
        assert (tmp_path / "quickstart.npk" / "metadata.npkm").exists()
