"""Resume a forward pass from a site on models ``torch.fx`` cannot trace, by replaying module calls.

Most ``transformers`` models (and any model with data-dependent Python control flow) cannot
be traced by ``torch.fx``, so :mod:`.resume` has no plan for them and every edited run used to
recompute the whole model. A :class:`Replay` needs no trace. It records, on one clean forward
of an example, the order in which module calls start and end. For a site it then knows

- the *ancestors*: the calls still running when the site's call starts (e.g. ``GPT2LMHeadModel``
  and ``GPT2Model`` for ``transformer.h.8``): their own Python code runs again;
- the *frontier*: the largest calls that ended before the site's call began (``wte``, ``wpe``,
  ``drop``, ``h.0`` … ``h.7``): during a replay each returns its cached clean output at once,
  without computing anything;
- the site itself returns its cached clean output, and the lens's wrapper applies the edits.

So an edited run costs the layers after the site plus the ancestors' glue code. Most frontier
outputs are never read during a replay (``h.3``'s output only feeds ``h.4``, which is replayed
too); those are not kept: a zero-storage placeholder of the same shape stands in for them
(found once per site by replaying the example with each placeholder in turn). A site's replay
is used only after it reproduced the clean output of the example exactly, and every replay
checks that no cached tensor was written in place.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

__all__ = ["Hole", "Replay", "ReplayError", "holes", "materialise"]


class ReplayError(RuntimeError):
    """The model's forward cannot be replayed from a site (the reason says why)."""


