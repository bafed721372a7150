"""The README's main command: ``make lab`` opens JupyterLab on the tour, as root (containers) or not.

The test runs the script ``make lab`` runs after set-up (``scripts/lab.sh``), with extra arguments
that keep it headless and on a free port, waits until the server answers ``/api/status`` and
serves the tour notebook, then stops it. In CI the user is root, where JupyterLab refuses to
start unless the script passes ``--allow-root``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_make_lab_runs_setup_then_the_lab_script() -> None:
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lab:\n((?:\t.*\n)+)", text, re.M)
    assert recipe is not None, "Makefile has no lab target"
    assert [line.strip() for line in recipe.group(1).splitlines()] == ["scripts/setup.sh", "scripts/lab.sh"]


def test_lab_script_opens_the_tour_as_this_user(tmp_path: Path) -> None:
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        (tmp_path / var).mkdir()
        env[var] = str(tmp_path / var)
    log = tmp_path / "lab.log"
    # the "browser" it opens records the address it was given
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    env["BROWSER"] = f"{browser} %s"
    args = [
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / "scripts" / "lab.sh"), *args],
            cwd=tmp_path,  # the script finds the repository itself
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    status = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.3)
        output = log.read_text(errors="replace")
        assert "Running as root is not recommended" not in output
        assert status is not None, (
            f"JupyterLab did not answer /api/status; exit code {proc.poll()}; log:\n{output[-3000:]}"
        )
        assert "Serving notebooks from local directory: " + str(REPO / "notebooks") in output
        with urllib.request.urlopen(f"{base}/api/contents/00-tour.ipynb?content=0&token={token}", timeout=5) as r:
            assert json.loads(r.read())["type"] == "notebook"
        # the page it opens in the browser is the tour notebook
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened.exists(), "JupyterLab opened no browser"
        target = opened.read_text().split()[0]
        page = Path(target.removeprefix("file://")).read_text() if target.startswith("file://") else target
        assert "/lab/tree/00-tour.ipynb" in page, page
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
