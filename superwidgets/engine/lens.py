"""The Lens: persistent hooks on a model, edits as state, baseline vs edited runs."""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import threading
import types
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .bases import SAE, Basis, Neurons
from .edits import Clamp, Edit, MeanAblate, Op, Resample, coordinates
from .export import edits_to_code, load_edits, save_edits
from .replay import Replay, ReplayError
from .replay import holes as replay_holes
from .resume import Plan, PlanError
from .sites import SiteError, get_element, resolve_site, resolve_sites, set_element
from .sweep import sweep as run_sweep

__all__ = [
    "EditError",
    "InputError",
    "Lens",
    "LensClosedError",
    "ModelError",
    "Preempted",
    "RunResult",
    "SiteInfo",
    "tree_map2",
]

#: The open Lens of each model, so that a new Lens replaces (never stacks) hooks.
_LIVE: weakref.WeakKeyDictionary[nn.Module, Lens] = weakref.WeakKeyDictionary()


class EditError(ValueError):
    """An edit could not be applied at its site (e.g. a direction of the wrong length)."""


class InputError(ValueError):
    """An input the model cannot take (NaN, wrong dtype or device, ...)."""


class ModelError(RuntimeError):
    """The model itself raised during a run; the message names the original error."""


class Preempted(RuntimeError):
    """A background run (``preemptible=True``) gave way to another thread's call on the same lens.

    Nothing was cached or changed; run it again later, or drop it if it is stale.
    """


class LensClosedError(RuntimeError):
    """The Lens was closed or replaced by a newer Lens on the same model."""


@dataclasses.dataclass
class SiteInfo:
    """One hookable module of a model.

    Attributes
    ----------
    name : str
        Module path (``named_modules()`` name).
    module : str
        The module's class name.
    shape : tuple of int or None
        Output shape (element 0 of structured outputs) at the last probe, or
        ``None`` before the lens has seen an input.
    bound : bool
        Whether the lens holds a hook on it.
    edits : int
        Number of edits at this site.
    """

    name: str
    module: str
    shape: tuple[int, ...] | None
    bound: bool
    edits: int

    def __repr__(self) -> str:
        shape = "?" if self.shape is None else "×".join(str(s) for s in self.shape)
        flag = f" [bound, {self.edits} edits]" if self.bound else ""
        return f"{self.name:<24} {self.module:<16} {shape}{flag}"


