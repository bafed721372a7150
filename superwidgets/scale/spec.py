"""Where a command-line run gets its model and inputs: ``module:function`` or a zoo name."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

__all__ = ["load_model"]


def load_model(spec: str) -> tuple[nn.Module, torch.Tensor]:
    """The model and the inputs named by ``spec``.

    Parameters
    ----------
    spec : str
        Either ``"package.module:function"`` -- a function, importable from the current directory or
        ``PYTHONPATH``, that takes no arguments and returns ``(model, inputs)``: an ``nn.Module`` and
        a tensor or array ``(n, ...)`` of its inputs (or anything
        :func:`superwidgets.data.inputs.as_inputs` reads) -- or the name of a zoo model
        (``superwidgets.zoo.available()``, e.g. ``"breast-cancer-mlp"``), whose data set gives the
        inputs. Every rank calls the function, so it must return the same inputs each time (seed it).

    Returns
    -------
    model : nn.Module
        In eval mode.
    inputs : Tensor (n, ...)
        On the CPU.

    Raises
    ------
    ValueError
        A spec that is neither form, a module or function that cannot be found, or a function that
        does not return ``(model, inputs)``.
    """
    from ..science.sae import _model_inputs

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"model must be 'module:function' or a zoo model name, got {spec!r}")
    if ":" in spec:
        mod_name, _, fn_name = spec.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise ValueError(
                f"model {spec!r}: cannot import module {mod_name!r} ({exc}); run from the folder that holds it "
                "or add that folder to PYTHONPATH"
            ) from None
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise ValueError(f"model {spec!r}: module {mod_name!r} has no function {fn_name!r}")
        got: Any = fn()
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], nn.Module)):
            raise ValueError(
                f"model {spec!r}: {fn_name}() must return (model, inputs) with model an nn.Module, "
                f"got {type(got).__name__}"
            )
        model, data = got
    else:
        from .. import zoo

        if spec not in zoo.available():
            import difflib

            close = difflib.get_close_matches(spec, zoo.available(), n=2)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise ValueError(
                f"model {spec!r} is not a zoo model and has no ':' (module:function); {hint}"
                f"zoo models: {zoo.available()}"
            )
        model, data = zoo.load(spec)
    model.eval()
    return model, _model_inputs(model, data).cpu()
