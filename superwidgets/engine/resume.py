"""Resume a forward pass from edited sites, reusing clean activations.

When only a late site's edits change, the layers before it compute the same
values as in the clean run. A :class:`Plan` traces the model once with
``torch.fx`` (bound sites kept as leaf modules, so their hooks still fire),
and builds, for a set of edited sites, a *tail* program: only the nodes that
depend on those sites, taking the clean values they read (the *frontier*) as
inputs. Both the capturing program and the tails are fx-generated Python, so
resuming costs no interpreter overhead per node.

Models ``torch.fx`` cannot trace (data-dependent Python control flow) get no
plan; the Lens then runs full forwards, or a split the user declared with
:meth:`Lens.declare_split`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import fx, nn

__all__ = ["Plan", "PlanError"]


class PlanError(RuntimeError):
    """The model cannot be traced or the trace disagrees with the model."""


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self._leaves = leaves

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self._leaves or super().is_leaf_module(m, module_qualified_name)


class Plan:
    """A traced model that can capture clean values and resume from sites.

    Parameters
    ----------
    model : nn.Module
        The model (its modules are shared, never copied).
    sites : iterable of str
        Module paths kept as leaves (call sites whose hooks must fire).
    """

    def __init__(self, model: nn.Module, sites: Iterable[str]) -> None:
        self.sites = frozenset(sites)
        try:
            tracer = _Tracer(set(self.sites))
            graph = tracer.trace(model)
        except Exception as exc:  # fx raises many kinds of errors on untraceable code
            raise PlanError(f"torch.fx cannot trace {type(model).__name__}: {type(exc).__name__}: {exc}") from None
        self.model = model
        self.graph = graph
        self.nodes = list(graph.nodes)
        self.site_node: dict[str, fx.Node] = {}
        for n in self.nodes:
            if n.op == "call_module" and n.target in self.sites:
                if n.target in self.site_node:
                    raise PlanError(f"site {n.target!r} is called more than once in forward; resume needs one call")
                self.site_node[str(n.target)] = n
        missing = self.sites - set(self.site_node)
        if missing:
            raise PlanError(f"sites {sorted(missing)} are not called in the traced forward")
        self._output = next(n for n in self.nodes if n.op == "output")
        # every node a tail might read: the union of single-site frontiers
        fronts: list[fx.Node] = []
        for s in sorted(self.sites):
            for n in self._frontier(self._tail({self.site_node[s]}), {self.site_node[s]}):
                if n not in fronts:
                    fronts.append(n)
        self.captured = fronts
        self._capture = self._program(capture=fronts)
        self._tails: dict[frozenset[str], tuple[fx.GraphModule, list[fx.Node]] | None] = {}

    # ------------------------------------------------------------------ graph algebra
    def _tail(self, starts: set[fx.Node]) -> list[fx.Node]:
        """Strict descendants of ``starts`` (in graph order), output node excluded."""
        reach: set[fx.Node] = set()
        order = {n: i for i, n in enumerate(self.nodes)}
        stack = list(starts)
        while stack:
            n = stack.pop()
            for u in n.users:
                if u not in reach and u.op != "output":
                    reach.add(u)
                    stack.append(u)
        return sorted(reach, key=order.__getitem__)

    @staticmethod
    def _frontier(tail: list[fx.Node], starts: set[fx.Node]) -> list[fx.Node]:
        inside = set(tail)
        front: list[fx.Node] = []
        for n in [*tail, None]:
            args = n.all_input_nodes if n is not None else []
            for a in args:
                if a not in inside and a not in front:
                    front.append(a)
        for s in starts:  # the starts themselves feed the tail (or the output directly)
            if s not in inside and s not in front:
                front.append(s)
        return front

    def _program(self, capture: list[fx.Node]) -> fx.GraphModule:
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for n in self.nodes:
            if n.op == "output":
                out = fx.node.map_arg(n.args[0], lambda a: env[a])
                g.output((out, *[env[c] for c in capture]))
            else:
                env[n] = g.node_copy(n, lambda a: env[a])
        return fx.GraphModule(self.model, g)

    def tail(self, active: frozenset[str]) -> tuple[fx.GraphModule, list[fx.Node]] | None:
        """The resume program for edits at sites ``active``: ``(module, frontier)``.

        ``module(*values)`` takes the frontier's values in order and returns the
        model's output; ``None`` if the output does not depend on those sites.
        """
        if active in self._tails:
            return self._tails[active]
        starts = {self.site_node[s] for s in active}
        tail = self._tail(starts)
        out_args = self._output.all_input_nodes
        if not tail and not any(s in out_args for s in starts):
            self._tails[active] = None
            return None
        front = self._frontier(tail, starts)
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for i, f in enumerate(front):
            env[f] = g.placeholder(f"front_{i}")
        for n in tail:
            env[n] = g.node_copy(n, lambda a: env[a])
        g.output(fx.node.map_arg(self._output.args[0], lambda a: env[a]))
        result = (fx.GraphModule(self.model, g), front)
        self._tails[active] = result
        return result

    # ------------------------------------------------------------------ running
    def capture(self, *args: Any) -> tuple[Any, dict[fx.Node, Any]]:
        """Run the model, returning its output and the values of every capturable node."""
        out, *vals = self._capture(*args)
        return out, dict(zip(self.captured, vals, strict=True))

    def node_of(self, site: str) -> fx.Node:
        """The graph node of a site's call."""
        return self.site_node[site]