@dataclasses.dataclass(frozen=True)
class Hole:
    """Stands in for a cached tensor that a replay never reads: its shape, dtype and device only."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def fill(self) -> torch.Tensor:
        """A zero-storage tensor of this shape (zeros, expanded)."""
        return torch.zeros((), dtype=self.dtype, device=self.device).expand(self.shape)


@dataclasses.dataclass
class _Call:
    module: nn.Module
    name: str
    start: int
    end: int = -1
    parent: int = -1  # index of the enclosing call, -1 = the root


@dataclasses.dataclass
class _Route:
    """How to replay from one site: which calls return cached values, which of them must be real."""

    site: str
    site_call: int  # index into Replay.calls
    frontier: list[int]  # calls that return cached outputs (the site's call excluded)
    needed: set[int]  # frontier calls whose real output is read during a replay
    # per module (id): the ordinal of each of its calls that happen during a replay -> call index or None
    slots: dict[int, list[int | None]]
    checkpoints: list[nn.Module]  # modules called after the site under its ancestors: preemption points


class Replay:
    """The call structure of a model's forward, and replays of it from bound sites.

    Parameters
    ----------
    model : nn.Module
        The model.
    run : callable
        ``run()`` performs one clean forward of the example input (the lens's own forward);
        it is called once here to record the call order.
    """

    def __init__(self, model: nn.Module, run: Callable[[], Any]) -> None:
        self.model = model
        names = {id(m): n for n, m in model.named_modules() if n}
        calls: list[_Call] = []
        stack: list[int] = []
        clock = [0]
        handles = []

        def pre(m: nn.Module, _args: Any) -> None:
            calls.append(_Call(m, names[id(m)], clock[0], parent=stack[-1] if stack else -1))
            clock[0] += 1
            stack.append(len(calls) - 1)

        def post(_m: nn.Module, _args: Any, _out: Any) -> None:
            calls[stack.pop()].end = clock[0]
            clock[0] += 1

        try:
            for m in {id(m): m for n, m in model.named_modules() if n}.values():
                handles.append(m.register_forward_pre_hook(pre))
                handles.append(m.register_forward_hook(post))
            run()
        finally:
            for h in handles:
                h.remove()
        if stack or any(c.end < 0 for c in calls):
            raise ReplayError("a module call did not return normally while recording the forward")
        self.calls = calls
        self._routes: dict[str, _Route] = {}
        #: sites whose replay was checked against the model (True: reproduces it)
        self.checked: dict[str, bool] = {}

    # ------------------------------------------------------------------ structure
    def route(self, site: str) -> _Route:
        """The replay route from ``site`` (its first call), computed once."""
        hit = self._routes.get(site)
        if hit is not None:
            return hit
        calls = self.calls
        first = next((i for i, c in enumerate(calls) if c.name == site), None)
        if first is None:
            raise ReplayError(f"site {site!r} is not called in the model's forward")
        ancestors = set()
        p = calls[first].parent
        while p >= 0:
            ancestors.add(p)
            p = calls[p].parent
        start = calls[first].start
        frontier = [i for i, c in enumerate(calls) if c.end < start and (c.parent in ancestors or c.parent < 0)]
        skipped = [*frontier, first]

        def inside_skipped(i: int) -> bool:
            p = calls[i].parent
            while p >= 0:
                if p in skipped_set:
                    return True
                p = calls[p].parent
            return False

        skipped_set = set(skipped)
        slots: dict[int, list[int | None]] = {}
        for i, c in enumerate(calls):
            if i in skipped_set or not inside_skipped(i):
                slots.setdefault(id(c.module), []).append(i if i in skipped_set else None)
        after = calls[first].end
        checkpoints = [c.module for c in calls if c.start > after and (c.parent in ancestors or c.parent < 0)]
        route = _Route(site, first, frontier, set(frontier), slots, checkpoints)
        self._routes[site] = route
        return route

    # ------------------------------------------------------------------ capture
    def recorder(self, sites: list[str]) -> _Recorder:
        """A context that keeps, during one forward, the outputs a replay from any of ``sites`` needs."""
        keep: dict[int, set[int]] = {}
        for s in sites:
            r = self.route(s)
            for i in [*r.frontier, r.site_call]:
                keep.setdefault(id(self.calls[i].module), set()).add(i)
        return _Recorder(
            self, keep, {i for s in sites for i in self.route(s).needed} | {self.route(s).site_call for s in sites}
        )

    # ------------------------------------------------------------------ replay
    def replaying(self, site: str, cache: dict[int, Any], times: int = 1) -> _Replaying:
        """A context under which the model's forward replays from ``site`` with ``cache``'s values.

        ``times`` > 1 repeats every cached batch ``times`` along dim 0 (stacked edits, as
        :func:`superwidgets.engine.sweep.sweep` runs them on inputs repeated ``times``).
        """
        return _Replaying(self, self.route(site), cache, times)


def holes(value: Any) -> Any:
    """``value`` with every tensor replaced by a :class:`Hole` (its shape, dtype and device)."""
    return pytree.tree_map(
        lambda t: Hole(tuple(t.shape), t.dtype, t.device) if isinstance(t, torch.Tensor) else t, value
    )


def materialise(value: Any, times: int = 1, n: int | None = None) -> Any:
    """Holes filled with zero-storage tensors; with ``times`` > 1, batch tensors repeated along dim 0."""

    def one(v: Any) -> Any:
        if isinstance(v, Hole):
            shape = v.shape
            if times > 1 and shape and (n is None or shape[0] == n):
                shape = (shape[0] * times, *shape[1:])
            return Hole(shape, v.dtype, v.device).fill()
        if isinstance(v, torch.Tensor) and times > 1 and v.ndim > 0 and (n is None or v.shape[0] == n):
            return v.repeat(times, *([1] * (v.ndim - 1)))
        return v

    return pytree.tree_map(one, value, is_leaf=lambda v: isinstance(v, Hole))


class _Recorder:
    """Forward hooks that store the outputs of the calls a replay needs (real or as holes)."""

    def __init__(self, replay: Replay, keep: dict[int, set[int]], real: set[int]) -> None:
        self.replay, self.keep, self.real = replay, keep, real
        self.cache: dict[int, Any] = {}
        self._handles: list[Any] = []
        self._counts: dict[int, int] = {}
        # the call index of each module's k-th call in the recorded forward
        self._index: dict[int, list[int]] = {}
        for i, c in enumerate(replay.calls):
            self._index.setdefault(id(c.module), []).append(i)

    def __enter__(self) -> dict[int, Any]:
        calls_of = self._index
        for mid, wanted in self.keep.items():
            module = self.replay.calls[calls_of[mid][0]].module

            def hook(_m: nn.Module, _a: Any, out: Any, mid: int = mid, wanted: set[int] = wanted) -> None:
                k = self._counts.get(mid, 0)
                self._counts[mid] = k + 1
                idx = calls_of[mid]
                if k < len(idx) and idx[k] in wanted:
                    i = idx[k]
                    self.cache[i] = out if i in self.real else holes(out)

            self._handles.append(module.register_forward_hook(hook))
        return self.cache

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


class _Cached:
    """A module's temporary instance ``forward`` during a replay: cached outputs for replayed calls."""

    __slots__ = ("cache", "count", "n", "prev", "slots", "times")

    def __init__(self, prev: Any, slots: list[int | None], cache: dict[int, Any], times: int, n: int | None) -> None:
        self.prev, self.slots, self.cache, self.times, self.n = prev, slots, cache, times, n
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        k = self.count
        self.count = k + 1
        i = self.slots[k] if k < len(self.slots) else None
        if i is None:
            return self.prev(*args, **kwargs)
        return materialise(self.cache[i], self.times, self.n)


class _Replaying:
    """Installs :class:`_Cached` forwards on the frontier's modules (and the site's), removes them on exit."""

    def __init__(self, replay: Replay, route: _Route, cache: dict[int, Any], times: int) -> None:
        self.replay, self.route, self.cache, self.times = replay, route, cache, times
        self._undo: list[Callable[[], None]] = []
        self._versions: list[tuple[torch.Tensor, int]] = []

    def __enter__(self) -> _Replaying:
        from .lens import _Forward  # the lens's site wrapper: replay below it so edits still apply

        calls = self.replay.calls
        missing = [i for i in [*self.route.frontier, self.route.site_call] if i not in self.cache]
        if missing:
            raise ReplayError(f"no cached output for {calls[missing[0]].name!r}")
        site_val = self.cache[self.route.site_call]
        n = _batch(site_val)
        modules = {id(calls[i].module): calls[i].module for i in [*self.route.frontier, self.route.site_call]}
        for mid, module in modules.items():
            slots = self.route.slots[mid]
            d = module.__dict__
            top = d.get("forward")
            if isinstance(top, _Forward):  # a lens site: cached values go under the lens's wrapper
                node = top
                while isinstance(node.inner, _Forward):
                    node = node.inner
                inner = node.inner
                prev = inner if inner is not None else types.MethodType(type(module).forward, module)
                node.inner = _Cached(prev, slots, self.cache, self.times, n)
                self._undo.append(lambda node=node, inner=inner: setattr(node, "inner", inner))
            else:
                prev = top if top is not None else types.MethodType(type(module).forward, module)
                d["forward"] = _Cached(prev, slots, self.cache, self.times, n)
                self._undo.append(lambda d=d, top=top: _restore(d, top))
        for t in _tensors(self.cache):
            self._versions.append((t, t._version))
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def written(self) -> bool:
        """Whether any cached tensor was modified in place during the replay."""
        return any(t._version != v for t, v in self._versions)


def _restore(d: dict[str, Any], top: Any) -> None:
    if top is not None:
        d["forward"] = top
    else:
        d.pop("forward", None)


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    for v in pytree.tree_leaves(value, is_leaf=lambda v: isinstance(v, Hole)):
        if isinstance(v, torch.Tensor):
            yield v


def _batch(value: Any) -> int | None:
    for t in _tensors(value):
        if t.ndim > 0:
            return int(t.shape[0])
    return None
