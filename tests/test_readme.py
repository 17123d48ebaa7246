"""The README's Python examples run as written."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Documents whose Python examples are run as tests too.
DOCS = [README, ROOT / "docs" / "distributed.md"]
BLOCKS = [
    pytest.param(code, doc, id=f"{doc.name}-{i}")
    for doc in DOCS
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S))
]


@pytest.mark.parametrize(("code", "doc"), BLOCKS)
def test_readme_python_block(code: str, doc: Path, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(doc), "exec"), {})
    finally:
        os.chdir(cwd)
    # The blocks carry their own asserts; a block that creates a store must leave it valid.
    if "quickstart.npk" in code:
        assert (tmp_path / "quickstart.npk" / "metadata.npkm").exists()
