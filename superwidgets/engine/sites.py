"""Resolve hook sites (module paths) inside any ``nn.Module``.

A *site* is a module path as listed by :meth:`torch.nn.Module.named_modules`
(``"layers.3.mlp"``), optionally with an *element* selecting one entry of a
structured output (element ``0`` of a tuple returned by an HF-style block, a key
of a dict-like output, or a field of a dataclass output).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "SiteError",
    "close_matches",
    "get_element",
    "list_sites",
    "resolve_site",
    "resolve_sites",
    "set_element",
]


class SiteError(ValueError):
    """An unknown or unusable site name; the message lists close matches."""


def list_sites(model: nn.Module) -> list[str]:
    """Return every hookable module path of ``model`` in definition order.

    Parameters
    ----------
    model : nn.Module
        Any PyTorch module.

    Returns
    -------
    list of str
        Module paths from ``named_modules()``, without the root (``""``).
    """
    return [name for name, _ in model.named_modules() if name]


def close_matches(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name``.

    Matching ignores the separators ``.``, ``_`` and ``-`` so that ``layer3``
    finds ``layers.3`` and ``layer_3``.
    """

    def norm(s: str) -> str:
        return s.replace(".", "").replace("_", "").replace("-", "").lower()

    by_norm: dict[str, list[str]] = {}
    for c in candidates:
        by_norm.setdefault(norm(c), []).append(c)
    hits = difflib.get_close_matches(norm(name), list(by_norm), n=n, cutoff=0.6)
    out: list[str] = []
    for h in hits:
        out.extend(by_norm[h])
    # plain matching too, for names whose separators carry meaning
    for c in difflib.get_close_matches(name, candidates, n=n, cutoff=0.6):
        if c not in out:
            out.append(c)
    return out[:n]


def _unknown(name: str, model: nn.Module) -> SiteError:
    sites = list_sites(model)
    hits = close_matches(name, sites)
    if hits:
        quoted = " or ".join(repr(h) for h in hits)
        hint = f"did you mean {quoted}?"
    elif sites:
        shown = ", ".join(repr(s) for s in sites[:8])
        more = "" if len(sites) <= 8 else f" (and {len(sites) - 8} more)"
        hint = f"known sites are {shown}{more}; list them all with lens.sites()"
    else:
        hint = "this model has no submodules; wrap its layers in nn.Modules to hook them"
    return SiteError(f"unknown site {name!r}; {hint}")


def resolve_site(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule at path ``name``.

    Raises
    ------
    SiteError
        If no such module exists; the message suggests the closest paths.
    """
    if not isinstance(name, str) or not name:
        raise SiteError(f"a site must be a non-empty module path string, got {name!r}")
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    raise _unknown(name, model)


def resolve_sites(model: nn.Module, patterns: list[str] | str) -> list[str]:
    """Expand site names and glob patterns (``"layers.*.mlp"``; ``**`` spans dots) to module paths.

    Raises
    ------
    SiteError
        If a name is unknown or a pattern matches nothing.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    sites = list_sites(model)
    out: list[str] = []
    for p in patterns:
        if any(ch in p for ch in "*?["):
            rx = _glob(p)
            hits = [s for s in sites if rx.fullmatch(s)]
            if not hits:
                raise SiteError(f"site pattern {p!r} matches no module; list them with lens.sites()")
        else:
            resolve_site(model, p)
            hits = [p]
        out.extend(h for h in hits if h not in out)
    return out


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches within one path segment, ``**`` across segments, ``?`` one character."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


Element = int | str


def get_element(output: Any, element: Element) -> torch.Tensor:
    """Return the tensor at ``element`` of a module output.

    ``output`` may be a tensor (element must be 0), a tuple or list (index), a
    mapping or HF ``ModelOutput`` (key or index), or a dataclass (field name).
    """
    if isinstance(output, torch.Tensor):
        if element not in (0, None):
            raise SiteError(f"the site returns a single tensor; element {element!r} does not exist (use 0)")
        return output
    try:
        if isinstance(output, (tuple, list)):
            value = output[element]  # type: ignore[index]
        elif isinstance(output, Mapping):
            key = list(output.keys())[element] if isinstance(element, int) else element
            value = output[key]
        elif dataclasses.is_dataclass(output):
            if isinstance(element, int):
                element = dataclasses.fields(output)[element].name
            value = getattr(output, element)
        else:
            raise SiteError(f"cannot edit an output of type {type(output).__name__}")
    except (IndexError, KeyError, AttributeError, TypeError) as exc:
        raise SiteError(f"the site's output has no element {element!r} ({type(output).__name__})") from exc
    if not isinstance(value, torch.Tensor):
        raise SiteError(f"element {element!r} of the site's output is a {type(value).__name__}, not a tensor")
    return value


def set_element(output: Any, element: Element, value: torch.Tensor) -> Any:
    """Return a copy of ``output`` whose ``element`` is replaced by ``value``."""
    if isinstance(output, torch.Tensor):
        return value
    if isinstance(output, tuple):
        items = list(output)
        items[element] = value  # type: ignore[index]
        if hasattr(output, "_fields"):  # namedtuple
            return type(output)(*items)
        return tuple(items)
    if isinstance(output, list):
        items = list(output)
        items[element] = value  # type: ignore[index]
        return items
    if isinstance(output, Mapping):
        key = list(output.keys())[element] if isinstance(element, int) else element
        if type(output) is dict:
            copy: Any = dict(output)
        else:  # HF ModelOutput and similar ordered mappings
            copy = output.__class__(**dict(output))
        copy[key] = value
        return copy
    if dataclasses.is_dataclass(output):
        if isinstance(element, int):
            element = dataclasses.fields(output)[element].name
        return dataclasses.replace(output, **{element: value})  # type: ignore[type-var]
    raise SiteError(f"cannot edit an output of type {type(output).__name__}")
