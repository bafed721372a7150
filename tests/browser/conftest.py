"""Fixtures for the real-browser tests: one JupyterLab server, one Chromium, one notebook page.

The machinery lives in ``harness.py`` (shared with ``python -m bench latency``): the
server runs in its own process group with throw-away Jupyter directories and the
``superwidgets_server`` extension (TCP_NODELAY on kernel websockets) enabled
explicitly; the notebook is a copy of ``notebooks/00-tour.ipynb`` whose cells run in
the browser (Shift+Enter) up to the cell that displays ``lab``. A second kernel
client joins the notebook's kernel through its connection file to read and set
Python state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAB_CELL_PREFIX,
    NOTEBOOK,
    HarnessError,
    LabServer,
    Preds,
    TourNotebook,
    launch_browser,
    open_tour,
    start_server,
    stop_server,
    sync_playwright,
)

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "LAB_CELL_PREFIX", "NOTEBOOK", "LabServer", "Preds", "TourNotebook"]


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server on a free local port with a random token and temporary Jupyter dirs."""
    try:
        server = start_server(tmp_path_factory.mktemp("jupyterlab"), nodelay=True)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by sync Playwright; a missing /usr/bin/chromium makes the run fail."""
    try:
        manager = sync_playwright()
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    with manager as p:
        try:
            b = launch_browser(p)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def tour(browser: Any, lab_server: LabServer) -> Iterator[TourNotebook]:
    """The tour notebook with its cells run up to ``lab`` (the FeatureLab for patient 38)."""
    nb = open_tour(browser, lab_server)
    try:
        yield nb
    finally:
        nb.close()


@pytest.fixture
def lab(tour: TourNotebook) -> Iterator[TourNotebook]:
    """The tour notebook with ``lab`` reset (every unit on, sliders at 0, no error) and the view in sync.

    After the test, the page must not have thrown an uncaught exception.
    """
    tour.page.evaluate("() => document.activeElement && document.activeElement.blur && document.activeElement.blur()")
    tour.execute("lab.reset()")
    tour.settle()
    assert tour.eval("lab.error") == ""
    assert tour.eval("lab.index") == 38
    n_errors = len(tour.page_errors)
    yield tour
    new = tour.page_errors[n_errors:]
    assert not new, "uncaught exceptions in the page:\n" + "\n".join(new)


# ---- other frontends (test_frontend_*.py): one server and one page per module, named by the module's FRONTEND
@pytest.fixture(scope="module")
def frontend(browser: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The module's frontend (``FRONTEND``: notebook, voila, marimo-run, marimo-edit) with both widgets shown."""
    from frontends import open_page, start_server

    kind = request.module.FRONTEND
    try:
        server = start_server(kind, tmp_path_factory.mktemp(kind))
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        fp = open_page(browser, server)
        try:
            yield fp
        finally:
            t = fp.timing
            trips = ", ".join(f"{x:.2f}" for x in t.round_trips)
            print(f"\n[{kind}] render {t.render:.2f} s; control → Python → view: {trips} s")
            fp.page.context.close()
    finally:
        server.stop()


@pytest.fixture
def fe(frontend: Any) -> Iterator[Any]:
    """The module's frontend page; after the test, no page error or anywidget warning may come from our views."""
    n = len(frontend.our_errors())
    yield frontend
    new = frontend.our_errors()[n:]
    assert not new, "errors in the page:\n" + "\n".join(new)
