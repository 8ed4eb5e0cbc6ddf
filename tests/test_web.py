"""Deblur in the browser: the site that ``nafnet-litert web`` writes, served by ``nafnet-litert serve``, run in a real
headless Chromium (Debian's ``chromium``): WASM with threads and WebGPU (SwiftShader), against the Python LiteRT
restorer on the same photo and the same tile model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nafnet_litert as nl
from nafnet_litert.cli import main
from nafnet_litert.tools.web import build_site, make_server



def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: apt-get install chromium")
        pytest.skip("no chromium")
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The bundled model as a 128 px tile site (LiteRT.js from the npm registry, integrity-checked): what
    ``nafnet-litert web`` writes, at a smaller tile so the software WebGPU finishes quickly."""
    return build_site("default", tmp_path_factory.mktemp("web") / "site", tile=128).folder


@pytest.fixture(scope="module")
def browser():
    """The system Chromium driven by Playwright (no browser download)."""
    playwright = pytest.importorskip("playwright.sync_api")
    exe = _chromium()
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--enable-unsafe-webgpu"])
        yield b
        b.close()


@contextlib.contextmanager
def serving(folder: Path, **kw):
    """``make_server(folder)`` serving on a free port in a thread for the duration of the block: yields its URL."""
    server = make_server(folder, 0, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(site):
    with serving(site) as url:
        yield url


def run_page(browser, served: str, site: Path, image: Path, accelerator: str, threads: int | None = None,
             screenshot: Path | None = None) -> tuple[str, dict, list[str], dict]:  # fmt: skip
    """Open ``index.html?image=...`` and wait for the automation hook: (status, result JSON, page errors, ready
    info); with ``screenshot``, a full-page screenshot is written there."""
    shutil.copy(image, site / image.name)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    query = f"accelerator={accelerator}&image={image.name}" + (f"&threads={threads}" if threads else "")
    try:
        page.goto(f"{served}/index.html?{query}")
        page.wait_for_function("document.body.dataset.status", timeout=300_000)
        status = page.evaluate("document.body.dataset.status")
        result = json.loads(page.inner_text("#result-json") if status == "done" else
                            page.evaluate("document.getElementById('result-json').textContent"))  # fmt: skip
        ready = json.loads(page.evaluate("document.body.dataset.ready || 'null'") or "null") or {}
        if status == "done":
            result["png"] = page.get_attribute("#output", "src")
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)
        return status, result, errors, ready
    finally:
        page.close()


def _photo(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 320x200 crop of a real GoPro frame (the demo's held-out blurry crop)."""
    from nafnet_litert.tools.demo import DEMO_BLUR

    a = np.asarray(Image.open(DEMO_BLUR).convert("RGB"))[28:228]
    p = tmp_path / "gopro_320x200.png"
    Image.fromarray(a).save(p)
    return p, a


def _pixels(result: dict) -> np.ndarray:
    import base64
    import io

    head, data = result["png"].split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))


def test_wasm_page_matches_the_python_restorer(browser, served, site, tmp_path):
    """WASM (threads: the server makes the page cross-origin isolated) deblurs the 320x200 GoPro crop in 128 px
    tiles and gives the Python LiteRT restorer's pixels on the same fp32 tile model within 1/255."""
    photo, a = _photo(tmp_path)
    status, result, errors, ready = run_page(browser, served, site, photo, "wasm")
    assert status == "done" and errors == [], (result, errors)
    assert ready["isolated"] is True and ready["threads"] >= 1 and ready["tile"] == 128
    assert result["backend"] == "wasm" and (result["width"], result["height"]) == (320, 200)
    out = _pixels(result)
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        assert restorer.options.tile == 128 and restorer.options.overlap == ready["overlap"] == 32
        ref = restorer(a)
    diff = np.abs(out[:, :, :3].astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())
    assert (out[:, :, 3] == 255).all()
    assert np.abs(ref.astype(int) - a).mean() > 1  # the network changed the photo: a real comparison


@pytest.mark.slow
def test_webgpu_page_is_fully_accelerated_and_matches_python(browser, served, site, tmp_path):
    """WebGPU (SwiftShader here) runs the fp16-weight tile model fully accelerated; its pixels match the Python
    restorer on the fp32 model within 1/255; the screenshot of the finished page is not blank."""
    photo, a = _photo(tmp_path)
    shot = tmp_path / "page.png"
    status, result, errors, _ = run_page(browser, served, site, photo, "auto", screenshot=shot)
    assert status == "done" and errors == [], (result, errors)
    assert result["backend"] == "webgpu" and result["fullyAccelerated"] is True
    assert result["modelBytes"] == (site / "model_webgpu.tflite").stat().st_size
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        ref = restorer(a)
    assert np.abs(_pixels(result)[:, :, :3].astype(int) - ref).max() <= 1
    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.std() > 20 and img.shape[0] > 400  # the page with its before/after images, not blank
    if os.environ.get("NAFNET_LITERT_SCREENSHOT"):  # how README's screenshot is made
        shutil.copy(shot, os.environ["NAFNET_LITERT_SCREENSHOT"])


