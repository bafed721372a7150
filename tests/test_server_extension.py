"""The ``superwidgets_server`` Jupyter server extension, without a server (the browser tests use a real one)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import superwidgets_server as ext

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ext, "STATS", {"websockets": 0, "nodelay": 0, "errors": 0})
    monkeypatch.setattr(ext, "_warned", False)


def _handler(sock: socket.socket | None, fail: bool = False) -> Any:
    """Stands in for a tornado WebSocketHandler: ``set_nodelay`` and ``ws_connection.stream.socket``."""

    def set_nodelay(value: bool) -> None:
        if fail:
            raise RuntimeError("stream closed")
        assert sock is not None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(value))

    return SimpleNamespace(set_nodelay=set_nodelay, ws_connection=SimpleNamespace(stream=SimpleNamespace(socket=sock)))


def test_import_does_not_pull_in_torch_or_superwidgets() -> None:
    code = "import sys, superwidgets_server; print(sorted(m for m in ('torch', 'superwidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_installing_enables_the_extension() -> None:
    assert ext._jupyter_server_extension_points() == [{"module": "superwidgets_server"}]
    src = "jupyter-config/jupyter_server_config.d/superwidgets_server.json"
    config = json.loads((REPO / src).read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"superwidgets_server": True}}}
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["shared-data"][src] == "etc/jupyter/jupyter_server_config.d/superwidgets_server.json"
    assert "superwidgets_server" in wheel["packages"]


def test_set_nodelay_sets_the_socket_option_and_counts() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname()):
        conn, _ = server.accept()
        with conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            ext._set_nodelay(_handler(conn), logging.getLogger("test"))
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert ext.STATS == {"websockets": 1, "nodelay": 1, "errors": 0}


def test_a_failing_websocket_is_counted_and_warned_once_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test")
    with caplog.at_level(logging.WARNING, logger="test"):
        ext._set_nodelay(_handler(None, fail=True), log)
        ext._set_nodelay(_handler(None, fail=True), log)
    assert ext.STATS == {"websockets": 2, "nodelay": 0, "errors": 2}
    assert [r.getMessage() for r in caplog.records] == [
        "superwidgets_server: could not set TCP_NODELAY on a kernel websocket: RuntimeError('stream closed')"
    ]


def test_patch_wraps_kernel_websocket_open_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    calls: list[tuple[Any, ...]] = []

    def fake_open(self: Any, *args: Any, **kwargs: Any) -> str:
        calls.append(("open", self, args, kwargs))
        return "coroutine"

    monkeypatch.setattr(KernelWebsocketHandler, "open", fake_open)  # the real one is restored after the test
    monkeypatch.setattr(ext, "_set_nodelay", lambda handler, _log: calls.append(("nodelay", handler)))
    log = logging.getLogger("test")
    assert ext._patch_kernel_websocket(log) is True
    patched = KernelWebsocketHandler.open
    assert patched is not fake_open and patched.__wrapped__ is fake_open
    assert ext._patch_kernel_websocket(log) is False  # loading twice does not stack wrappers
    assert KernelWebsocketHandler.open is patched

    handler = object()
    assert patched(handler, "kernel-id") == "coroutine"  # tornado awaits what open returns
    assert calls == [("nodelay", handler), ("open", handler, ("kernel-id",), {})]


def test_load_never_breaks_the_server(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_log: Any) -> bool:
        raise ImportError("jupyter_server moved KernelWebsocketHandler")

    monkeypatch.setattr(ext, "_patch_kernel_websocket", boom)
    serverapp = SimpleNamespace(log=logging.getLogger("test"))
    with caplog.at_level(logging.WARNING, logger="test"):
        ext._load_jupyter_server_extension(serverapp)
    assert "not enabled" in caplog.text and "moved KernelWebsocketHandler" in caplog.text
