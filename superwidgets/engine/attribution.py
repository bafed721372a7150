"""Attribution: which of a site's features a prediction leans on, and by how much.

:func:`attribute` scores every feature of a basis at once by *gradient ×
activation*: one forward and one backward pass give, for each feature ``i``
with coordinate ``c_i`` at the site, ``a_i = Σ_positions c_i · ∂T/∂c_i`` for a
scalar target ``T`` of the model's output. The coordinates are the ones the
engine's edits change (``engine/edits.py``), so ``-a_i`` is the first-order
prediction of what :class:`~superwidgets.engine.Ablate` ``([i])`` does to ``T``:

* ``Neurons``: unit ``i``'s value; ablating sets it to 0.
* ``Directions``: ``c_i = h·v_i / ‖v_i‖²`` (the least-squares coordinate of the
  single direction ``v_i``); ablating removes ``c_i v_i``.
* ``SAE``: the latent's code; the activation is ``decode(codes) + error`` with
  the reconstruction error held constant (delta-decode), so ``∂T/∂c_i =
  ∂T/∂h · W_dec[i]`` and ablating adds ``-c_i W_dec[i]``.

When everything after the site is linear in the activation the prediction is
exact; otherwise it is a ranking heuristic, which :func:`top_effects` checks by
measuring the exact ablation effect of the top candidates in one batched
:meth:`Lens.sweep <superwidgets.engine.Lens.sweep>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .bases import SAE, Basis, Directions, Neurons
from .sites import get_element, resolve_site, set_element

if TYPE_CHECKING:
    from .lens import Lens

__all__ = ["attribute", "top_effects"]

Target = Callable[[Any], torch.Tensor] | int


def _target_fn(target: Any) -> Callable[[Any], torch.Tensor]:
    """``target`` as a function of the model output returning a scalar tensor (checked when called)."""
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(
            f"target must be a function of the model output (e.g. lambda o: o.logits[0, -1, 42]) "
            f"or a class index, got {target!r}"
        )
    if isinstance(target, (int, np.integer)):
        c = int(target)

        def pick(out: Any) -> torch.Tensor:
            if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or (out.ndim == 2 and out.shape[0] != 1):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"target={c} picks a class of a (1, C) prediction, but the model returned {shape}; "
                    "pass a function instead, e.g. target=lambda o: o.logits[0, -1, 42]"
                )
            row = out.reshape(-1)
            if not -row.shape[0] <= c < row.shape[0]:
                raise ValueError(f"target class {c} is out of range; the prediction has {row.shape[0]} classes")
            return row[c]

        return pick
    if not callable(target):
        raise TypeError(
            f"target must be a function of the model output returning a scalar tensor "
            f"(e.g. lambda o: o.logits[0, -1, 42]) or a class index, got {type(target).__name__}"
        )
    return target


def _scalar(value: Any) -> torch.Tensor:
    """The target's value, checked to be a one-element floating tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"target(output) must return a scalar tensor, got {type(value).__name__}; "
            "index the output down to one number, e.g. lambda o: o.logits[0, -1, 42]"
        )
    if value.numel() != 1:
        raise ValueError(
            f"target(output) must return a scalar tensor, got shape {tuple(value.shape)}; "
            "index (or sum) it down to one number, e.g. lambda o: o.logits[0, -1, 42]"
        )
    if not value.is_floating_point():
        raise ValueError(f"target(output) must be a floating-point number, got dtype {value.dtype}")
    return value.reshape(())


def _features_last(h: torch.Tensor, feature_dim: int | None) -> torch.Tensor:
    fd = feature_dim if feature_dim is not None else (1 if h.ndim == 4 else -1)
    return h.movedim(fd, -1)


def _scores(basis: Basis, h: torch.Tensor, g: torch.Tensor, idx: list[int] | None) -> torch.Tensor:
    """``Σ_positions c_i ∂T/∂c_i`` for features ``idx`` (all when ``None``); ``h``, ``g`` features last."""
    width = int(h.shape[-1])
    flat_h = h.reshape(-1, width)
    flat_g = g.reshape(-1, width)
    if isinstance(basis, Neurons):
        prod = (flat_h * flat_g).sum(0)
        return prod if idx is None else prod[idx]
    if isinstance(basis, SAE):
        w = basis.decoder(width)
        w_ref = basis.sae.W_dec
        dtype = w_ref.dtype if isinstance(w_ref, torch.Tensor) and w_ref.is_floating_point() else torch.float32
        device = w_ref.device if isinstance(w_ref, torch.Tensor) else flat_h.device
        hs = flat_h.to(dtype=dtype, device=device)
        if idx is None:
            codes = basis.sae.encode(hs)
        else:
            codes = basis.encode_subset(hs, idx)
            w = w[idx]
        codes = codes.to(dtype)
        out = torch.zeros(codes.shape[-1], dtype=dtype, device=device)
        # a latent that is 0 at every position scores 0: decode gradients only for the active ones
        # (sparse codes: ~2k of 24,576 latents over 64 tokens of a TopK-32 SAE, ~8x less work)
        on = (codes != 0).any(0).nonzero().flatten()
        if on.numel():
            w_on = w[on].to(dtype=dtype, device=device)
            dcodes = flat_g.to(dtype=dtype, device=device) @ w_on.T  # ∂T/∂c_i = ∂T/∂h · W_dec[i]
            out[on] = (codes[:, on] * dcodes).sum(0)
        return out
    if isinstance(basis, Directions):
        v = basis.vectors(width)
        if idx is not None:
            v = v[idx]
        v = v.to(dtype=flat_h.dtype, device=flat_h.device)
        coords = (flat_h @ v.T) / (v * v).sum(1)  # the single-direction coordinate an Ablate([i]) removes
        return (coords * (flat_g @ v.T)).sum(0)
    raise TypeError(f"basis must be Neurons(), Directions(...) or SAE(...), got {type(basis).__name__}")


