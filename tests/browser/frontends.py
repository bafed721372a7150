"""Notebook 7, Voila and marimo in Chromium: servers and page helpers for ``test_frontend_*.py``.

Each frontend runs the same code: the README's FeatureLab (patient 38) and a SuperpositionExplorer
(short training, for CI time). The Python side writes each widget's state to a JSON file whenever
it publishes (``rev`` is written last, so the file holds a whole update), which the tests compare
with what the view shows: the same check in every frontend, without a kernel client (marimo has
no Jupyter kernel). Nothing here imports pytest; the servers run in their own process group with
throw-away Jupyter directories and stop by their own pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import HarnessError, free_port, pid_alive
from playwright.sync_api import TimeoutError as PlaywrightTimeout

#: Training steps of the explorer (the default trains for seconds; 300 keeps each retrain about a second).
EXPLORER_STEPS = 300
#: Page errors a frontend throws by itself, with no widget on the page (checked on an empty notebook).
FOREIGN_ERRORS = {
    "notebook": ("reading 'schema'",),
}


def widget_code(state_dir: Path) -> str:
    """The cell that builds ``lab`` and ``explorer`` and reports their Python state to ``state_dir``."""
    return textwrap.dedent(
        f"""\
        import json as _json
        import os as _os
        import pathlib as _pathlib

        import superwidgets as sw

        model, data = sw.zoo.load("breast-cancer-mlp")
        lens = sw.Lens(model)
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        explorer = sw.SuperpositionExplorer(steps={EXPLORER_STEPS})


        def _report(name, w, fields, out=_pathlib.Path({str(state_dir)!r})):
            # the test reads the widget's Python state from here after every publish (rev comes last)
            def write(_change=None):
                s = {{k: getattr(w, k) for k in fields}}
                s = {{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in s.items()}}
                s["pid"] = _os.getpid()
                tmp = out / f".{{name}}.json"
                tmp.write_text(_json.dumps(s))
                tmp.replace(out / f"{{name}}.json")

            w.observe(write, names=["rev"])
            write()


        _report("lab", lab, ["rev", "steer", "ablated", "edited", "baseline", "error"])
        _report("explorer", explorer, ["rev", "density", "ablated", "norms", "training", "error"])
        """
    )


def write_notebook(path: Path, state_dir: Path, then: tuple[str, ...] = ()) -> Path:
    """An .ipynb that builds the widgets, then displays ``lab`` and ``explorer`` in cells of their own,
    then runs the cells ``then``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(widget_code(state_dir)),
        nbformat.v4.new_code_cell("lab"),
        nbformat.v4.new_code_cell("explorer"),
        *(nbformat.v4.new_code_cell(code) for code in then),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def write_marimo_app(path: Path, state_dir: Path) -> Path:
    """A marimo app with the same code, showing both widgets through ``mo.ui.anywidget``."""
    body = widget_code(state_dir) + "mo.vstack([mo.ui.anywidget(lab), mo.ui.anywidget(explorer)])\n"
    path.write_text(
        "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef _():\n    import marimo as mo\n"
        + textwrap.indent(body, "    ")
        + "    return\n\n\nif __name__ == '__main__':\n    app.run()\n"
    )
    return path


