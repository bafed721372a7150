"""Static HTML snapshots of widgets: one self-contained file that renders the view without a kernel.

A snapshot holds the widget's synced state (arrays as base64 of their float32/int32 bytes), its
view bundle and its stylesheet, and renders the same JavaScript view the notebook shows against a
read-only model. Nothing is fetched from the network, so the file opens from disk, an e-mail or a
paper's supplement. Controls that need Python (retraining, re-running the model) cannot work
there; touching one says so in the note above the view and in the widget's error area.

A widget can also precompute *replies*: the state changes its Python side would make in answer
to some of the view's messages (a dashboard: selecting each latent, re-sorting; an explorer:
ablating each feature). The snapshot answers those messages from the table, so the file stays
browsable offline; any other message gets the "needs a kernel" error. The page's loader and
read-only model are ``js/snapshot.ts`` (built to ``static/snapshot.js``, unit-tested with vitest).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["precompute_replies", "snapshot_html"]

#: Synced traits of ipywidgets' own machinery, not the view's state.
_SKIP = {"layout", "tabbable", "tooltip", "comm", "keys", "log"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="superwidgets {version}">
<title>{title}</title>
<style>
body {{ margin: 16px; background: #fff; }}
#sw-snapshot-note {{ font: 12px sans-serif; color: #555; margin: 0 0 8px; padding: 4px 8px;
  border-left: 3px solid #bbb; }}
#sw-snapshot-note.sw-snapshot-touched {{ color: #8a4b00; background: #fff4e0; border-left-color: #e69500; }}
</style>
<style>{css}</style>
</head>
<body>
<p id="sw-snapshot-note">{note}</p>
<div id="sw-snapshot-root" data-boot="auto"></div>
<script type="application/json" id="sw-snapshot-state">{state}</script>
<script type="application/json" id="sw-snapshot-replies">{replies}</script>
<script type="text/plain" id="sw-snapshot-esm">{esm}</script>
<script type="module">{loader}</script>
</body>
</html>
"""