def _resume_from(lens: Lens, inputs: Any, site: str, edited: bool, inject: Callable[[Any], Any]) -> Any:
    """The model's output computed from ``site`` on, from the lens's cached clean values, or ``_NO``.

    ``inject(site_output)`` replaces the site's output (with a leaf that records gradients).
    The layers before the site are skipped: on models ``torch.fx`` traces, by the lens's tail
    program from the site; on models it cannot trace (most ``transformers`` models), by replaying
    the cached outputs of the modules that ran before the site. Used only when ``site`` is bound,
    the lens resumes there, and (with ``edited``) no enabled edit acts before the site; the
    baseline of ``inputs`` is computed (and cached) when the lens has none.
    """
    from .lens import ModelError, _ReplayVals

    if site not in lens._sites or not lens._resume:
        return _NO
    lens._baseline(inputs)
    vals = lens._clean_vals
    active = frozenset(n for n, st in lens._sites.items() if st.active) if edited else frozenset()
    if isinstance(vals, _ReplayVals):
        if site not in vals.sites or (active and vals.start(active | {site}) != site):
            return _NO
        handle = lens._sites[site].module.register_forward_hook(lambda _m, _a, out: inject(out))
        try:
            with vals.replay.replaying(site, vals.cache) as r:
                out = lens._forward(inputs)
        finally:
            handle.remove()
        return _NO if r.written() else out  # the model wrote into a cached value: compute it all again
    plan = lens._plan
    if not isinstance(vals, dict) or plan is None or plan.sites != frozenset(lens._sites):
        return _NO
    node = plan.node_of(site)
    tail = plan.tail(frozenset({site}))
    if tail is None:
        return _NO
    program, front = tail
    if active - {site}:  # edits elsewhere must all act after the site (the tail runs them)
        after = {str(n.target) for n in program.graph.nodes if n.op == "call_module"}
        if not active - {site} <= after or node not in front:
            return _NO
    value = vals[node]
    if site in active:  # the site's own edits first: the activation attributed is the edited one
        value = lens._sites[site].apply(value)
    value = inject(value)
    args = [value if f is node else vals[f] for f in front]
    try:
        return program(*args)
    except Exception as exc:  # the model's own failure, re-raised with context
        raise ModelError(f"the model raised {type(exc).__name__}: {exc}") from exc


#: "no resumed output": run the whole model.
_NO: Any = object()


def _width(lens: Lens, inputs: Any, site: str, feature_dim: int | None) -> int:
    """Number of features at ``site`` (one clean pass on the first input when the lens has not seen it)."""
    width = lens.width(site, feature_dim)
    if width is None:
        h = lens.activations(inputs[:1] if isinstance(inputs, torch.Tensor) else inputs, site)[site]
        width = int(_features_last(h, feature_dim).shape[-1])
    return int(width)


