"""Fixtures for the real-browser tests: one JupyterLab server, one Chromium, one notebook page.

The server runs in its own process group with throw-away Jupyter directories; the
notebook is a copy of ``notebooks/00-tour.ipynb`` whose cells run in the browser
(Shift+Enter) up to the cell that displays ``lab``. A second kernel client joins
the notebook's kernel through its connection file to read and set Python state.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "00-tour.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The tour cell that creates and displays the widget the tests drive.
LAB_CELL_PREFIX = "lab = sw.FeatureLab("


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- server
@dataclass
class LabServer:
    """A running JupyterLab server (test-owned)."""

    url: str
    token: str
    root: Path
    runtime_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    kernel_pids: list[int] = field(default_factory=list)

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        if method != "GET":
            req.data = b""
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "<no server log>"


def _stop_server(server: LabServer) -> None:
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(Exception):
            server.api("/api/shutdown", method="POST", timeout=5)  # also shuts the kernels down
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group we created (start_new_session)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    # kernels run in their own sessions: end any that outlived the server, by pid
    for pid in server.kernel_pids:
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)  # plain teardown code, not inside Playwright
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server on a free local port with a random token and temporary Jupyter dirs."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTER_DATA_DIR": base / "data",  # hides per-user kernelspecs: the venv's python3 spec is used
        "JUPYTERLAB_SETTINGS_DIR": base / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "workspaces",
        "IPYTHONDIR": base / "ipython",
    }
    env = os.environ.copy()
    for name, path in dirs.items():
        path.mkdir()
        env[name] = str(path)
    # no "fetch news?" toast (it would cover the widget in screenshots), no update checks
    notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    port = _free_port()
    token = secrets.token_hex(24)
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    log = base / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, dirs["JUPYTER_RUNTIME_DIR"], proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer on {server.url} in 60 s:\n{server.log_tail()}", pytrace=False
                    )
                time.sleep(0.1)  # plain fixture code, no Playwright running yet
        yield server
    finally:
        _stop_server(server)


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by sync Playwright. Missing browser = failure, never a skip."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with "
            "`apt-get install -y chromium` (or `WITH_BROWSER=1 scripts/setup.sh`); never `playwright install`.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Python Playwright is not installed ({exc}); run scripts/setup.sh", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


# --------------------------------------------------------------------------- notebook
@dataclass
class Preds:
    """Prediction rows as the DOM shows them (``data-*`` attributes), by class index."""

    names: list[str]
    baseline: list[float]
    edited: list[float]


class TourNotebook:
    """The tour notebook open in Chromium with ``lab`` displayed, plus a side kernel client."""

    def __init__(self, page: Any, server: LabServer) -> None:
        self.page = page
        self.server = server
        self.kc: Any = None
        self.view_id = ""
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda err: self.page_errors.append(f"{err}\n{err.stack}"))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        with contextlib.suppress(Exception):
            dialog.dismiss()

    # ---- Python side (second kernel client)
    def execute(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` in the notebook's kernel; returns its stdout; raises on a Python error."""
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(c["traceback"]))

        reply = self.kc.execute_interactive(code, store_history=False, timeout=timeout, output_hook=hook)
        content = reply["content"]
        if content["status"] != "ok":
            raise AssertionError(
                f"kernel error running {code!r}: {content.get('ename')}: {content.get('evalue')}\n{''.join(out)}"
            )
        return "".join(out)

    def eval(self, expr: str, timeout: float = 60) -> Any:
        """The JSON value of a Python expression evaluated in the notebook's kernel."""
        reply = self.kc.execute_interactive(
            "",
            store_history=False,
            user_expressions={"v": f"__import__('json').dumps({expr})"},
            timeout=timeout,
            output_hook=lambda _msg: None,
        )
        res = reply["content"]["user_expressions"]["v"]
        if res["status"] != "ok":
            raise AssertionError(f"kernel error evaluating {expr!r}: {res.get('ename')}: {res.get('evalue')}")
        return json.loads(ast.literal_eval(res["data"]["text/plain"]))

    # ---- browser side
    @property
    def selector(self) -> str:
        return f'.sw-lab[data-view="{self.view_id}"]'

    @property
    def root(self) -> Any:
        return self.page.locator(self.selector)

    def feature(self, i: int) -> Any:
        return self.root.locator(f'.sw-feature[data-feature="{i}"]')

    def dom_rev(self) -> int:
        return int(self.root.get_attribute("data-rev") or -1)

    def preds(self) -> Preds:
        rows = self.page.evaluate(
            """(sel) => [...document.querySelector(sel).querySelectorAll('.sw-pred')].map(r => ({
                   i: Number(r.dataset.class),
                   name: r.querySelector('.sw-class-name').textContent,
                   b: Number(r.dataset.baseline),
                   e: Number(r.dataset.edited),
               }))""",
            self.selector,
        )
        rows.sort(key=lambda r: r["i"])
        assert [r["i"] for r in rows] == list(range(len(rows))), rows
        return Preds([r["name"] for r in rows], [r["b"] for r in rows], [r["e"] for r in rows])

    def settle(self, after: int | None = None, timeout: float = 20_000) -> int:
        """Wait until the view is idle and shows Python's latest revision (newer than ``after``)."""
        self.page.wait_for_function(
            """([sel, after]) => {
                const r = document.querySelector(sel);
                return !!r && !r.classList.contains('sw-busy') && (after === null || Number(r.dataset.rev) > after);
            }""",
            arg=[self.selector, after],
            timeout=timeout,
        )
        rev = int(self.eval("lab.rev"))
        self.page.wait_for_function(
            """([sel, rev]) => {
                const r = document.querySelector(sel);
                return !!r && !r.classList.contains('sw-busy') && Number(r.dataset.rev) === rev;
            }""",
            arg=[self.selector, rev],
            timeout=timeout,
        )
        return rev

    def run_new_cell(self, code: str, marker: str) -> Any:
        """Append a code cell with ``code``, run it in the browser; returns a locator for that cell."""
        self.page.evaluate(
            """async ([code, marker]) => {
                const app = window.jupyterapp;
                const nb = app.shell.currentWidget.content;
                nb.activeCellIndex = nb.widgets.length - 1;
                await app.commands.execute('notebook:insert-cell-below');
                const cell = nb.activeCell;
                cell.model.sharedModel.setSource(code);
                cell.node.dataset.swTest = marker;
                app.commands.execute('notebook:run-cell');
            }""",
            [code, marker],
        )
        return self.page.locator(f'[data-sw-test="{marker}"]')

    def delete_cell(self, marker: str) -> None:
        self.page.evaluate(
            """async (marker) => {
                const app = window.jupyterapp;
                const nb = app.shell.currentWidget.content;
                const i = nb.widgets.findIndex(w => w.node.dataset.swTest === marker);
                if (i < 0) return;
                nb.activeCellIndex = i;
                nb.mode = 'command';
                await app.commands.execute('notebook:delete-cell');
            }""",
            marker,
        )