# --------------------------------------------------------------------------- servers
@dataclass
class Server:
    """A frontend's server (Notebook 7, Voila or marimo) in its own process group."""

    kind: str
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path
    state_dir: Path
    started: float = field(default_factory=time.monotonic)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "<no server log>"

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers; then any kernel still alive, by pid."""
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Jupyter kernels run in sessions of their own; their pid is in the state files
        for f in self.state_dir.glob("*.json"):
            with contextlib.suppress(Exception):
                pid = int(json.loads(f.read_text())["pid"])
                if pid != os.getpid() and pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _jupyter_env(base: Path) -> dict[str, str]:
    env = os.environ.copy()
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):  # fmt: skip
        path = base / name.lower()
        path.mkdir(exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_port(server: Server, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise HarnessError(f"{server.kind} exited with code {server.proc.returncode}:\n{server.log_tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            server.stop()
            raise HarnessError(f"{server.kind} did not listen on port {port} in {timeout:g} s:\n{server.log_tail()}")
        time.sleep(0.1)  # no Playwright running yet


def start_server(kind: str, base: Path, timeout: float = 60) -> Server:
    """Start ``kind`` ("notebook", "voila", "marimo-run" or "marimo-edit") on a free port with a random token.

    Writes the notebook (or marimo app) under ``base``; the widgets report their state to ``base/state``.
    """
    base.mkdir(parents=True, exist_ok=True)
    root = base / "root"
    root.mkdir(exist_ok=True)
    state_dir = base / "state"
    state_dir.mkdir(exist_ok=True)
    port = free_port()
    token = secrets.token_hex(16)
    env = _jupyter_env(base)
    py = sys.executable
    if kind == "notebook":
        write_notebook(root / "app.ipynb", state_dir)
        # expose_app_in_browser: the tests read the active cell through window.jupyterapp
        expose = "--JupyterNotebookApp.expose_app_in_browser=True"
        cmd = [py, "-m", "jupyter", "notebook", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", expose]  # fmt: skip
        url = f"http://127.0.0.1:{port}/notebooks/app.ipynb?token={token}"
    elif kind == "voila":
        write_notebook(root / "app.ipynb", state_dir)
        cmd = [py, "-m", "voila", str(root / "app.ipynb"), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
               f"--token={token}"]  # fmt: skip
        url = f"http://127.0.0.1:{port}/?token={token}"
    elif kind in ("marimo-run", "marimo-edit"):
        write_marimo_app(root / "app.py", state_dir)
        mode = kind.split("-")[1]
        cmd = [py, "-m", "marimo", mode, str(root / "app.py"), "--headless", "--host", "127.0.0.1",
               "--port", str(port), "--token-password", token]  # fmt: skip
        if mode == "run":
            cmd.append("--no-sandbox")
        url = f"http://127.0.0.1:{port}/?access_token={token}"
    else:
        raise ValueError(f"unknown frontend {kind!r}; use 'notebook', 'voila', 'marimo-run' or 'marimo-edit'")
    log = base / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(kind, url, token, proc, log, state_dir)
    _wait_port(server, port, timeout)
    return server


# --------------------------------------------------------------------------- page
@dataclass
class Timing:
    """Seconds measured in one run, for the frontend table in docs/widgets.md."""

    render: float = float("nan")
    round_trips: list[float] = field(default_factory=list)


class FrontendPage:
    """A frontend's page with the two widgets; reads Python's state from the server's state files.

    Widgets may sit in a shadow DOM (marimo): everything goes through Playwright locators, which pierce it.
    """

    def __init__(self, page: Any, server: Server) -> None:
        self.page = page
        self.server = server
        self.timing = Timing()
        self.page_errors: list[str] = []
        self.bundle_messages: list[str] = []
        page.on("pageerror", lambda err: self.page_errors.append(f"{err}\n{err.stack}"))
        page.on("console", self._on_console)

    def _on_console(self, msg: Any) -> None:
        # anywidget's warnings about our modules (a named render export, a failing cleanup) and errors naming ours
        text = msg.text
        if msg.type in ("error", "warning") and ("[anywidget]" in text or "superwidgets" in text or "sw-" in text):
            self.bundle_messages.append(f"{msg.type}: {text[:500]}")

    def our_errors(self) -> list[str]:
        """Page errors and anywidget messages, without those the frontend throws on an empty page."""
        foreign = FOREIGN_ERRORS.get(self.server.kind, ())
        errors = [e for e in self.page_errors if not any(f in e for f in foreign)]
        return errors + self.bundle_messages

    # ---- Python side
    def py(self, name: str) -> dict[str, Any]:
        return json.loads((self.server.state_dir / f"{name}.json").read_text())

    def wait_py(
        self, name: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 30, what: str = ""
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                s = self.py(name)
                if pred(s):
                    return s
            if time.monotonic() > deadline:
                raise AssertionError(f"Python's {name} never got to {what or 'the expected state'}: {self._last(name)}")
            self.page.wait_for_timeout(30)

    def _last(self, name: str) -> str:
        try:
            return json.dumps(self.py(name))[:600]
        except (OSError, ValueError):
            return "<no state yet>"

    # ---- view side
    @property
    def lab(self) -> Any:
        return self.page.locator(".sw-lab").first

    @property
    def explorer(self) -> Any:
        return self.page.locator(".sw-explorer").first

    def wait_view(self, root: Any, js: str, arg: Any = None, timeout: float = 30, what: str = "") -> Any:
        """Poll ``js`` (a function of the root element and ``arg``) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            v = root.evaluate(js, arg)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"the view never showed {what or js}")
            self.page.wait_for_timeout(20)

    def synced(self, root: Any, name: str, timeout: float = 30) -> dict[str, Any]:
        """Wait until the view is idle and shows Python's latest revision; returns Python's state."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.py(name)
            v = root.evaluate(
                "(el) => ({rev: Number(el.dataset.rev), busy: el.classList.contains('sw-busy'),"
                " status: (el.querySelector('.sw-status') || {}).textContent || ''})"
            )
            idle = not v["busy"] and not s.get("training", False) and "updating" not in v["status"]
            if idle and v["rev"] == s["rev"] and self.py(name)["rev"] == s["rev"]:
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: the view shows {v}, Python is at {self._last(name)}")
            self.page.wait_for_timeout(20)

    def lab_shown(self) -> dict[str, list[float]]:
        """Baseline and edited prediction as FeatureLab shows them (``data-*`` of each class row)."""
        return self.lab.evaluate(
            """(el) => {
                const rows = [...el.querySelectorAll('.sw-pred')];
                rows.sort((a, b) => a.dataset.class - b.dataset.class);
                return {
                    baseline: rows.map(r => Number(r.dataset.baseline)),
                    edited: rows.map(r => Number(r.dataset.edited)),
                };
            }"""
        )

    def slider(self, i: int) -> Any:
        return self.lab.locator(f'.sw-feature[data-feature="{i}"] .sw-slider')

    def click_at(self, el: Any, fraction: float) -> None:
        """A real mouse click at ``fraction`` of the element's width (a slider jumps there)."""
        el.scroll_into_view_if_needed()
        box = el.bounding_box()
        assert box is not None, "the control is not visible"
        self.page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


