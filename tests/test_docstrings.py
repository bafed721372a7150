"""House rules that can be checked: docstrings on every public API, an attribute docstring on every synced trait."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "superwidgets"
MODULES = sorted(p for p in PKG.rglob("*.py") if "static" not in p.parts)


def _synced(value: ast.expr) -> bool:
    """``traitlets.X(...).tag(sync=True)`` or the binary ``Array()`` trait (always synced)."""
    if not isinstance(value, ast.Call):
        return False
    f = value.func
    if isinstance(f, ast.Name) and f.id == "Array":
        return True
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "tag"
        and any(k.arg == "sync" and isinstance(k.value, ast.Constant) and k.value.value is True for k in value.keywords)
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_public_functions_and_classes_have_docstrings(path):
    """Every public class, function and method defined in the package has a docstring (or inherits one)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    module = importlib.import_module(name)
    missing = []
    for attr, obj in vars(module).items():
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            if not inspect.getdoc(obj):
                missing.append(attr)
        if inspect.isclass(obj):
            for meth, fn in vars(obj).items():
                if meth.startswith("_") or not (inspect.isfunction(fn) or isinstance(fn, property)):
                    continue
                if not inspect.getdoc(getattr(obj, meth, fn)) and not (isinstance(fn, property) and fn.__doc__):
                    missing.append(f"{attr}.{meth}")
    assert not missing, f"{name}: no docstring on {missing}"


@pytest.mark.parametrize("path", sorted((PKG / "widgets").glob("*.py")), ids=lambda p: p.name)
def test_every_synced_trait_has_an_attribute_docstring(path):
    tree = ast.parse(path.read_text())
    missing = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = cls.body
        for i, item in enumerate(body):
            if isinstance(item, ast.Assign) and _synced(item.value):
                nxt = body[i + 1] if i + 1 < len(body) else None
                documented = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(
                    nxt.value.value, str
                )
                if not documented:
                    missing.append(f"{cls.name}.{item.targets[0].id}")  # type: ignore[attr-defined]
    assert not missing, f"synced traits without an attribute docstring: {missing}"
