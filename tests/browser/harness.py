"""A real JupyterLab server + Debian Chromium with the tour notebook open, outside pytest.

Used by the browser tests (``conftest.py`` wraps these in fixtures) and by the
latency benchmark (``python -m bench latency``). Nothing here imports pytest:
failures raise :class:`HarnessError` with the server's log tail.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
#: The server extension that sets TCP_NODELAY on kernel websockets (see superwidgets_server).
NODELAY_EXTENSION = "superwidgets_server"


class HarnessError(RuntimeError):
    """The server or browser could not be started (message includes what to do or the log tail)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
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
    """A running JupyterLab server (owned by the caller: stop it with :func:`stop_server`)."""

    url: str
    token: str
    root: Path
    runtime_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path
    kernel_pids: list[int] = field(default_factory=list)

    def api(self, path: str, method: str = "GET", timeout: float = 10, token: bool = True) -> Any:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers=headers)
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


def start_server(
    base: Path,
    nodelay: bool | None = True,
    notebook: Path = NOTEBOOK,
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
) -> LabServer:
    """Start JupyterLab on a free local port with a random token and Jupyter dirs under ``base``.

    ``nodelay``: True enables the ``superwidgets_server`` extension (TCP_NODELAY on kernel
    websockets), False disables it, both explicitly through a ``jupyter_server_config.json``
    in the temporary config dir (which outranks the installed
    ``etc/jupyter/jupyter_server_config.d/superwidgets_server.json``); None leaves the installed
    configuration in charge. ``extra_env`` is added to the server's (and so its kernels')
    environment, e.g. a ``PYTHONPATH`` that puts another checkout's package first.
    """
    base.mkdir(parents=True, exist_ok=True)
    root = base / "root"
    root.mkdir()
    shutil.copy(notebook, root / notebook.name)
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
    if nodelay is not None:
        (dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {NODELAY_EXTENSION: nodelay}}})
        )
    # no "fetch news?" toast (it would cover the widget in screenshots), no update checks
    notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    port = free_port()
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
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise HarnessError(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"JupyterLab did not answer on {server.url} in {timeout:g} s:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.1)  # no Playwright running yet
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: LabServer) -> None:
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
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)  # plain teardown code, not inside Playwright
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- browser
def save_screenshot(png: bytes, name: str, env: str) -> None:
    """Write ``png`` to ``test-artifacts/<name>``, and also where the environment variable ``env`` points
    (relative to the repository; ``make screenshot`` sets it to refresh the README's images)."""
    targets = [REPO / "test-artifacts" / name]
    if os.environ.get(env):
        extra = Path(os.environ[env])
        targets.append(extra if extra.is_absolute() else REPO / extra)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)


def launch_browser(playwright: Any) -> Any:
    """Debian's Chromium through a started sync Playwright (``sync_playwright().start()`` or ``with``)."""
    if not CHROMIUM.exists():
        raise HarnessError(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with "
            "`apt-get install -y chromium` (or `WITH_BROWSER=1 scripts/setup.sh`); never `playwright install`."
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def sync_playwright() -> Any:
    """``playwright.sync_api.sync_playwright()``, or a HarnessError saying how to install it."""
    try:
        from playwright.sync_api import sync_playwright as sp
    except ImportError as exc:
        raise HarnessError(f"Python Playwright is not installed ({exc}); run scripts/setup.sh") from None
    return sp()


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

    def close(self) -> None:
        """Stop the side kernel client and close the page's browser context."""
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        with contextlib.suppress(Exception):
            self.page.context.close()

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


KERNEL_READY_JS = """() => {
    const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
        && !!w.content && w.content.widgets.length > 0;
}"""


def open_tour(browser: Any, server: LabServer, notebook: Path = NOTEBOOK) -> TourNotebook:
    """Open the tour in a new browser context and run its cells up to ``lab`` (the FeatureLab for patient 38).

    The caller closes the result (:meth:`TourNotebook.close`). On failure the context is
    closed and the server log tail and page errors are printed before the error propagates.
    """
    cells = json.loads(notebook.read_text())["cells"]
    lab_cell = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith(LAB_CELL_PREFIX))

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(30_000)
    nb = TourNotebook(page, server)
    try:
        page.goto(f"{server.url}/lab/tree/{notebook.name}?token={server.token}")
        page.wait_for_function(KERNEL_READY_JS, timeout=90_000, polling=100)
        # room for the widget: fold the left side bar away
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

        # join the notebook's kernel through its connection file
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in server.api("/api/sessions") if s["path"].endswith(notebook.name)]
        assert len(sessions) == 1, f"expected one session for {notebook.name}, got {sessions}"
        connection_file = server.runtime_dir / f"kernel-{sessions[0]['kernel']['id']}.json"
        assert connection_file.exists(), f"no connection file {connection_file}"
        kc = BlockingKernelClient()
        kc.load_connection_file(str(connection_file))
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        nb.kc = kc
        server.kernel_pids.append(int(nb.eval("__import__('os').getpid()")))
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
        return nb
    except BaseException:
        with contextlib.suppress(Exception):
            print("---- server log tail ----\n" + server.log_tail())
            print("---- page errors ----\n" + "\n".join(nb.page_errors))
        nb.close()
        raise