# --------------------------------------------------------------------------- opening the page
NOTEBOOK_READY_JS = """() => {
    const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
        && !!w.content && w.content.widgets.length === 3;
}"""


def open_page(browser: Any, server: Server, timeout_ms: float = 120_000) -> FrontendPage:
    """Open the frontend's page, run the code the way its users do, and wait for both widgets."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    fp = FrontendPage(page, server)
    try:
        t0 = time.monotonic()
        page.goto(server.url)
        if server.kind == "notebook":
            page.wait_for_function(NOTEBOOK_READY_JS, timeout=timeout_ms, polling=100)
            t0 = time.monotonic()
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        elif server.kind == "marimo-edit":
            # edit mode opens without running: the reader presses "run all stale cells" (the last run button).
            # A press before the session is up is lost; pressing again once the cell runs does nothing.
            run = page.locator('[data-testid="run-button"]').last
            run.wait_for(state="visible", timeout=timeout_ms)
            t0 = time.monotonic()
            while True:
                run.click()
                with contextlib.suppress(PlaywrightTimeout):
                    page.locator(".sw-lab, [data-status='running'], [data-status='queued']").first.wait_for(
                        state="attached", timeout=3_000
                    )
                    break
                if time.monotonic() - t0 > timeout_ms / 1000:
                    raise HarnessError("marimo edit: 'run all' never started the cell")
        fp.lab.wait_for(state="visible", timeout=timeout_ms)
        fp.explorer.wait_for(state="visible", timeout=timeout_ms)
        fp.timing.render = time.monotonic() - t0
        return fp
    except BaseException:
        with contextlib.suppress(Exception):
            print(f"---- {server.kind} server log tail ----\n" + server.log_tail())
            print("---- page errors ----\n" + "\n".join(fp.page_errors))
        context.close()
        raise


# --------------------------------------------------------------------------- the checks (one per test)
def _close(a: list[float], b: list[float], tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def check_renders(fp: FrontendPage) -> None:
    """Both widgets render, and FeatureLab shows Python's prediction for patient 38."""
    s = fp.synced(fp.lab, "lab", timeout=120)
    shown = fp.lab_shown()
    assert _close(shown["edited"], s["edited"]) and _close(shown["baseline"], s["baseline"]), (shown, s)
    assert fp.lab.locator(".sw-feature").count() == 16
    fp.synced(fp.explorer, "explorer", timeout=120)
    assert fp.explorer.locator(".sw-norm").count() == 5