_KERNEL_READY_JS = """() => {
    const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
        && !!w.content && w.content.widgets.length > 0;
}"""


@pytest.fixture(scope="session")
def tour(browser: Any, lab_server: LabServer) -> Iterator[TourNotebook]:
    """The tour notebook with its cells run up to ``lab`` (the FeatureLab for patient 38)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    lab_cell = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith(LAB_CELL_PREFIX))

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(30_000)
    nb = TourNotebook(page, lab_server)
    try:
        page.goto(f"{lab_server.url}/lab/tree/{NOTEBOOK.name}?token={lab_server.token}")
        page.wait_for_function(_KERNEL_READY_JS, timeout=90_000, polling=100)
        # room for the widget: fold the left side bar away
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

        # join the notebook's kernel through its connection file
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in lab_server.api("/api/sessions") if s["path"].endswith(NOTEBOOK.name)]
        assert len(sessions) == 1, f"expected one session for {NOTEBOOK.name}, got {sessions}"
        connection_file = lab_server.runtime_dir / f"kernel-{sessions[0]['kernel']['id']}.json"
        assert connection_file.exists(), f"no connection file {connection_file}"
        kc = BlockingKernelClient()
        kc.load_connection_file(str(connection_file))
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        nb.kc = kc
        lab_server.kernel_pids.append(int(nb.eval("__import__('os').getpid()")))
        kernel_prefix = nb.eval("__import__('sys').prefix")
        assert Path(kernel_prefix).resolve() == Path(sys.prefix).resolve(), (
            f"the notebook kernel runs {kernel_prefix}, not this venv ({sys.prefix})"
        )

        # run the tour's cells in the browser, as a reader would: Shift+Enter from the top
        page.evaluate(
            """() => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                nb.activeCellIndex = 0;
                nb.mode = 'command';
                nb.node.focus();
            }"""
        )
        for _ in range(lab_cell + 1):
            page.keyboard.press("Shift+Enter")
        root = page.locator(".sw-lab").first
        root.wait_for(state="visible", timeout=90_000)
        nb.view_id = root.get_attribute("data-view") or ""
        assert nb.view_id, "the FeatureLab root has no data-view id"
        nb.settle()
        yield nb
    except Exception:
        with contextlib.suppress(Exception):
            print("---- server log tail ----\n" + lab_server.log_tail())
            print("---- page errors ----\n" + "\n".join(nb.page_errors))
        raise
    finally:
        if nb.kc is not None:
            nb.kc.stop_channels()
        with contextlib.suppress(Exception):
            context.close()


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
