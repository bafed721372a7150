"""An nbconvert HTML export (``--to html --execute``) in Chromium: the saved state shows, and a moved
control says it needs a running Jupyter kernel, in the widget's own area, keeping the saved state.

The export loads require.js, the ipywidgets HTML manager and anywidget from CDNs. The test serves
the same packages from the npm registry's tarballs (``npm pack``, the versions below) in place of
the CDN and refuses every other request: no network at run time. Offline, without them, the page
shows nothing — that is what ``to_html`` is for (docs/widgets.md §Frontends).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import write_notebook

pytestmark = pytest.mark.browser

#: what the export's loaders fetch, served from these npm packages (file in the tarball)
PACKAGES = {
    "require.min.js": ("requirejs@2.3.8", "package/require.js"),
    "/dist/embed-amd.js": ("@jupyter-widgets/html-manager@1.0.15", "package/dist/embed-amd.js"),
    "anywidget@": ("anywidget@0.11.0", "package/dist/index.js"),
}


def _npm_files(dest: Path) -> dict[str, Path]:
    """Each loader's file, unpacked from ``npm pack`` of its package (fails the test if npm cannot)."""
    out: dict[str, Path] = {}
    for key, (spec, member) in PACKAGES.items():
        res = subprocess.run(
            ["npm", "pack", spec, "--pack-destination", str(dest), "--json", "--silent"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, f"npm pack {spec} failed: {res.stderr[-2000:]}"
        tgz = dest / json.loads(res.stdout)[0]["filename"]
        target = dest / tgz.stem
        with tarfile.open(tgz) as tf:
            tf.extract(member, target, filter="data")
        out[key] = target / member
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, Path]]]:
    base = tmp_path_factory.mktemp("nbconvert")
    state = base / "state"
    state.mkdir()
    # the explorer trains in a thread: the export saves the state at the end, once it has finished
    nb = write_notebook(base / "export.ipynb", state, then=("explorer.wait(120);",))
    res = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(nb)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=base,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    html = base / "export.html"
    assert html.exists()
    yield html, state, _npm_files(base)


@pytest.fixture
def page(browser: Any, export: tuple[Path, Path, dict[str, Path]]) -> Iterator[Any]:
    html, _, files = export
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(f"{err}\n{err.stack}"))
    page.on("console", lambda m: errors.append(m.text) if "[anywidget]" in m.text else None)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith("file://"):
            r.continue_()
            return
        for key, path in files.items():
            if key in url:
                r.fulfill(path=str(path), content_type="application/javascript")
                return
        r.abort()  # MathJax and the like: not needed, and no network

    page.route("**/*", route)
    page.goto(html.as_uri())
    yield page
    context.close()
    assert not errors, "errors in the page:\n" + "\n".join(errors)


def test_export_shows_the_saved_state_and_a_moved_control_needs_a_kernel(page, export):
    _, state, _ = export
    py = json.loads((state / "lab.json").read_text())  # the kernel's state when the notebook ran
    lab = page.locator(".sw-lab").first
    lab.wait_for(timeout=60_000)
    shown = lambda: lab.evaluate("el => [...el.querySelectorAll('.sw-pred')].map(r => Number(r.dataset.edited))")  # noqa: E731
    assert shown() == pytest.approx(py["edited"], abs=1e-6)

    slider = lab.locator('.sw-feature[data-feature="13"] .sw-slider')
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.85, box["y"] + box["height"] / 2)
    error = lab.locator(".sw-error")
    error.wait_for(state="visible", timeout=10_000)
    assert "needs a running Jupyter kernel" in (error.text_content() or "")
    assert slider.input_value() == "0"
    assert shown() == pytest.approx(py["edited"], abs=1e-6)
    assert "sw-busy" not in (lab.get_attribute("class") or "")

    ex = page.locator(".sw-explorer").first
    ex.locator('.sw-norm[data-feature="1"]').click()
    ex_error = ex.locator(".sw-error")
    ex_error.wait_for(state="visible", timeout=10_000)
    assert "needs a running Jupyter kernel" in (ex_error.text_content() or "")
    assert ex.locator('.sw-norm[data-feature="1"]').get_attribute("aria-pressed") == "false"
