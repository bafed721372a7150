"""Shared widget machinery: binary array traits, the error area, request handling."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

__all__ = ["STATIC", "Array", "WidgetBase", "array_from_json", "array_to_json", "bundle"]

STATIC = Path(__file__).resolve().parent.parent / "static"

_DTYPES = {"float32": np.float32, "int32": np.int32}


def bundle(name: str) -> Path:
    """Path of a built JS/CSS file in ``superwidgets/static``; explains how to build it if missing."""
    path = STATIC / name
    if not path.exists():
        raise FileNotFoundError(
            f"the widget bundle {path} is missing; build it with `npm ci && npm run build` in the "
            "repository root, or reinstall superwidgets with `pip install .`"
        )
    return path


def array_to_json(value: np.ndarray | None, _widget: Any = None) -> dict[str, Any] | None:
    """Serialise an array as ``{view, dtype, shape}`` with the data as a binary buffer."""
    if value is None:
        return None
    arr = np.ascontiguousarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.int32, copy=False)
    else:
        raise TypeError(f"cannot send an array of dtype {arr.dtype} to the browser")
    return {"view": memoryview(arr.reshape(-1).view(np.uint8)), "dtype": str(arr.dtype), "shape": list(arr.shape)}


def array_from_json(value: dict[str, Any] | None, _widget: Any = None) -> np.ndarray | None:
    """Inverse of :func:`array_to_json`; accepts the ``memoryview`` that binary buffers arrive as."""
    if value is None:
        return None
    dtype = _DTYPES.get(value.get("dtype", ""))
    if dtype is None:
        raise ValueError(f"unsupported array dtype {value.get('dtype')!r}; send float32 or int32")
    buf = value["view"]
    data = np.frombuffer(bytes(buf) if not isinstance(buf, (bytes, memoryview)) else buf, dtype=dtype)
    return data.reshape(value.get("shape", [data.size])).copy()


class Array(traitlets.TraitType):  # type: ignore[type-arg]
    """A numpy array trait synced as a binary buffer (float32 or int32), never a JSON list."""

    default_value = None
    info_text = "a numpy array"

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        """Accept ``None`` or anything numpy reads as a numeric or boolean array; refuse the rest."""
        if value is None:
            return None
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            self.error(obj, value)
        return arr

    def __init__(self, default_value: Any = None, **kwargs: Any) -> None:
        super().__init__(default_value=default_value, **kwargs)
        self.tag(sync=True, to_json=array_to_json, from_json=array_from_json)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(a, b)
    return bool(a == b)


#: The widget that owns the edits at each (widget class, lens, site): building a new one replaces the old.
_OWNERS: dict[tuple[str, int, str], weakref.ref[WidgetBase]] = {}


class WidgetBase(anywidget.AnyWidget):
    """Base of superwidgets widgets: an error area, a render revision, request dispatch.

    Subclasses register request handlers with :meth:`_handle`; each handler
    runs on a custom message ``{"type": name, "seq": n, "origin": id, ...}``
    and any exception it raises lands in :attr:`error` instead of the kernel log,
    leaving the widget's last good state in place.
    """

    error = traitlets.Unicode("").tag(sync=True)
    """str: The error area's text; empty when the last action succeeded. Default ``""``."""

    rev = traitlets.Int(0).tag(sync=True)
    """int: Revision of the displayed results, bumped on every update (views re-render on it). Default 0."""

    seq = traitlets.Int(0).tag(sync=True)
    """int: Sequence number of the view request the current results answer. Default 0."""

    origin = traitlets.Unicode("").tag(sync=True)
    """str: Id of the view whose request produced the current results (``""`` for Python). Default ``""``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: dict[str, Callable[[dict[str, Any], list[Any]], None]] = {}
        self.on_msg(self._dispatch)

    _tls = threading.local()

    @property
    def _quiet(self) -> bool:
        """True while this thread writes results (observers then skip); per thread, so a
        background training thread never silences a change the user makes meanwhile."""
        return getattr(self._tls, "quiet", {}).get(id(self), False)

    @_quiet.setter
    def _quiet(self, value: bool) -> None:
        if not hasattr(self._tls, "quiet"):
            self._tls.quiet = {}
        self._tls.quiet[id(self)] = value

    @property
    def _answering(self) -> bool:
        """True while this thread answers a view's request (:meth:`_dispatch`); per thread like :attr:`_quiet`."""
        return getattr(self._tls, "answering", {}).get(id(self), False)

    @_answering.setter
    def _answering(self, value: bool) -> None:
        if not hasattr(self._tls, "answering"):
            self._tls.answering = {}
        self._tls.answering[id(self)] = value

    @traitlets.observe("rev")
    def _on_rev(self, _change: dict[str, Any]) -> None:
        # Every publish bumps ``rev``. One that does not answer a view's request (a trait set from
        # Python, a method call, a background thread, an error area written by a subclass) comes
        # from Python, so ``origin`` becomes "" in the same message: a view then never takes a
        # Python-side change for the answer to one of its own requests.
        if not self._answering:
            self.origin = ""

    #: Set when a newer widget of the same class took over this one's lens and site.
    _replaced = False

    @property
    def edits(self) -> list[Any]:
        """The widget's own edits on its lens (none by default)."""
        return []

    def to_html(self, path: str | Path | None = None, *, title: str | None = None) -> str:
        """A static snapshot of the view as one self-contained HTML file (no kernel, no network).

        The file holds the widget's current synced state, its view bundle and stylesheet, and
        renders the same view you see in the notebook — to share a finding by e-mail, in a
        paper's supplement or on a static site. Controls whose answers were precomputed still
        work (each widget's docs say which); any other control that needs Python shows "needs a
        running kernel" in the error area and highlights the note above the view. Re-save after
        changing the widget.

        Parameters
        ----------
        path : str or Path, optional
            Where to write the file (UTF-8); parent folders must exist. Omit to only get the text.
        title : str, optional
            The page title; default: the widget's class name.

        Returns
        -------
        str
            The HTML text (also written to ``path`` when given).

        Examples
        --------
        >>> lab.to_html("patient-38-unit-13-off.html")  # doctest: +SKIP
        """
        return self._write_html(path, title, self._snapshot_replies())

    def _write_html(self, path: str | Path | None, title: str | None, replies: list[dict[str, Any]]) -> str:
        """The snapshot's text with ``replies``, written to ``path`` when given."""
        from .snapshot import snapshot_html

        text = snapshot_html(self, title=title, replies=replies)
        if path is not None:
            target = Path(path)
            if not target.parent.is_dir():
                raise FileNotFoundError(
                    f"cannot write {target}: folder {target.parent} does not exist; create it first"
                )
            target.write_text(text, encoding="utf-8")
        return text

    def _snapshot_replies(self) -> list[dict[str, Any]]:
        """Answers a static snapshot gives to view messages without Python (none by default)."""
        return []

    def _replace_previous(self, lens: Any, site: str) -> None:
        """Own this widget's edits at ``(lens, site)``: an older widget of the same class there loses its edits.

        Re-running a notebook cell then replaces the old widget's edits instead of stacking them; the
        old widget says so in its error area and refuses further changes (:meth:`_check_current`).
        """
        key = (type(self).__name__, id(lens), str(site))
        ref = _OWNERS.get(key)
        prev = ref() if ref is not None else None
        if prev is not None and prev is not self:
            for e in prev.edits:
                lens.remove(e)
            prev._replaced = True
            with prev.hold_sync():
                prev.error = prev._replaced_message()
                prev.rev += 1
        _OWNERS[key] = weakref.ref(self)

    def _replaced_message(self) -> str:
        name = type(self).__name__
        return f"a newer {name} on this lens and site replaced this one; use the newer {name}"

    def _check_current(self) -> None:
        """Raise if a newer widget replaced this one (see :meth:`_replace_previous`)."""
        if self._replaced:
            raise RuntimeError(self._replaced_message())

    def _handle(self, kind: str, fn: Callable[[dict[str, Any], list[Any]], None]) -> None:
        self._handlers[kind] = fn

    def _dispatch(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        fn = self._handlers.get(str(content.get("type")))
        if fn is None:
            return
        seq = int(content.get("seq", 0)) if isinstance(content.get("seq", 0), (int, float)) else 0
        origin = str(content.get("origin", ""))
        answering, self._answering = self._answering, True
        try:
            with self._publish(seq=seq, origin=origin):
                fn(content, buffers)
        except Exception as exc:  # shown in the widget's error area; state stays as it was
            with self.hold_sync():
                self.error = _message(exc)
                self.seq, self.origin = seq, origin
                self.rev += 1
        finally:
            self._answering = answering

    @contextlib.contextmanager
    def _publish(self, seq: int | None = None, origin: str = "") -> Iterator[None]:
        """Batch trait writes into one message, clearing the error and bumping ``rev``.

        ``seq`` and ``origin`` are those of the view request being answered; without ``seq`` the
        publish comes from Python and ``origin`` becomes ``""`` (see :meth:`_on_rev`).
        """
        self._quiet = True
        try:
            with self.hold_sync():
                yield
                self.error = ""
                if seq is not None:
                    self.seq, self.origin = seq, origin
                self.rev += 1
        finally:
            self._quiet = False

    def _guard(self, change: dict[str, Any], fn: Callable[[], None]) -> None:
        """Run ``fn`` for a trait set from Python; on error revert the trait and show the error."""
        if self._quiet:
            return
        try:
            with self._publish(origin=""):
                fn()
        except Exception as exc:
            self._quiet = True
            try:
                with self.hold_sync():
                    if not _same(change["old"], change["new"]):
                        setattr(self, change["name"], change["old"])
                    self.error = _message(exc)
                    self.rev += 1
            finally:
                self._quiet = False
            raise


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)):
        return text
    return f"{type(exc).__name__}: {text}"