def _lab_round_trip(fp: FrontendPage, i: int, act: Callable[[], None], expect: Callable[[float], bool]) -> None:
    """Do ``act`` on feature ``i``'s slider; wait for Python's steer[i] to satisfy ``expect``, then for the view."""
    slider = fp.slider(i)
    t0 = time.monotonic()
    act()
    s = fp.wait_py("lab", lambda s: expect(s["steer"][i]), what=f"the steer the slider set on feature {i}")
    s = fp.synced(fp.lab, "lab")
    fp.timing.round_trips.append(time.monotonic() - t0)
    value = float(slider.input_value())
    assert abs(s["steer"][i] - value) < 1e-5, (value, s["steer"])
    assert expect(value)
    shown = fp.lab_shown()
    assert _close(shown["edited"], s["edited"]), (shown, s)
    assert s["error"] == "" and fp.lab.locator(".sw-error").is_hidden()
    status = fp.lab.locator(".sw-status").text_content() or ""
    assert "updating" not in status, status


def check_lab_mouse(fp: FrontendPage) -> None:
    """Drag-free mouse move: a click at 85 % of feature 13's slider sets it; Python and the view agree."""
    slider = fp.slider(13)
    _lab_round_trip(fp, 13, lambda: fp.click_at(slider, 0.85), lambda v: v > 1)


def check_lab_keys(fp: FrontendPage, active_cell_js: str | None = None) -> None:
    """Arrow keys on focused sliders step them; each press reaches Python; the view shows its answer.

    ``active_cell_js``: a page function returning the notebook's active cell, which must not move.
    """
    before = fp.page.evaluate(active_cell_js) if active_cell_js else None
    slider = fp.slider(13)
    slider.focus()
    start = float(slider.input_value())
    step = float(slider.get_attribute("step") or 0)
    assert step > 0

    def press() -> None:
        for _ in range(5):
            fp.page.keyboard.press("ArrowLeft")

    _lab_round_trip(fp, 13, press, lambda v: abs(v - (start - 5 * step)) < 1e-4)
    # a second slider: the keys that move it are not the notebook's
    other = fp.slider(4)
    other.focus()
    start4 = float(other.input_value())

    def press_up() -> None:
        for _ in range(3):
            fp.page.keyboard.press("ArrowRight")

    _lab_round_trip(fp, 4, press_up, lambda v: abs(v - (start4 + 3 * step)) < 1e-4)
    if active_cell_js:
        assert fp.page.evaluate(active_cell_js) == before, "arrow keys on a slider moved the notebook's active cell"


def check_explorer(fp: FrontendPage) -> None:
    """A click ablates a feature; the density slider, moved by mouse and by arrow keys, retrains; the view follows."""
    ex = fp.explorer
    fp.synced(ex, "explorer", timeout=120)
    t0 = time.monotonic()
    ex.locator('.sw-norm[data-feature="1"]').click()
    fp.wait_py("explorer", lambda s: s["ablated"] == 1, what="ablated == 1")
    fp.synced(ex, "explorer")
    fp.timing.round_trips.append(time.monotonic() - t0)
    assert ex.locator('.sw-norm[data-feature="1"]').get_attribute("aria-pressed") == "true"

    knob = ex.locator("input.sw-knob-density")

    def retrained(act: Callable[[], None]) -> None:
        before = fp.py("explorer")["density"]
        t0 = time.monotonic()
        act()
        target = 10 ** float(knob.input_value())
        assert abs(target - before) > 1e-9, "the knob did not move"
        fp.wait_py("explorer", lambda s: abs(s["density"] - target) < 1e-6 and not s["training"], timeout=60,
                   what=f"density {target:.4g}, trained")  # fmt: skip
        s = fp.synced(ex, "explorer", timeout=60)
        fp.timing.round_trips.append(time.monotonic() - t0)
        assert abs(s["density"] - 10 ** float(knob.input_value())) < 1e-6, (knob.input_value(), s["density"])
        shown = [float(b.get_attribute("data-norm") or "nan") for b in ex.locator(".sw-norm").all()]
        assert _close(shown, s["norms"], 1e-5), (shown, s["norms"])
        assert s["error"] == ""

    retrained(lambda: fp.click_at(knob, 0.3))

    def keys() -> None:
        knob.focus()
        for _ in range(2):
            fp.page.keyboard.press("ArrowRight")

    retrained(keys)