def test_a_bad_file_is_a_message_not_an_exception(browser, served, site, tmp_path):
    """A text file named .png: the error state with a message, and no exception in the page."""
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file, not a photo")
    status, result, errors, _ = run_page(browser, served, site, bad, "wasm")
    assert status == "error" and "not an image this browser can read" in result["error"]
    assert errors == []


def test_serve_isolates_the_page_and_the_site_is_complete(site, served):
    with urllib.request.urlopen(served + "/index.html") as r:
        assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        page = r.read().decode()
    assert "https://" not in page and "http://" not in page  # nothing from a CDN
    wasm = next((site / "litert" / "core" / "wasm").glob("*.wasm"))
    with urllib.request.urlopen(f"{served}/litert/core/wasm/{wasm.name}") as r:
        assert r.headers["Content-Type"] == "application/wasm"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(served + "/litert/")  # no directory listings
    assert "Apache License" in (site / "litert" / "LICENSE").read_text()
    assert json.loads((site / "litert" / "core" / "package.json").read_text())["version"] == "2.5.3"
    js = (site / "nafnet.js").read_text()
    assert "export async function loadDeblurrer" in js and "deblur(image, onProgress)" in js


def test_a_client_that_hangs_up_mid_file_is_silent(tmp_path, capfd):
    """A browser that closes a tab while a model downloads resets the connection: no traceback from the server's
    handler threads (CI once caught one in a later test's stderr); another failing request is one line."""
    import socket
    import struct
    import time

    from nafnet_litert.tools.web import SiteHandler

    for name in ("index.html", "nafnet.js"):
        (tmp_path / name).write_text("x")
    (tmp_path / "model.tflite").write_bytes(os.urandom(32 << 20))  # far more than the socket buffers hold

    class Broken(SiteHandler):
        def do_GET(self):
            if self.path == "/broken":
                raise ValueError("a bug in a handler")
            return super().do_GET()

    with serving(tmp_path, handler=Broken) as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"GET /model.tflite HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.0 200")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            client.close()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /broken HTTP/1.1\r\nHost: localhost\r\n\r\n")
            client.recv(4096)
        time.sleep(1.0)  # the handler threads notice the reset while writing
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "a bug in a handler" in err[0] and "/broken" not in err[0], err


def test_web_and_serve_errors_are_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "litertjs-core-2.5.3.tgz").write_bytes(b"a tarball someone swapped")  # integrity must refuse it
    for args, message in (
        (["web", "-o", str(afile)], "is a file"),
        (["web", "-o", str(tmp_path / "s"), "--tile", "100"], "multiple of 16"),
        (["web", "-o", str(tmp_path / "s"), "--npm-dir", str(tmp_path)], "not the pinned @litertjs/core"),
        (["serve", str(tmp_path)], "is not a site"),
    ):
        assert main(args) == 2, args
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and message in err[0], (args, err)


def test_tile_positions_in_javascript_equal_pythons(tmp_path):
    """nafnet.js's positions() and windows, run by Node.js, equal restore/tiling.py's (ties rounded half to even)."""
    from nafnet_litert.restore.tiling import positions, ramp_window

    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run this test: apt-get install nodejs (scripts/install.sh --test does)")
        pytest.skip("no node")
    src = Path(nl.__file__).parent / "assets" / "web" / "nafnet.js"
    js = src.read_text().replace("import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';", "")
    (tmp_path / "nafnet.mjs").write_text(js)
    cases = [(length, tile, ov) for tile in (64, 256) for ov in (0, 8, 32) for length in (1, 63, 64, 65, 100, 150,
             257, 300, 517, 720, 1280, 4000)]  # fmt: skip
    script = ("import {positions, rampWindow} from './nafnet.mjs';"
              f"const cases = {json.dumps(cases)};"
              "console.log(JSON.stringify({p: cases.map(([l, t, o]) => positions(Math.max(l, t), t, o)),"
              " w: [Array.from(rampWindow(64, 8, 32)), Array.from(rampWindow(256, 32, 0))]}));")  # fmt: skip
    (tmp_path / "t.mjs").write_text(script)
    out = json.loads(subprocess.run([node, str(tmp_path / "t.mjs")], capture_output=True, text=True, check=True).stdout)
    assert out["p"] == [positions(max(length, t), t, o) for length, t, o in cases]
    assert np.allclose(out["w"][0], ramp_window(64, 8, 32), atol=1e-15)
    assert np.allclose(out["w"][1], ramp_window(256, 32, 0), atol=1e-15)
