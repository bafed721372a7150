"""Jupyter server extension: TCP_NODELAY on kernel websockets (enabled by installing superwidgets).

jupyter_server leaves Nagle's algorithm on for the kernel websocket. A widget round
trip makes the kernel send several small frames in a row (``status: busy``, the
``comm_msg`` with the new state, ``status: idle``); with Nagle on, the second frame
waits until the browser acknowledges the first, and browsers delay that ACK by up
to 40 ms. Every slider → Python → DOM update then pays ~40 ms of waiting on an
idle machine. This extension sets ``TCP_NODELAY`` on each kernel websocket when it
opens (tornado's documented ``WebSocketHandler.set_nodelay(True)``), which takes a
FeatureLab slider round trip from ~50 ms to ~20 ms. It changes nothing else: same
frames, same order; only the socket option.

It is a separate top-level module, not ``superwidgets.server``, so that the Jupyter
server process does not import ``superwidgets`` (and with it torch: ~1.5 s and
~150 MB) just to set a socket option.

Installing the package enables it through
``etc/jupyter/jupyter_server_config.d/superwidgets_server.json``. Disable it with::

    jupyter server extension disable superwidgets_server

The extension never breaks the server: any failure (an incompatible jupyter_server
or tornado, a socket that refuses the option) is logged as a warning and the
websocket carries on with the server's default behaviour.

``GET {base_url}superwidgets/nodelay`` (authenticated) returns counters for tests
and benchmarks: ``{"enabled": true, "websockets": n, "nodelay": k, "errors": e}``,
where ``nodelay`` counts kernel websockets whose socket reported ``TCP_NODELAY``
set after the call (read back with ``getsockopt``).
"""

from __future__ import annotations

import json
import socket
from typing import Any

__all__ = ["STATS", "load_jupyter_server_extension"]

#: Counters since the server started (read by ``GET superwidgets/nodelay``).
STATS: dict[str, int] = {"websockets": 0, "nodelay": 0, "errors": 0}

_MARK = "_superwidgets_nodelay"
_warned = False


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "superwidgets_server"}]


def _set_nodelay(handler: Any, log: Any) -> None:
    """Set TCP_NODELAY on the websocket's socket and count the outcome; never raises."""
    global _warned
    STATS["websockets"] += 1
    try:
        handler.set_nodelay(True)  # tornado.websocket.WebSocketHandler: ws_connection.stream.set_nodelay
        sock = handler.ws_connection.stream.socket
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                STATS["nodelay"] += 1
    except Exception as exc:
        STATS["errors"] += 1
        if not _warned:  # once per server, not per websocket
            _warned = True
            log.warning("superwidgets_server: could not set TCP_NODELAY on a kernel websocket: %r", exc)


def _patch_kernel_websocket(log: Any) -> bool:
    """Wrap ``KernelWebsocketHandler.open`` so each kernel websocket sets TCP_NODELAY first."""
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    original = KernelWebsocketHandler.open
    if getattr(original, _MARK, False):
        return False  # already patched (extension loaded twice in one process)

    def open(self: Any, *args: Any, **kwargs: Any) -> Any:
        _set_nodelay(self, log)
        return original(self, *args, **kwargs)  # a coroutine; tornado awaits it

    open.__doc__ = original.__doc__
    open.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(open, _MARK, True)
    KernelWebsocketHandler.open = open  # type: ignore[method-assign]
    return True


def _add_stats_handler(serverapp: Any) -> None:
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    class NodelayStatsHandler(APIHandler):
        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"enabled": True, **STATS}))

    route = url_path_join(serverapp.web_app.settings["base_url"], "superwidgets", "nodelay")
    serverapp.web_app.add_handlers(".*$", [(route, NodelayStatsHandler)])


def _load_jupyter_server_extension(serverapp: Any) -> None:
    log = serverapp.log
    try:
        _patch_kernel_websocket(log)
    except Exception as exc:
        log.warning("superwidgets_server: not enabled, kernel websockets keep Nagle's algorithm: %r", exc)
        return
    try:
        _add_stats_handler(serverapp)
    except Exception as exc:
        log.warning("superwidgets_server: no superwidgets/nodelay status endpoint: %r", exc)
    log.info("superwidgets_server: TCP_NODELAY on kernel websockets (widget round trips skip Nagle's delay)")


#: Name used by older (``notebook``-era) loaders.
load_jupyter_server_extension = _load_jupyter_server_extension
