"""Static HTML snapshots of widgets: one self-contained file that renders the view without a kernel.

A snapshot holds the widget's synced state (arrays as base64 of their float32/int32 bytes), its
view bundle and its stylesheet, and renders the same JavaScript view the notebook shows against a
read-only model. Nothing is fetched from the network, so the file opens from disk, an e-mail or a
paper's supplement. Controls that need Python (retraining, re-running the model) cannot work
there; touching one says so in the note above the view.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["snapshot_html"]

#: Synced traits of ipywidgets' own machinery, not the view's state.
_SKIP = {"layout", "tabbable", "tooltip", "comm", "keys", "log"}

#: The read-only model and the loader; ``__STATE__`` etc. are filled in by :func:`snapshot_html`.
_LOADER = """
const note = document.getElementById("sw-snapshot-note");
const revive = (v) => {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.__sw_b64__ === "string") {
      const bin = atob(v.__sw_b64__);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new DataView(bytes.buffer);
    }
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = revive(x);
    return out;
  }
  return v;
};
const needsKernel = () => {
  note.classList.add("sw-snapshot-touched");
  note.dataset.touched = String(Number(note.dataset.touched || 0) + 1);
};
class SnapshotModel {
  constructor(state) { this.state = state; this.handlers = new Map(); }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; this.trigger("change:" + key); this.trigger("change"); }
  on(name, fn) { const l = this.handlers.get(name) || []; l.push(fn); this.handlers.set(name, l); }
  off(name, fn) {
    for (const [n, l] of this.handlers) {
      if (name != null && n !== name) continue;
      const kept = fn == null ? [] : l.filter((f) => f !== fn);
      if (kept.length) this.handlers.set(n, kept); else this.handlers.delete(n);
    }
  }
  trigger(name, ...args) { for (const f of [...(this.handlers.get(name) || [])]) f(...args); }
  save_changes() { needsKernel(); }
  send() { needsKernel(); }
  get widget_manager() { return { get_model: () => Promise.reject(new Error("a static snapshot has no kernel")) }; }
}
const state = revive(JSON.parse(document.getElementById("sw-snapshot-state").textContent));
const source = document.getElementById("sw-snapshot-esm").textContent;
const view = await import("data:text/javascript;base64," + source);
const el = document.getElementById("sw-snapshot-root");
(view.default ?? view).render({ model: new SnapshotModel(state), el });
el.dataset.rendered = "true";
"""

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
<div id="sw-snapshot-root"></div>
<script type="application/json" id="sw-snapshot-state">{state}</script>
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


def snapshot_html(widget: Any, title: str | None = None) -> str:
    """The HTML text of a static snapshot of ``widget`` (see :meth:`WidgetBase.to_html`).

    Parameters
    ----------
    widget : anywidget.AnyWidget
        A superwidgets widget (anything with ``_esm``/``_css`` text and ``get_state()``).
    title : str, optional
        The page title; default: the widget's class name.

    Returns
    -------
    str
        A complete HTML document with no external references.
    """
    from .. import __version__

    state = {k: v for k, v in widget.get_state().items() if not k.startswith("_") and k not in _SKIP}
    # "</" could close the script element early; JSON allows "<\\/" for it
    state_json = json.dumps(_jsonable(state), allow_nan=False).replace("</", "<\\/")
    esm, css = _text(widget._esm), _text(widget._css)
    if "</style" in css.lower():
        raise ValueError("the widget's stylesheet contains '</style', which would end the style element")
    name = type(widget).__name__
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note = (
        f"Static snapshot of a {name}, saved {stamp} with superwidgets {__version__}. "
        "It shows the state it was saved in; the controls need a running Jupyter kernel."
    )
    return _PAGE.format(
        version=html.escape(__version__),
        title=html.escape(title if title is not None else name),
        css=css,
        note=html.escape(note),
        state=state_json,
        esm=base64.b64encode(esm.encode("utf-8")).decode("ascii"),
        loader=_LOADER,
    )


def _text(source: Any) -> str:
    """A bundle's text: anywidget keeps ``_esm``/``_css`` as file contents, or a path before it reads them."""
    if isinstance(source, Path):
        return source.read_text(encoding="utf-8")
    return str(source or "")
