"""The ``superwidgets_server`` extension in the real test server: loaded, and TCP_NODELAY really set.

The extension counts kernel websockets it saw open and, for each, whether the
socket reported TCP_NODELAY set afterwards (``getsockopt``); the counters are served
at ``{base_url}superwidgets/nodelay``. The tour notebook's page holds one kernel
websocket, so at least one must be counted with the option on.
"""

from __future__ import annotations

import urllib.error
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import LabServer, TourNotebook

pytestmark = pytest.mark.browser


def test_extension_sets_tcp_nodelay_on_kernel_websockets(tour: TourNotebook, lab_server: LabServer) -> None:
    # the page's kernel websocket is open (the tour ran through it)
    connected = tour.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.connectionStatus"
    )
    assert connected == "connected"
    stats = lab_server.api("/superwidgets/nodelay")
    assert stats["enabled"] is True, stats
    assert stats["websockets"] >= 1, stats
    assert stats["nodelay"] == stats["websockets"], stats
    assert stats["errors"] == 0, stats
    assert "superwidgets_server: TCP_NODELAY on kernel websockets" in lab_server.log.read_text(errors="replace")


def test_status_endpoint_needs_the_token(lab_server: LabServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        lab_server.api("/superwidgets/nodelay", token=False)
    assert err.value.code == 403