def attribute(
    lens: Lens,
    inputs: Any,
    site: str,
    *,
    basis: Basis | None = None,
    target: Target,
    features: Sequence[int | str] | None = None,
    feature_dim: int | None = None,
    edited: bool = False,
) -> torch.Tensor:
    """Gradient × activation of each feature at ``site`` for a scalar target of the output.

    One forward pass (the layers before the site run without autograd) and one
    backward pass to the site's activation; a temporary forward hook on the
    site is removed in ``finally``. The model's parameters are never touched:
    gradients are taken with :func:`torch.autograd.grad` with respect to the
    site's activation only, so no ``.grad`` is left on any parameter, and it
    works on frozen models (``requires_grad=False``) and in eval mode (the
    lens runs the model in eval mode and restores its mode).

    Parameters
    ----------
    lens : Lens
        The lens on the model. Its edits are off during the pass unless ``edited``.
    inputs : Tensor or dict
        Model input, as for :meth:`Lens.run` (``model(inputs)`` or ``model(**inputs)``).
    site : str
        Module path; element 0 of its output is the activation.
    basis : Basis, optional
        ``Neurons()`` (default), ``Directions(...)`` or ``SAE(...)``.
    target : callable or int
        ``target(output) -> scalar tensor``, e.g. ``lambda o: o.logits[0, -1, 42]``;
        or a class index into a ``(1, C)`` prediction tensor.
    features : sequence of int or str, optional
        Features to score (indices or names); default all, in basis order.
    feature_dim : int, optional
        Feature axis of the activation (default: last, or 1 for 4-D conv maps).
    edited : bool
        Attribute under the lens's enabled edits instead of the clean model.

    Returns
    -------
    Tensor, shape (n_features,)
        ``a_i = Σ c_i ∂T/∂c_i``, summed over every position (batch, sequence,
        space) of the activation; on the CPU, float32 (float64 for a float64
        model). ``-a_i`` predicts the change of ``T`` when feature ``i`` is
        zero-ablated (exactly when the model is linear after the site).
        Sorting by ``|a|`` ranks the features the prediction leans on.

    Raises
    ------
    SiteError
        Unknown site (the message lists close matches).
    TypeError, ValueError
        A bad target (not callable, or not returning a scalar), a basis that
        does not fit the site, or a target that does not depend on the site.
    InputError, ModelError
        As for :meth:`Lens.run`.

    Examples
    --------
    >>> a = attribute(lens, ids, "transformer.h.8", basis=sw.SAE(sae),          # doctest: +SKIP
    ...               target=lambda o: o.logits[0, -1, 42])
    >>> a.abs().topk(20).indices                                                # doctest: +SKIP
    """
    lens._check_open()
    module = resolve_site(lens.model, site)
    fn = _target_fn(target)
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "attribute needs autograd, which torch.inference_mode() switches off; call it outside that block"
        )
    b = basis if basis is not None else Neurons()
    if not isinstance(b, Basis):
        raise TypeError(f"basis must be Neurons(), Directions(...) or SAE(...), got {type(b).__name__}")
    leaves: list[torch.Tensor] = []

    def inject(output: Any) -> Any:
        h = get_element(output, 0)
        if not h.is_floating_point():
            raise ValueError(f"site {site!r} returns a {h.dtype} tensor; attribution needs floating activations")
        leaf = h.detach().requires_grad_(True)
        leaves.append(leaf)
        # autograd from here on only: the layers before the site ran without it (the lens's
        # no_grad block restores the outer grad mode when the forward returns)
        torch.set_grad_enabled(True)
        return set_element(output, 0, leaf.clone())  # a non-leaf, so in-place ops downstream stay legal

    with lens._hold():  # a background (preemptible) run gives way to this call
        lens._check_input(inputs)
        grad_mode = torch.is_grad_enabled()
        try:
            with lens._mode() if edited else lens._clean():
                out = _resume_from(lens, inputs, site, edited, inject)
                if out is _NO:
                    leaves.clear()
                    handle = module.register_forward_hook(lambda _m, _a, output: inject(output))
                    try:
                        out = lens._forward(inputs)
                    finally:
                        handle.remove()
        finally:
            torch.set_grad_enabled(grad_mode)
        if not leaves:
            raise ValueError(f"site {site!r} did not run during the forward pass; pick a module the model calls")
        with torch.enable_grad():
            try:
                picked = fn(out)
            except (AttributeError, IndexError, KeyError, TypeError, RuntimeError) as exc:
                raise ValueError(
                    f"target(output) raised {type(exc).__name__}: {exc}; the model returned a "
                    f"{type(out).__name__}: index it down to one number, e.g. lambda o: o.logits[0, -1, 42]"
                ) from exc
            value = _scalar(picked)
            if not value.requires_grad:
                raise ValueError(
                    f"the target does not depend on site {site!r} (no gradient flows back to it); "
                    "pick a site before the output the target reads"
                )
            grads = torch.autograd.grad(value, leaves, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError(f"the target does not depend on site {site!r}; pick a site the target's output reads")
        with torch.no_grad():
            h0 = _features_last(leaves[0].detach(), feature_dim)
            width = int(h0.shape[-1])
            idx = None if features is None else [b.index(f, width) for f in features]
            if idx is not None and not idx:
                raise ValueError("features is empty; pass at least one feature index or name (or None for all)")
            total: torch.Tensor | None = None
            for leaf, g in zip(leaves, grads, strict=True):
                if g is None:
                    continue
                h = _features_last(leaf.detach(), feature_dim)
                compute = torch.float32 if h.dtype in (torch.float16, torch.bfloat16) else h.dtype
                s = _scores(b, h.to(compute), _features_last(g, feature_dim).to(compute), idx)
                total = s if total is None else total + s.to(total.device)
    assert total is not None
    return total.detach().to(device="cpu", dtype=torch.float64 if total.dtype == torch.float64 else torch.float32)


def top_effects(
    lens: Lens,
    inputs: torch.Tensor,
    site: str,
    *,
    basis: Basis | None = None,
    readout: Callable[[Any], torch.Tensor],
    candidates: Sequence[int | str] | None = None,
    k: int = 16,
    attribution: torch.Tensor | None = None,
    feature_dim: int | None = None,
    batch_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact ablation effects of the features with the largest attribution.

    Scores ``candidates`` by :func:`attribute` (target: ``readout(output).sum()``),
    keeps the ``k`` with the largest ``|attribution|`` and measures what
    zero-ablating each of them does to ``readout`` by ONE batched
    ``lens.sweep(site, inputs, features=top, op="ablate", basis=basis, readout=readout)``
    (the lens's edits off, as the sweep's are).

    Parameters
    ----------
    lens : Lens
        The lens on the model.
    inputs : Tensor, shape (n, ...)
        The input(s), usually the one shown (``n = 1``).
    site : str
        Module path.
    basis : Basis, optional
        ``Neurons()`` (default), ``Directions(...)`` or ``SAE(...)``.
    readout : callable
        ``readout(output) -> Tensor`` with one number per input (shape ``(n,)``
        or ``(n, 1)``), e.g. ``lambda o: o.logits[:, -1, 42]`` or
        ``lambda o: o.softmax(-1)[:, 1]``.
    candidates : sequence of int or str, optional
        Features to choose from (default: every feature of the basis).
    k : int
        How many top candidates to measure exactly.
    attribution : Tensor, optional
        Attribution of the candidates already computed by :func:`attribute`
        with ``target=lambda o: readout(o).sum()`` (one value per candidate, in
        order); skips the backward pass.
    feature_dim : int, optional
        Feature axis of the activation.
    batch_size : int
        Most rows (features × inputs) per forward pass of the sweep.

    Returns
    -------
    indices : ndarray of int64, shape (m,)
        Feature indices (``m = min(k, len(candidates))``), sorted by ``|effect|``, largest first.
    attribution : ndarray of float32, shape (m,)
        Their gradient × activation (``-attribution`` predicts ``effect``).
    effect : ndarray of float32, shape (m,)
        ``readout(ablated) - readout(clean)`` summed over the inputs.
    """
    lens._check_open()
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty tensor of shape (n, ...); add a batch axis with x[None]")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive number of features to measure, got {k!r}")
    if not callable(readout):
        raise TypeError(f"readout must be a function of the model output, got {type(readout).__name__}")
    n = int(inputs.shape[0])

    def target(out: Any) -> torch.Tensor:
        r = readout(out)
        if not isinstance(r, torch.Tensor) or r.numel() != n:
            shape = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
            raise ValueError(
                f"readout must return one number per input (shape ({n},)), got {shape}; "
                "index it down, e.g. readout=lambda o: o.logits[:, -1, 42]"
            )
        return r.sum()

    b = basis if basis is not None else Neurons()
    resolve_site(lens.model, site)  # an unknown site fails here, with close matches
    with lens._hold():  # a background (preemptible) run gives way to this call
        if candidates is None:
            cand = None
        else:
            cand_list = list(candidates)
            if not cand_list:
                raise ValueError("candidates is empty; pass feature indices or names (or None for all)")
            width = _width(lens, inputs, site, feature_dim)
            cand = np.asarray([b.index(f, width) for f in cand_list], dtype=np.int64)
        if attribution is None:
            attribution = attribute(
                lens, inputs, site, basis=b, target=target, features=candidates, feature_dim=feature_dim
            )
        scores = torch.as_tensor(attribution).detach().float().cpu().reshape(-1)
        if cand is None:
            cand = np.arange(scores.shape[0], dtype=np.int64)
        if cand.shape[0] != scores.shape[0]:
            raise ValueError(
                f"attribution has {scores.shape[0]} values for {cand.shape[0]} candidates; "
                "pass one attribution value per candidate (attribute(..., features=candidates))"
            )
        m = min(int(k), int(cand.shape[0]))
        order = torch.argsort(scores.abs(), descending=True, stable=True)[:m].numpy()
        top, top_attr = cand[order], scores.numpy()[order]
        eff = lens.sweep(
            site,
            inputs,
            features=[int(i) for i in top],
            op="ablate",
            basis=b,
            readout=readout,
            feature_dim=feature_dim,
            batch_size=batch_size,
        )
    effect = eff.reshape(m, -1).sum(1).double().numpy()
    by_effect = np.argsort(-np.abs(effect), kind="stable")
    return top[by_effect], top_attr[by_effect].astype(np.float32), effect[by_effect].astype(np.float32)
