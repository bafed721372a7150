"""Shared by the notebook generators: write cells as an output-free notebook under notebooks/."""

from pathlib import Path

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def write(name: str, cells: list) -> Path:
    """Write ``cells`` to ``notebooks/<name>`` with a python3 kernelspec; returns the path."""
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = Path(__file__).resolve().parent.parent / "notebooks" / name
    nbf.write(nb, out)
    print(out)
    return out