def tree_map2(fn: Any, a: Any, b: Any) -> Any:
    """Apply ``fn`` to matching tensors of two outputs of the same structure."""
    if isinstance(a, torch.Tensor):
        return fn(a, b)
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a)(*(tree_map2(fn, x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, (tuple, list)):
        return type(a)(tree_map2(fn, x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        mapped = {k: tree_map2(fn, a[k], b[k]) for k in a}
        if type(a) is dict:
            return mapped
        try:  # keep HF ModelOutput and other dict subclasses
            return type(a)(**mapped)
        except TypeError:
            return mapped
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return dataclasses.replace(
            a, **{f.name: tree_map2(fn, getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)}
        )
    return None


@dataclasses.dataclass
class RunResult:
    """Outputs of one :meth:`Lens.run`.

    Attributes
    ----------
    baseline : Any
        ``model(x)`` with every edit off (cached per input), or ``None`` when
        the run was made with ``baseline=False``.
    edited : Any
        ``model(x)`` with the enabled edits applied; same structure as baseline.
    clean : dict of str to Tensor
        For each site of ``run(..., capture=...)``: its clean activation (element 0 of
        its output, detached), kept from the cached baseline pass.
    acts : dict of str to Tensor
        For each captured site: its activation in the edited pass (after the site's edits).
    """

    baseline: Any
    edited: Any
    clean: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    acts: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    @property
    def delta(self) -> Any:
        """``edited - baseline`` for every tensor of the output."""
        if self.baseline is None:
            raise ValueError("this run was made with baseline=False; run with baseline=True to get a delta")
        return tree_map2(lambda e, b: e - b, self.edited, self.baseline)


class _Site:
    """Hook and edit state of one bound site."""

    __slots__ = ("active", "edits", "handle", "module", "name")

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.edits: list[Edit] = []
        # enabled edits grouped by element: ((element, (edit, ...)), ...); empty = hook returns at once
        self.active: tuple[tuple[int | str, tuple[Edit, ...]], ...] = ()
        self.handle: Any = None

    def refresh(self) -> None:
        groups: dict[int | str, list[Edit]] = {}
        for e in self.edits:
            if e.enabled:
                groups.setdefault(e.element, []).append(e)
        self.active = tuple((el, tuple(es)) for el, es in groups.items())

    def apply(self, output: Any) -> Any:
        for element, edits in self.active:
            h = get_element(output, element)
            for e in edits:
                try:
                    h = e.apply(h)
                except (ValueError, SiteError, RuntimeError) as exc:
                    raise EditError(f"edit {e.name!r} at site {self.name!r} failed: {exc}") from None
            output = set_element(output, element, h)
        return output


class Lens:
    """Live, leak-free hooks on a model, with edits as state.

    Parameters
    ----------
    model : nn.Module
        Any PyTorch module. Its parameters and buffers are never changed.
    sites : str or list of str, optional
        Module paths or glob patterns to bind now; sites are also bound on
        first use by :meth:`edit`.
    example : Any, optional
        An example input; the lens runs it once to learn every site's shape.
    resume : bool
        Reuse clean activations: when edits sit at late sites, recompute only
        the layers after them (see :attr:`resume_info`). Results equal a full
        forward; models ``torch.fx`` cannot trace fall back to full forwards.

    Notes
    -----
    One persistent wrapper of ``forward`` is installed per bound site (an
    instance attribute, which keeps torch's no-hook fast path: cheaper than a
    forward hook) and stays until :meth:`close`; with no enabled edit at a
    site it returns the module's output at once. While
    the lens is open, enabled edits act on *every* forward of the model,
    your own ``model(x)`` calls included (that is what makes steering live);
    use :meth:`off` or ``lens.run(x).baseline`` for clean outputs. A new
    Lens on the same model closes the previous one, so re-running a notebook
    cell never stacks hooks. Runs use ``torch.no_grad()`` and eval mode (the
    model's mode is restored afterwards).

    Examples
    --------
    >>> with Lens(model) as lens:                          # doctest: +SKIP
    ...     lens.edit("hidden", Ablate([3, 7]))
    ...     r = lens.run(x)
    ...     r.delta
    """

    def __init__(
        self, model: nn.Module, sites: str | Sequence[str] | None = None, *, example: Any = None, resume: bool = True
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Lens needs a torch.nn.Module, got {type(model).__name__}")
        previous = _LIVE.get(model)
        if previous is not None and previous is not self:
            previous._close(replaced=True)
        _LIVE[model] = self
        self.model = model
        self._sites: dict[str, _Site] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._probed_signature: Any = None
        self._bypass = False
        self._closed: str | None = None
        # the last few baselines (e.g. a widget's single input and its cohort, which alternate):
        # key -> (inputs, clean output, values kept for resuming, clean site activations)
        # key -> (inputs, {output picker or None: clean output}, values kept for resuming, clean activations)
        self._baselines: collections.OrderedDict[Any, tuple[Any, dict[Any, Any], Any, dict[str, torch.Tensor]]] = (
            collections.OrderedDict()
        )
        self._baseline_sizes: dict[Any, int] = {}
        # one thread at a time; a background (preemptible) run gives way to a waiting call
        self._lock = threading.RLock()
        self._gate = threading.Lock()
        self._waiting = 0
        self._owner: int | None = None
        self._owners: list[int | None] = []  # the owners that nested holds replaced
        self._active: frozenset[str] | None = None  # sites with enabled edits; None: recompute (see _changed)
        self._holds = (_Hold(self, False), _Hold(self, True))
        # site activations recorded by the site wrappers during one pass (see _recording)
        self._record: dict[str, torch.Tensor] | None = None
        self._record_sites: frozenset[str] = frozenset()
        # replay resume (models torch.fx cannot trace): per input signature, and its failures
        self._replays: dict[Any, Replay | None] = {}
        self._replay_ok: dict[str, bool] = {}
        self._replay_error: str | None = None
        self._probed_signatures: set[Any] = set()
        self._resume = bool(resume)
        self._plan: Plan | None = None
        self._plan_failed: frozenset[str] | None = None
        self._plan_error: str | None = None if resume else "resume switched off (Lens(..., resume=False))"
        self._clean_vals: Any = None
        self._splits: dict[str, Any] = {}
        self._plan_checked = False
        self._checked_ref: Any = None
        self._checked_key: Any = None
        if sites is not None:
            for s in resolve_sites(model, list(sites) if not isinstance(sites, str) else sites):
                self.bind(s)
        if example is not None:
            self.probe(example)

    # ------------------------------------------------------------------ sites
    def sites(self) -> list[SiteInfo]:
        """Every hookable module path with its type and (once known) output shape."""
        out = []
        for name, module in self.model.named_modules():
            if not name:
                continue
            st = self._sites.get(name)
            out.append(
                SiteInfo(
                    name, type(module).__name__, self._shapes.get(name), st is not None, len(st.edits) if st else 0
                )
            )
        return out

    def shape(self, site: str) -> tuple[int, ...] | None:
        """Output shape of ``site`` at the last probe, or ``None`` if not yet seen."""
        resolve_site(self.model, site)
        return self._shapes.get(site)

    def width(self, site: str, feature_dim: int | None = None) -> int | None:
        """Number of features at ``site`` along ``feature_dim`` (None if unknown)."""
        shape = self.shape(site)
        if shape is None:
            return None
        fd = feature_dim if feature_dim is not None else (1 if len(shape) == 4 else -1)
        return int(shape[fd])

    def bind(self, site: str) -> None:
        """Register the (single, persistent) hook on ``site`` if not yet bound."""
        self._check_open()
        if site in self._sites:
            return
        module = resolve_site(self.model, site)
        st = _Site(site, module)

        # An instance-level forward wrapper rather than a forward hook: any hook moves
        # Module._call_impl off its no-hook fast path (~5 µs a call); this costs ~1 µs.
        # `inner` is an instance-level forward installed before ours (another Lens's, or the user's).
        wrapper = _Forward(module, st, self, module.__dict__.get("forward"))
        module.forward = wrapper
        st.handle = wrapper
        self._sites[site] = st

    @property
    def bound(self) -> list[str]:
        """Paths of the bound sites."""
        return list(self._sites)

    def probe(self, inputs: Any) -> dict[str, tuple[int, ...]]:
        """Run ``inputs`` once (edits off) and record every module's output shape."""
        with self._hold():
            self._check_open()
            self._probe_run(inputs)
            return dict(self._shapes)

    def _probe_run(self, inputs: Any) -> Any:
        """Clean forward that also records every module's output shape; returns the output."""
        shapes: dict[str, tuple[int, ...]] = {}
        handles = []

        def make(name: str) -> Any:
            def rec(_m: nn.Module, _a: Any, out: Any) -> None:
                try:
                    shapes[name] = tuple(get_element(out, 0).shape)
                except SiteError:
                    pass

            return rec

        try:
            for name, m in self.model.named_modules():
                if name:
                    handles.append(m.register_forward_hook(make(name)))
            with self._clean():
                out = self._forward(inputs)
        finally:
            for h in handles:
                h.remove()
        self._shapes = shapes
        self._probed_signature = _signature(inputs)
        self._probed_signatures.add(self._probed_signature)
        for st in self._sites.values():
            for e in st.edits:
                self._check_op(st.name, e.op, e.basis, e.feature_dim, e.element)
        return out

    # ------------------------------------------------------------------ edits
    def edit(
        self,
        site: str,
        op: Op,
        *,
        basis: Basis | None = None,
        element: int | str = 0,
        feature_dim: int | None = None,
        enabled: bool = True,
        name: str | None = None,
    ) -> Edit:
        """Add an edit at ``site`` and return it.

        Parameters
        ----------
        site : str
            Module path; bound on first use.
        op : Op
            ``Ablate``, ``MeanAblate``, ``Scale``, ``Clamp``, ``Steer`` or ``ProjectOut``.
            A ``MeanAblate(..., reference=X)`` gets its mean computed here and stored.
        basis : Basis, optional
            ``Neurons()`` (default) or ``Directions(vectors, names)``.
        element : int or str
            Element of a structured output to edit (0 = first tuple entry).
        feature_dim : int, optional
            Feature axis (default: last axis, or 1 for 4-D activations).
        enabled : bool
            Start switched on.
        name : str, optional
            Label for display and export.

        Raises
        ------
        SiteError
            Unknown site (with close matches).
        ValueError
            The op does not fit the site (checked as soon as the site's shape is known).
        """
        self._check_open()
        resolve_site(self.model, site)
        if (isinstance(op, MeanAblate) and op.mean is None) or (isinstance(op, Resample) and op.pool is None):
            op, name = self._from_reference(site, op, basis, element, feature_dim, name)
        e = Edit(site, op, basis=basis, element=element, feature_dim=feature_dim, enabled=enabled, name=name)
        return self.add(e)

    def _from_reference(
        self, site: str, op: Op, basis: Basis | None, element: int | str, feature_dim: int | None, name: str | None
    ) -> tuple[Op, str | None]:
        """Turn a reference-based MeanAblate/Resample into one that stores its statistics."""
        reference = getattr(op, "_reference", None)
        if reference is None:
            raise ValueError(f"{type(op).__name__} needs reference=batch of inputs (or its statistics)")
        acts = self._reference_acts(site, reference, element, feature_dim)
        width = int(acts.shape[-1])
        b = basis if basis is not None else Neurons()
        idx = [b.index(f, width) for f in op.features]  # type: ignore[attr-defined]
        if isinstance(op, Resample):
            return Resample(op.features, pool=coordinates(b, width, idx, acts), seed=op.seed), name
        if isinstance(b, SAE):  # the mean of the codes, not the codes of the mean
            means = coordinates(b, width, idx, acts).double().mean(0).float()
            return Clamp(op.features, value=means), name or f"mean_ablate@{site}"
        return MeanAblate(op.features, mean=acts.double().mean(0).float()), name

    def _reference_acts(
        self, site: str, reference: Any, element: int | str, feature_dim: int | None, chunk: int = 1024
    ) -> torch.Tensor:
        """Clean activations at ``site`` over ``reference``, features last, flattened to ``(n, width)``."""
        if element != 0:
            raise ValueError("reference statistics support element 0 only; pass the statistics explicitly")
        if isinstance(reference, torch.Tensor) and reference.ndim > 0 and reference.shape[0] > chunk:
            parts = [
                self.activations(reference[i : i + chunk], site)[site] for i in range(0, reference.shape[0], chunk)
            ]
            acts = torch.cat(parts)
        else:
            acts = self.activations(reference, site)[site]
        fd = feature_dim if feature_dim is not None else (1 if acts.ndim == 4 else -1)
        return acts.movedim(fd, -1).reshape(-1, acts.shape[fd])

    def add(self, edit: Edit) -> Edit:
        """Attach an existing :class:`Edit` (e.g. from :meth:`Edit.from_dict`)."""
        with self._hold():
            return self._add(edit)

    def _add(self, edit: Edit) -> Edit:
        self._check_open()
        if edit._lens is not None and edit._lens is not self:
            raise ValueError("this edit belongs to another Lens; rebuild it with Edit.from_dict(edit.to_dict())")
        self._check_op(edit.site, edit.op, edit.basis, edit.feature_dim, edit.element)
        self.bind(edit.site)
        st = self._sites[edit.site]
        if edit not in st.edits:
            st.edits.append(edit)
        edit._lens = self
        st.refresh()
        self._active = None
        return edit

    def remove(self, edit: Edit) -> None:
        """Detach ``edit`` (its site stays bound)."""
        with self._hold():
            st = self._sites.get(edit.site)
            if st is not None and edit in st.edits:
                st.edits.remove(edit)
                st.refresh()
                self._active = None
            edit._lens = None

    def clear(self, site: str | None = None) -> None:
        """Remove every edit (or every edit at ``site``)."""
        for e in list(self.edits):
            if site is None or e.site == site:
                self.remove(e)

    @property
    def edits(self) -> list[Edit]:
        """All edits, site by site, in the order they apply."""
        return [e for st in self._sites.values() for e in st.edits]

    def _on_edit_changed(self, edit: Edit, change: Any) -> None:
        """Apply ``change()`` to one of this lens's edits: a run in another thread (using the old
        state) finishes or gives way first; then the edit's site state is refreshed."""
        with self._hold():
            change()
            st = self._sites.get(edit.site)
            if st is not None:
                st.refresh()
                self._active = None

    def _check_op(self, site: str, op: Op, basis: Basis, feature_dim: int | None, element: int | str) -> None:
        resolve_site(self.model, site)
        if element != 0:
            return  # shapes are probed for element 0 only; checked at run time
        width = self.width(site, feature_dim)
        if width is not None:
            try:
                op.check(width, basis)
            except ValueError as exc:
                raise EditError(f"edit at site {site!r}: {exc}") from None

    # ------------------------------------------------------------------ runs
    def run(
        self,
        inputs: Any,
        *,
        baseline: bool = True,
        capture: str | Sequence[str] | None = None,
        preemptible: bool = False,
        output: Callable[[Any], Any] | None = None,
    ) -> RunResult:
        """Run the model on ``inputs`` with edits off (baseline) and on (edited).

        Parameters
        ----------
        inputs : Tensor, dict or Any
            A tensor is passed as ``model(inputs)``; a dict as ``model(**inputs)``.
        baseline : bool
            Also return the unedited output (cached until the input changes).
        capture : str or list of str, optional
            Sites (bound if they are not yet) whose activations to return as well: their
            clean values in ``result.clean`` (from the cached baseline pass) and their edited
            values in ``result.acts`` (from the same edited pass) — what one interactive
            update needs, without extra forward passes.
        preemptible : bool
            A background run (e.g. a cohort computed chunk by chunk while the user drags a
            slider): when another thread calls this lens meanwhile, the run stops at its
            next module call and raises :class:`Preempted`, so the other call waits about
            one layer, not the whole run. Nothing is cached from a preempted run.
        output : callable, optional
            Applied to the clean and the edited model output before they are returned
            (e.g. ``lambda o: o.logits[:, -1]``). The cached baseline then keeps only
            ``output(clean)``, not the whole output — a language model's logits at every
            position are hundreds of MB per batch — so the lens can keep the baselines of
            many inputs (a cohort in chunks) within its memory budget. Pass the same function
            object each time: the cache knows it by identity.

        Returns
        -------
        RunResult
            ``baseline``, ``edited``, ``delta`` and the captured ``clean``/``acts``.

        Raises
        ------
        InputError
            NaN/Inf, or a dtype or device the model does not use.
        EditError
            An edit does not fit its site.
        ModelError
            The model itself raised.
        Preempted
            Only with ``preemptible=True``: another thread needed the lens.
        """
        # the hot path of every slider move: the lock as _Hold takes it, inlined, and nothing optional
        # (preemption, capture, eval mode) costs a context manager unless it is asked for
        me, lock = threading.get_ident(), self._lock
        if self._owner == me or preemptible:
            lock.acquire()
        elif not lock.acquire(blocking=False):
            self._wait_for_lock()
        outer, self._owner = self._owner, me
        try:
            if self._closed is not None:
                self._check_open()
            if self._checked_ref is not inputs or self._checked_key != _version(inputs):
                self._check_input(inputs)
            names = self._capture_names(capture) if capture is not None else []
            if not preemptible:
                return self._run(inputs, baseline, names, output)
            with self._preemption(True):
                return self._run(inputs, baseline, names, output)
        finally:
            self._owner = outer
            lock.release()

    def _run(self, inputs: Any, baseline: bool, names: list[str], output: Callable[[Any], Any] | None) -> RunResult:
        """:meth:`run` inside the lens's lock, its input checked."""
        base = self._baseline(inputs, names, output) if baseline or names else None
        clean = dict(self._baseline_acts(inputs, names)) if names else {}
        active = self._active
        if active is None:  # recomputed after an edit changed (every change refreshes a site under the lock)
            active = self._active = frozenset([name for name, st in self._sites.items() if st.active])
        if not active and base is not None:
            return RunResult(base if baseline else None, base, clean, dict(clean))
        if not names and not self.model.training:
            return RunResult(base if baseline else None, self._edited(inputs, active, base, output), clean, {})
        with self._mode(), self._recording(names) as got:
            edited = self._edited(inputs, active, base, output)
        return RunResult(base if baseline else None, edited, clean, {n: got.get(n, clean[n]) for n in names})

    def _capture_names(self, capture: str | Sequence[str] | None) -> list[str]:
        if capture is None:
            return []
        names = resolve_sites(self.model, [capture] if isinstance(capture, str) else list(capture))
        for n in names:
            self.bind(n)
        return names

    def _edited(self, inputs: Any, active: frozenset[str], base: Any, output: Callable[[Any], Any] | None) -> Any:
        """The edited output (picked by ``output``; ``base`` is picked already)."""
        edited = self._resumed(inputs, active, base) if base is not None else _MISSING
        if edited is _MISSING:
            edited = self._forward(inputs)
        elif edited is base:
            return base
        return edited if output is None else output(edited)

    @property
    def resume_info(self) -> str:
        """How runs with edits are computed: resumed from sites, or why full forwards are used."""
        if self._plan is not None:
            return f"resume from sites via torch.fx (traced with {len(self._plan.sites)} bound sites)"
        if self._splits:
            return f"resume via declared splits at {sorted(self._splits)}; " + (self._plan_error or "")
        good = sorted(s for s, ok in self._replay_ok.items() if ok and s in self._sites)
        if good:
            return (
                f"resume by replaying the modules that run before {good} (cached clean outputs; "
                f"torch.fx: {self._plan_error or 'not tried'})"
            )
        if self._replay_error:
            return f"{self._plan_error or 'full forwards'}; replay: {self._replay_error}"
        return self._plan_error or "no input seen yet"

    def declare_split(self, site: str, rest: Any) -> None:
        """Declare how the model continues after ``site``, for models ``torch.fx`` cannot trace.

        Parameters
        ----------
        site : str
            A module path; bound now.
        rest : callable
            ``rest(site_output) -> model output``: the rest of the forward pass
            from the site's (structured) output. When every enabled edit is at
            ``site``, runs apply them to the cached clean site output and call
            ``rest`` instead of the whole model. You vouch that it matches the
            model's forward.
        """
        if not callable(rest):
            raise TypeError("rest must be a callable taking the site's output and returning the model's output")
        self.bind(site)
        self._splits[site] = rest
        self._baseline_key = None
        self._baselines.clear()

    def rest(self, site: str, example: Any) -> Any:
        """The rest of the model after ``site``, as a callable ``rest(site_output) -> model output``, or ``None``.

        A split declared with :meth:`declare_split` is returned as is. Otherwise the lens's fx trace
        gives the program, when the model's output depends on nothing but the site's output (no skip
        connection around the site); ``None`` when there is no such program (untraceable model, or
        other values feed the rest). Use it to run many edited versions of kept site activations
        without re-running the layers before the site (as ``FeatureDashboard`` does); edits at
        other sites are not applied inside it, so call it under :meth:`off` for clean outputs.

        Parameters
        ----------
        site : str
            Module path (bound if it is not yet).
        example : tensor
            An input of the model (a couple of rows suffice) to trace with.
        """
        self.bind(site)
        program = self._splits.get(site)
        if program is not None:
            return program
        plan = self._plan_for(example)
        tail = plan.tail(frozenset({site})) if plan is not None else None
        if tail is None:
            return None
        program, front = tail
        if len(front) != 1 or front[0] is not plan.node_of(site):
            return None
        return program

    def _resumed(self, inputs: Any, active: frozenset[str], base: Any) -> Any:
        """The edited output computed from cached clean values, or ``_MISSING`` for a full forward."""
        vals = self._clean_vals
        if vals is None:
            return _MISSING
        if isinstance(vals, _ReplayVals):
            return self._replayed(inputs, active, vals)
        plan = self._plan
        if plan is not None and plan.sites == frozenset(self._sites):
            tail = plan.tail(active)
            if tail is None:
                return base
            program, front = tail
            args = []
            for f in front:
                v = vals[f]
                if f.op == "call_module" and f.target in active:
                    v = self._sites[f.target].apply(v)
                    self._note(str(f.target), v)
                args.append(v)
            return self._guard_model(lambda: program(*args))
        if len(active) == 1:
            (site,) = active
            if site in self._splits and site in vals:
                rest = self._splits[site]
                edited = self._sites[site].apply(vals[site])
                self._note(site, edited)
                return self._guard_model(lambda: rest(edited))
        return _MISSING

    def _replayed(self, inputs: Any, active: frozenset[str], vals: _ReplayVals) -> Any:
        """The edited output by replaying the modules before the first edited site (see :mod:`.replay`)."""
        site = vals.start(active)
        if site is None:
            return _MISSING
        with vals.replay.replaying(site, vals.cache) as r:
            out = self._forward(inputs)
        if r.written():  # the model wrote into a cached value: the cache is spoilt, replay is unsafe here
            self._replay_ok[site] = vals.replay.checked[site] = False
            self._replay_error = f"the model writes in place into outputs of modules before {site!r}"
            self._baselines.clear()
            self._clean_vals = None
            return self._forward(inputs)
        return out

    def activations(self, inputs: Any, sites: str | Sequence[str], *, edited: bool = False) -> dict[str, torch.Tensor]:
        """Activations (element 0) at ``sites`` for ``inputs``, clean unless ``edited``."""
        return self.trace(inputs, sites, edited=edited)[1]

    def trace(
        self, inputs: Any, sites: str | Sequence[str], *, edited: bool = False
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """One forward pass: the model's output and the activations (element 0) at ``sites``.

        Clean (every edit off) unless ``edited``. For callers that need both, e.g. a
        dashboard reading the outputs and the site's codes of each chunk of inputs in one
        pass; the temporary hooks are removed before it returns.
        """
        with self._hold():
            return self._trace(inputs, sites, edited=edited)

    def _trace(self, inputs: Any, sites: str | Sequence[str], *, edited: bool = False) -> tuple[Any, dict[str, Any]]:
        self._check_open()
        self._check_input(inputs)
        names = resolve_sites(self.model, [sites] if isinstance(sites, str) else list(sites))
        got: dict[str, torch.Tensor] = {}
        handles = []

        def make(name: str) -> Any:
            def rec(_m: nn.Module, _a: Any, out: Any) -> None:
                got[name] = get_element(out, 0).detach()
                self._shapes[name] = tuple(got[name].shape)

            return rec

        try:
            for n in names:
                handles.append(resolve_site(self.model, n).register_forward_hook(make(n)))
            with self._mode() if edited else self._clean():
                out = self._forward(inputs)
        finally:
            for h in handles:
                h.remove()
        return out, got

    def mean(self, site: str, reference: Any, *, feature_dim: int | None = None) -> torch.Tensor:
        """Mean clean activation at ``site`` over a reference batch (all axes but the feature axis)."""
        return self._reference_acts(site, reference, 0, feature_dim).double().mean(0).float().cpu()

    def sweep(
        self,
        site: str,
        inputs: torch.Tensor,
        *,
        features: Sequence[int | str] | None = None,
        op: Any = "ablate",
        basis: Basis | None = None,
        feature_dim: int | None = None,
        readout: Any = None,
        reference: torch.Tensor | None = None,
        batch_size: int = 8192,
        progress: Any = False,
    ) -> torch.Tensor:
        """Effect of each single-feature edit at ``site`` on every input, batched.

        Returns a tensor ``(n_features, n_inputs, *readout_shape)`` of
        ``readout(edited) - readout(baseline)``; equal to a loop of single
        runs, computed by stacking edits along the batch and resuming from the
        site. See :func:`superwidgets.engine.sweep.sweep` for the parameters.
        """
        with self._hold():
            return run_sweep(
                self,
                site,
                inputs,
                features=features,
                op=op,
                basis=basis,
                feature_dim=feature_dim,
                readout=readout,
                reference=reference,
                batch_size=batch_size,
                progress=progress,
            )

    # ------------------------------------------------------------------ edit sets
    def save_edits(self, path: str | Path) -> Path:
        """Save every edit as ``PATH.json`` + ``PATH.safetensors``; returns the JSON path."""
        return save_edits(self.edits, path)

    def load_edits(self, path: str | Path, *, saes: dict[str, Any] | None = None, replace: bool = True) -> list[Edit]:
        """Load an edit set saved by :meth:`save_edits` (replacing the current edits unless ``replace=False``).

        All or nothing: every edit is checked against this lens's model (site names, widths)
        before any is attached, and if anything fails the lens keeps exactly the edits it had.
        """
        self._check_open()
        loaded = load_edits(path, saes)
        for i, e in enumerate(loaded):
            try:
                self._check_op(e.site, e.op, e.basis, e.feature_dim, e.element)
            except (SiteError, EditError) as exc:
                raise type(exc)(f"{path}: edit {i} ({e.name!r}) does not fit this model: {exc}") from None
        before = [(e, e.enabled) for e in self.edits]
        try:
            if replace:
                self.clear()
            return [self.add(e) for e in loaded]
        except BaseException:
            self.clear()
            for e, enabled in before:
                self.add(e)
                e.enabled = enabled
            raise

    def to_code(self, *, model: str = "model", inputs: str | None = None) -> str:
        """Python source that rebuilds this lens's edits and reproduces its numbers (see :func:`edits_to_code`)."""
        return edits_to_code(self.edits, model=model, inputs=inputs)

    @contextlib.contextmanager
    def off(self) -> Iterator[None]:
        """Switch every edit off for the duration of a ``with`` block (your own ``model(x)`` calls run clean)."""
        self._check_open()
        with self._hold(), self._clean():
            yield

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Remove every hook and edit. Safe to call twice."""
        with self._hold():
            self._close(replaced=False)

    @staticmethod
    def current(model: nn.Module) -> Lens | None:
        """The open Lens on ``model``, or ``None`` (at most one is open per model; a new one replaces it)."""
        lens = _LIVE.get(model)
        return lens if lens is not None and not lens.closed else None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or a newer Lens replaced this one)."""
        return self._closed is not None

    def _close(self, replaced: bool) -> None:
        if self._closed is not None:
            return
        self._active = None
        for st in self._sites.values():
            st.active = ()
            if st.handle is not None:
                st.handle.remove()
                st.handle = None
            for e in st.edits:
                e._lens = None
        self._sites.clear()
        self._baseline_key = self._baseline_ref = self._baseline_out = None
        self._baselines.clear()
        self._closed = "replaced by a newer Lens on the same model" if replaced else "closed"
        if _LIVE.get(self.model) is self:
            del _LIVE[self.model]

    def __enter__(self) -> Lens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f", {self._closed}" if self._closed else ""
        return f"Lens({type(self.model).__name__}, sites={self.bound}, edits={len(self.edits)}{state})"

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed is not None:
            raise LensClosedError(f"this Lens was {self._closed}; create a new one with sw.Lens(model)")

    def _check_input(self, inputs: Any) -> None:
        if self._checked_ref is inputs and self._checked_key == _version(inputs):
            return  # the same input object, unchanged since its last check (a slider's case)
        tensors = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
        dtype, device = self._expected_input()
        for t in tensors:
            if not isinstance(t, torch.Tensor):
                continue
            # one reduction first: a finite sum proves there is no NaN or Inf
            if t.is_floating_point() and not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
                raise InputError("the input contains NaN or Inf; clean or impute it before running the model")
            if dtype is not None and t.is_floating_point() and t.dtype != dtype:
                raise InputError(
                    f"the input has dtype {t.dtype} but the model's parameters are {dtype}; "
                    f"convert it with x.to({dtype})"
                )
            if device is not None and t.device != device:
                raise InputError(
                    f"the input is on {t.device} but the model is on {device}; move it with x.to('{device}')"
                )
        self._checked_ref, self._checked_key = inputs, _version(inputs)

    def _expected_input(self) -> tuple[torch.dtype | None, torch.device | None]:
        """The dtype and device inputs must have (``None``: not checked).

        Models dispatched with ``accelerate`` keep offloaded weights on the ``meta`` device and
        move inputs themselves (a root hook with an execution device): then only the dtype is
        checked, or the device accelerate runs the modules on when every weight is offloaded.
        """
        first = next(iter(self.model.parameters()), None)
        if first is None:
            return None, None
        root = getattr(self.model, "_hf_hook", None)
        if getattr(root, "execution_device", None) is not None:
            return first.dtype, None  # accelerate's root hook moves inputs itself
        device = next((p.device for p in self.model.parameters() if p.device.type != "meta"), None)
        if device is None:  # every weight offloaded: where accelerate runs the modules
            dev = next(
                (
                    m._hf_hook.execution_device
                    for m in self.model.modules()
                    if getattr(getattr(m, "_hf_hook", None), "execution_device", None) is not None
                ),
                None,
            )
            device = None if dev is None else torch.device(dev)
        return first.dtype, device

    def _forward(self, inputs: Any) -> Any:
        try:
            with torch.no_grad():
                return self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)
        except (EditError, LensClosedError, Preempted):
            raise
        except Exception as exc:  # the model's own failure, re-raised with context
            hint = self._dtype_hint(inputs, exc) or self._shape_hint(inputs)
            raise ModelError(f"the model raised {type(exc).__name__}: {exc}{hint}") from exc

    def _dtype_hint(self, inputs: Any, exc: Exception) -> str:
        """A hint when an integer input (a uint8 or int64 image batch) reached float layers."""
        ref = next(iter(self.model.parameters()), None)
        tensors = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
        ints = [
            t for t in tensors if isinstance(t, torch.Tensor) and not t.is_floating_point() and t.dtype != torch.bool
        ]
        if ref is None or not ref.is_floating_point() or not ints or "type" not in str(exc).lower():
            return ""
        scale = " / 255 (uint8 pixel values 0–255)" if ints[0].dtype == torch.uint8 else ""
        return (
            f". The input is an integer tensor ({ints[0].dtype}) and the model computes in {ref.dtype}: "
            f"convert it with x.to({ref.dtype}){scale} (token ids for an embedding layer can stay integers)"
        )

    def _shape_hint(self, inputs: Any) -> str:
        """A hint when the input's shape differs from one the model ran on before."""
        seen = self._probed_signature
        if not isinstance(inputs, torch.Tensor) or not isinstance(seen, tuple) or len(seen) != 2:
            return ""
        shape = tuple(inputs.shape)
        if not isinstance(seen[0], tuple) or seen[0][1:] == shape[1:]:
            return ""
        want = "×".join(map(str, seen[0][1:]))
        return (
            f". The model ran on inputs of shape (batch, {want}) before; this one is "
            f"(batch, {'×'.join(map(str, shape[1:]))}): check its size and channel count"
        )

    @staticmethod
    def _guard_model(fn: Any) -> Any:
        """Run ``fn`` without grad; the model's own failures become :class:`ModelError`."""
        try:
            with torch.no_grad():
                return fn()
        except (EditError, LensClosedError, Preempted):
            raise
        except Exception as exc:  # the model's own failure, re-raised with context
            raise ModelError(f"the model raised {type(exc).__name__}: {exc}") from exc

    def _plan_for(self, inputs: Any) -> Plan | None:
        """The fx plan for the current bound sites, built on demand; ``None`` if unavailable."""
        if not self._resume or not self._sites:
            return None
        if not isinstance(inputs, torch.Tensor):
            self._plan_error = "full forwards: resume needs a single tensor input (dict inputs run the whole model)"
            return None
        sites = frozenset(self._sites)
        if self._plan is not None and self._plan.sites == sites:
            return self._plan
        if self._plan_failed == sites:
            return None
        try:
            self._plan = Plan(self.model, sites)
            self._plan_error = None
            self._plan_checked = False
        except PlanError as exc:
            self._plan, self._plan_failed, self._plan_error = None, sites, f"full forwards: {exc}"
        return self._plan

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        """Eval mode for the duration of a run; the model's mode is restored."""
        training = self.model.training
        if training:
            self.model.eval()
        try:
            yield
        finally:
            if training:
                self.model.train(True)

    @contextlib.contextmanager
    def _clean(self) -> Iterator[None]:
        """Edits off (hooks return at once) and eval mode; nests (the outer state is restored)."""
        outer = self._bypass
        self._bypass = True
        try:
            with self._mode():
                yield
        finally:
            self._bypass = outer

    def _state_key(self) -> tuple[Any, ...]:
        """A fingerprint of every parameter and buffer, so a cached baseline is never stale.

        Version counters and storage pointers catch in-place ops, ``load_state_dict`` and
        reassignment; they miss ``p.data.mul_(...)`` (``.data`` has its own counter) and
        BatchNorm's running statistics (updated inside the kernel), so each tensor's sum is
        part of the key too: one read of the weights, a few per cent of a forward pass
        (``docs/BENCHMARKS.md`` §baseline cache).
        """
        tensors = [*self.model.parameters(), *self.model.buffers()]
        sums: dict[tuple[torch.device, bool], list[torch.Tensor]] = {}
        with torch.no_grad():
            for t in tensors:
                if t.device.type != "meta":  # offloaded weights (accelerate) have no values here
                    exact = t.dtype in (torch.float32, torch.int64)  # else sum in float32 (fp16 would overflow)
                    s = t.sum() if exact else t.sum(dtype=torch.float32)
                    sums.setdefault((t.device, s.dtype == torch.int64), []).append(s)
            values = tuple(tuple(torch.stack(v).tolist()) for v in sums.values())
        return tuple((t._version, t.data_ptr()) for t in tensors), values

    def _baseline(self, inputs: Any, names: Sequence[str] = (), pick: Callable[[Any], Any] | None = None) -> Any:
        """The clean output of ``inputs`` (cached), keeping what resuming needs and the clean
        activations of ``names`` (see :meth:`_baseline_acts`); ``pick(output)`` instead when given
        (the cache then keeps only that: see :meth:`run`'s ``output``)."""
        key = (id(inputs), _version(inputs), self._state_key(), frozenset(self._sites))
        hit = self._baselines.get(key)
        if hit is not None and hit[0] is inputs:
            outs = hit[1]
            if pick not in outs and None in outs and pick is not None:
                outs[pick] = _compact(pick(outs[None]))
            if pick in outs:
                self._baselines.move_to_end(key)
                self._clean_vals = hit[2]
                return outs[pick]
        out = self._probe_run(inputs) if _signature(inputs) not in self._probed_signatures else _MISSING
        vals: Any = None
        plan = self._plan_for(inputs)
        with self._recording(names) as acts:
            if plan is not None:
                with self._clean():
                    captured, vals = self._guard_model(lambda: plan.capture(inputs))
                if not self._plan_checked:  # once per plan: the trace must reproduce the model
                    if out is _MISSING:
                        with self._clean():
                            out = self._forward(inputs)
                    if not _same(captured, out):
                        self._plan, self._plan_failed = None, frozenset(self._sites)
                        self._plan_error = "full forwards: the traced graph's output differs from model(x)"
                        vals = None
                    self._plan_checked = True
                if out is _MISSING or vals is None:
                    out = captured
            elif self._splits:
                split_names = [s for s in self._splits if s in self._sites]
                with self._clean():
                    out, vals = self._capture_sites(inputs, split_names)
            else:
                replay = self._replay_for(inputs)
                good = [s for s in self._sites if replay is not None and self._check_route(replay, s, inputs)]
                if good:
                    assert replay is not None
                    with self._clean(), replay.recorder(good) as cache:
                        out = self._forward(inputs)
                    vals = _ReplayVals(replay, cache, good)
            if out is _MISSING:
                with self._clean():
                    out = self._forward(inputs)
            acts = dict(acts)
        self._clean_vals = vals
        outs = {None: out} if pick is None else {pick: _compact(pick(out))}
        self._baselines.pop(key, None)
        self._baselines[key] = (inputs, outs, vals, acts)
        self._baseline_sizes[key] = _nbytes((outs, vals, acts))
        self._trim_baselines()
        return outs[pick]

    def _trim_baselines(self) -> None:
        """Drop the least recently used baselines beyond the memory budget (at least two are kept)."""
        sizes = self._baseline_sizes
        for k in [k for k in sizes if k not in self._baselines]:
            del sizes[k]
        total = sum(sizes.values())
        while len(self._baselines) > _BASELINES_KEPT and (
            total > _BASELINE_BYTES or len(self._baselines) > _BASELINES_MAX
        ):
            k, _ = self._baselines.popitem(last=False)
            total -= sizes.pop(k, 0)

    def _baseline_acts(self, inputs: Any, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Clean activations of ``names`` for the cached baseline of ``inputs`` (traced once if missing)."""
        entry = next((v for v in reversed(self._baselines.values()) if v[0] is inputs), None)
        acts = entry[3] if entry is not None else {}
        missing = [n for n in names if n not in acts]
        if missing:
            acts.update(self._trace(inputs, missing)[1])
        return {n: acts[n] for n in names}

    @contextlib.contextmanager
    def _recording(self, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Collect element 0 of ``names``' outputs (after their edits) during the passes in the block."""
        outer, outer_sites = self._record, self._record_sites
        got: dict[str, torch.Tensor] = {}
        self._record, self._record_sites = (got, frozenset(names)) if names else (None, frozenset())
        try:
            yield got
        finally:
            self._record, self._record_sites = outer, outer_sites

    def _note(self, site: str, value: Any) -> None:
        """Record a site's value computed outside its wrapper (resumed sites)."""
        if self._record is not None and site in self._record_sites:
            self._record[site] = get_element(value, 0).detach()

    # ------------------------------------------------------------------ replay resume
    def _replay_for(self, inputs: Any) -> Replay | None:
        """The replay structure for inputs of this signature (recorded once), or ``None``."""
        if not self._resume or not self._sites:
            return None
        sig = _signature(inputs, batch=False)
        if sig in self._replays:
            return self._replays[sig]
        replay: Replay | None = None
        try:
            head = _head(inputs)
            with self._clean():
                replay = Replay(self.model, lambda: self._forward(head))
        except (ReplayError, ModelError) as exc:
            self._replay_error = str(exc)
        self._replays[sig] = replay
        return replay

    def _check_route(self, replay: Replay, site: str, inputs: Any) -> bool:
        """Whether replaying from ``site`` reproduces the model (checked once per site on two rows),
        and which cached outputs the replay really reads (the others are kept as shapes only)."""
        ok = replay.checked.get(site)
        if ok is not None:
            return ok
        head = _head(inputs)
        try:
            route = replay.route(site)
            if any(self._inside(replay, route.site_call, s) for s in self._sites if s != site):
                raise ReplayError(f"another bound site is inside {site!r}")
            with self._clean():
                with replay.recorder([site]) as cache:
                    want = self._forward(head)

                def replays(trial: dict[int, Any], why: list[str] | None = None) -> bool:
                    try:
                        with self._clean(), replay.replaying(site, trial) as r:
                            got = self._forward(head)
                    except ModelError as exc:
                        if why is not None:
                            why.append(f"replaying the modules before {site!r} fails: {exc}")
                        return False
                    if r.written():
                        if why is not None:
                            why.append(f"the model writes in place into outputs of modules before {site!r}")
                        return False
                    return _same(got, want)

                why: list[str] = []
                if not replays(cache, why):
                    raise ReplayError(
                        why[0] if why else f"replaying the modules before {site!r} does not reproduce the model"
                    )
                frontier = list(route.frontier)
                if replays({i: replay_holes(v) if i in frontier else v for i, v in cache.items()}):
                    route.needed = set()
                else:
                    needed = {i for i in frontier if not replays({**cache, i: replay_holes(cache[i])})}
                    trial = {i: replay_holes(v) if i in frontier and i not in needed else v for i, v in cache.items()}
                    if not replays(trial):
                        needed = set(frontier)
                    route.needed = needed
            replay.checked[site] = True
        except (ReplayError, ModelError) as exc:
            replay.checked[site] = False
            self._replay_error = str(exc)
        self._replay_ok[site] = replay.checked[site]
        return replay.checked[site]

    def _replay_capture(self, inputs: Any, site: str) -> tuple[Any, Replay, dict[int, Any]] | None:
        """One clean pass keeping what a replay from ``site`` needs: ``(output, replay, cache)``, or ``None``."""
        replay = self._replay_for(inputs)
        if replay is None or not self._check_route(replay, site, inputs):
            return None
        with self._clean(), replay.recorder([site]) as cache:
            out = self._forward(inputs)
        return out, replay, cache

    @staticmethod
    def _inside(replay: Replay, call: int, site: str) -> bool:
        """Whether ``site`` is called inside the call ``call`` (replaying it would skip its edits)."""
        c = replay.calls[call]
        return any(x.name == site and c.start < x.start and x.end < c.end for x in replay.calls)

    # ------------------------------------------------------------------ threads
    def _wait_for_lock(self) -> None:
        """Take the lock held by another thread, counted as waiting (a preemptible run then gives way)."""
        with self._gate:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._gate:
                self._waiting -= 1

    def _hold(self, preemptible: bool = False) -> _Hold:
        """Hold the lens's lock; a foreground caller that has to wait asks a background run to give way."""
        return self._holds[preemptible]

    @contextlib.contextmanager
    def _preemption(self, on: bool) -> Iterator[None]:
        """While ``on``: module calls (the top three levels) check whether another thread waits."""
        if not on:
            yield
            return

        def check(_m: nn.Module, _a: Any) -> None:
            if self._waiting:
                raise Preempted("another call on this lens needed it; run again")

        handles = []
        try:
            for name, m in self.model.named_modules():
                if name and name.count(".") <= 2:
                    handles.append(m.register_forward_pre_hook(check))
            check(self.model, ())
            yield
        finally:
            for h in handles:
                h.remove()

    def _capture_sites(self, inputs: Any, names: list[str]) -> tuple[Any, dict[str, Any]]:
        """One forward that also keeps the (structured) outputs of ``names``."""
        got: dict[str, Any] = {}
        handles = []
        try:
            for n in names:
                handles.append(
                    self._sites[n].module.register_forward_hook(lambda _m, _a, o, n=n: got.__setitem__(n, o))
                )
            out = self._forward(inputs)
        finally:
            for h in handles:
                h.remove()
        return out, got


_MISSING: Any = object()


def _same(a: Any, b: Any) -> bool:
    """Outputs equal up to float round-off (the trace must reproduce the model)."""
    ok = []
    tree_map2(lambda x, y: ok.append(x.shape == y.shape and torch.allclose(x, y, rtol=1e-5, atol=1e-6)), a, b)
    return bool(ok) and all(ok)


def _version(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs._version
    if isinstance(inputs, dict):
        return tuple(v._version if isinstance(v, torch.Tensor) else id(v) for v in inputs.values())
    return None


#: Baselines a Lens always keeps (clean output and captured site values per input), least recently used first out.
_BASELINES_KEPT = 2
#: More are kept while all of them together hold at most this many bytes (e.g. a cohort's chunks
#: run with ``output=``: a next-token readout and the values resuming needs, a few MB per chunk) ...
_BASELINE_BYTES = 512 * 2**20
#: ... and at most this many.
_BASELINES_MAX = 4096


def _compact(obj: Any) -> Any:
    """``obj`` with every tensor that is a view into a larger storage copied out (a picked slice of the
    logits must not keep all of them alive in the cache)."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type != "meta" and obj.untyped_storage().nbytes() > obj.numel() * obj.element_size():
            return obj.clone()
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_compact(v) for v in obj)
    if isinstance(obj, list):
        return [_compact(v) for v in obj]
    if isinstance(obj, dict) and type(obj) is dict:
        return {k: _compact(v) for k, v in obj.items()}
    return obj


def _nbytes(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of the tensors in ``obj`` (nested containers, model outputs, replay values); shared storage once."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "meta":
            return 0
        st = obj.untyped_storage()
        if st.data_ptr() in seen:
            return 0
        seen.add(st.data_ptr())
        return int(st.nbytes())
    if isinstance(obj, dict):
        return sum(_nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, seen) for v in obj)
    if isinstance(obj, _ReplayVals):
        return _nbytes(obj.cache, seen)
    to_tuple = getattr(obj, "to_tuple", None)  # transformers ModelOutput
    if callable(to_tuple):
        try:
            return _nbytes(to_tuple(), seen)
        except Exception:
            return 0
    return 0


def _signature(inputs: Any, *, batch: bool = True) -> Any:
    def shape(t: torch.Tensor) -> tuple[int, ...]:
        return tuple(t.shape) if batch else tuple(t.shape[1:])

    if isinstance(inputs, torch.Tensor):
        return (shape(inputs), inputs.dtype)
    if isinstance(inputs, dict):
        return tuple((k, shape(v), v.dtype) if isinstance(v, torch.Tensor) else (k, type(v)) for k, v in inputs.items())
    return type(inputs)


def _head(inputs: Any, k: int = 2) -> Any:
    """The first ``k`` rows of a batch (a tensor, or a dict of tensors sharing the batch axis)."""
    if isinstance(inputs, torch.Tensor) and inputs.ndim > 0:
        return inputs[:k]
    if isinstance(inputs, dict):
        ts = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.ndim > 0]
        if ts and all(t.shape[0] == ts[0].shape[0] for t in ts):
            return {key: v[:k] if isinstance(v, torch.Tensor) and v.ndim > 0 else v for key, v in inputs.items()}
    return inputs


class _ReplayVals:
    """What a baseline pass kept for replay resume: the structure, the cached outputs, the usable sites."""

    __slots__ = ("cache", "replay", "sites")

    def __init__(self, replay: Replay, cache: dict[int, Any], sites: list[str]) -> None:
        self.replay, self.cache, self.sites = replay, cache, sites

    def start(self, active: frozenset[str]) -> str | None:
        """The edited site to replay from: the first one called; ``None`` when one cannot be replayed."""
        if not active <= set(self.sites):
            return None
        routes = {s: self.replay.route(s) for s in active}
        return min(active, key=lambda s: self.replay.calls[routes[s].site_call].start)


class _Hold:
    """:meth:`Lens._hold` as a plain, reusable object (no generator: it runs on every call of the lens).

    An uncontended foreground call takes the lock at once; one that has to wait counts
    itself in ``lens._waiting`` first, which a preemptible background run polls. The owner
    each hold replaced is kept on the lens's stack (holds nest in one thread, last in first out,
    and the stack changes only under the lock).
    """

    __slots__ = ("lens", "preemptible")

    def __init__(self, lens: Lens, preemptible: bool) -> None:
        self.lens, self.preemptible = lens, preemptible

    def __enter__(self) -> None:
        lens = self.lens
        me = threading.get_ident()
        if lens._owner == me or self.preemptible:
            lens._lock.acquire()
        elif not lens._lock.acquire(blocking=False):
            lens._wait_for_lock()
        lens._owners.append(lens._owner)
        lens._owner = me

    def __exit__(self, *exc: object) -> None:
        lens = self.lens
        lens._owner = lens._owners.pop()
        lens._lock.release()


class _Forward:
    """A Lens's instance-level ``forward`` on one module: the module's own forward, then the site's edits.

    It is also its own handle (:meth:`remove`). Wrappers of several lenses on one module
    (``Lens(model)`` and ``Lens(model[0])``) form a chain through ``inner``; removing one
    splices it out wherever it sits. A ``copy.deepcopy`` of the model gets the module's
    plain forward (the copy is a clean, independent model, bound to no lens).
    """

    __slots__ = ("inner", "lens", "module", "site")

    def __init__(self, module: nn.Module, site: _Site, lens: Lens, inner: Any) -> None:
        self.module, self.site, self.lens, self.inner = module, site, lens, inner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inner = self.inner
        out = inner(*args, **kwargs) if inner is not None else type(self.module).forward(self.module, *args, **kwargs)
        st = self.site
        lens = self.lens
        if st.active and not lens._bypass:
            out = st.apply(out)
        if lens._record is not None and st.name in lens._record_sites:
            lens._record[st.name] = get_element(out, 0).detach()
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        inner = self.inner
        if inner is not None:  # keep what was installed before us (copying any lens wrappers in it clean too)
            return copy.deepcopy(inner, memo)
        module = memo.get(id(self.module))  # the copy of our module, made before its __dict__ is copied
        if module is None:
            module = copy.deepcopy(self.module, memo)
        return types.MethodType(type(module).forward, module)

    def remove(self) -> None:
        """Take this wrapper out of the module's forward chain (safe to call twice)."""
        d = self.module.__dict__
        top = d.get("forward")
        if top is self:
            if self.inner is None:
                del d["forward"]
            else:
                d["forward"] = self.inner
        else:  # another lens wrapped on top of ours: unlink ours from its chain
            node = top
            while isinstance(node, _Forward):
                if node.inner is self:
                    node.inner = self.inner
                    break
                node = node.inner
            # else a foreign wrapper sits on top: ours stays in its chain as a pass-through (site.active = ())
        self.site.active = ()
        self.lens._active = None
