"""The README's Python examples run as written (a stale example is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example-{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block):
    import torch

    threads = torch.get_num_threads()
    namespace: dict = {}
    try:
        exec(compile("import superwidgets as sw\n" + block, str(README), "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
        lens = namespace.get("lens")
        if lens is not None:
            lens.close()