def _jsonable(value: Any) -> Any:
    """``get_state()`` output as JSON: bytes-like values become ``{"__sw_b64__": ...}``, NaN/Inf ``null``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__sw_b64__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Inf; the views show null as "no value"
    return value


def _view_state(widget: Any) -> dict[str, Any]:
    """The widget's synced state as its view reads it (ipywidgets' own machinery left out), JSON-ready."""
    return {k: _jsonable(v) for k, v in widget.get_state().items() if not k.startswith("_") and k not in _SKIP}


#: Characters written as ``\uXXXX`` in JSON embedded in a ``<script>`` element. Escaping only "</"
#: is not enough: "<!--" followed by "<script" puts the HTML parser in its "script data double
#: escaped" state, where the real "</script>" no longer ends the element and the rest of the page is
#: swallowed. With no "<" at all no markup can start; ">" and "&" go too for the same reason, and
#: U+2028/U+2029 are line breaks to older JavaScript parsers. JSON.parse reads each escape back as
#: the same character.
_SCRIPT_ESCAPES = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})


def _script_json(value: Any) -> str:
    """``value`` as JSON that is safe as the text of a ``<script type="application/json">`` element."""
    return json.dumps(value, allow_nan=False).translate(_SCRIPT_ESCAPES)


def precompute_replies(
    widget: Any, cases: list[tuple[dict[str, Any], Callable[[], Any]]], restore: Callable[[], Any]
) -> list[dict[str, Any]]:
    """Record how ``widget``'s synced state answers each case, for a snapshot to replay offline.

    Parameters
    ----------
    widget : WidgetBase
        The widget; its state is changed by each action and put back by ``restore``. The actions
        run with the widget's observers quiet, and every synced trait is left as it was before
        (the error area, ``rev``, ``seq`` and ``origin`` included); the views get no message.
    cases : list of (match, action)
        ``match``: the fields a view message must have (e.g. ``{"type": "ablate", "feature": 3}``);
        ``action``: the Python call that answers it. Cases whose action raises ``ValueError`` are
        left out (the snapshot then answers "needs a kernel").
    restore : callable
        Puts the widget back as it was (called even if an action fails otherwise).

    Returns
    -------
    list of dict
        ``{"match": ..., "patch": ...}``; every patch sets all the traits any case changed, so the
        replies can be replayed in any order.
    """
    base = _view_state(widget)
    states: list[tuple[dict[str, Any], dict[str, Any]]] = []
    # Saving a snapshot must leave the live widget as it was, its error area included. The actions
    # write traits, and a trait set from Python normally runs the widget's observer, which re-runs
    # the model and publishes (clearing the error, bumping ``rev``): so the actions run quiet, and
    # every synced trait is put back as the exact object it was once ``restore`` has rebuilt the rest.
    saved = {k: getattr(widget, k) for k in widget.keys if not k.startswith("_") and k not in _SKIP}
    held = set(getattr(widget, "_states_to_send", ()))
    quiet = widget._quiet
    widget._quiet = True
    try:
        with widget.hold_sync():
            try:
                for match, action in cases:
                    try:
                        action()
                    except ValueError:
                        continue
                    states.append((match, _view_state(widget)))
            finally:
                try:
                    restore()
                finally:
                    # ``rev`` first: a change of it resets ``origin`` (WidgetBase._on_rev)
                    for k in sorted(saved, key=lambda k: k != "rev"):
                        if getattr(widget, k) is not saved[k]:
                            setattr(widget, k, saved[k])
                    # the views already show these values: don't send them again on leaving hold_sync
                    pending = getattr(widget, "_states_to_send", None)
                    if pending is not None:
                        pending.difference_update(k for k in saved if k not in held)
    finally:
        widget._quiet = quiet
    skip = {"rev", "seq", "origin", "error"}
    varying = sorted({k for _, st in states for k, v in st.items() if k not in skip and v != base.get(k)})
    return [{"match": match, "patch": {k: st[k] for k in varying}} for match, st in states]


def snapshot_html(widget: Any, title: str | None = None, replies: list[dict[str, Any]] | None = None) -> str:
    """The HTML text of a static snapshot of ``widget`` (see :meth:`WidgetBase.to_html`).

    Parameters
    ----------
    widget : anywidget.AnyWidget
        A superwidgets widget (anything with ``_esm``/``_css`` text and ``get_state()``).
    title : str, optional
        The page title; default: the widget's class name.
    replies : list of dict, optional
        Precomputed answers to view messages (:func:`precompute_replies`).

    Returns
    -------
    str
        A complete HTML document with no external references.
    """
    from .. import __version__

    state_json = _script_json(_view_state(widget))
    from .base import bundle

    esm, css = _text(widget._esm), _text(widget._css)
    loader = bundle("snapshot.js").read_text(encoding="utf-8")  # js/snapshot.ts: the read-only model, boot()
    if "</script" in loader.lower():
        raise ValueError("the snapshot loader contains '</script', which would end its script element")
    if "</style" in css.lower():
        raise ValueError("the widget's stylesheet contains '</style', which would end the style element")
    name = type(widget).__name__
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note = (
        f"Static snapshot of a {name}, saved {stamp} with superwidgets {__version__}. "
        "It shows the state it was saved in; controls whose answers were saved with it work, the others "
        "need a running Jupyter kernel and say so."
    )
    return _PAGE.format(
        version=html.escape(__version__),
        title=html.escape(title if title is not None else name),
        css=css,
        note=html.escape(note),
        state=state_json,
        replies=_script_json(replies or []),
        esm=base64.b64encode(esm.encode("utf-8")).decode("ascii"),
        loader=loader,
    )


def _text(source: Any) -> str:
    """A bundle's text: anywidget keeps ``_esm``/``_css`` as file contents, or a path before it reads them."""
    if isinstance(source, Path):
        return source.read_text(encoding="utf-8")
    return str(source or "")
