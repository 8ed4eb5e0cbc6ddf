"""Deblur in the browser: the site that ``nafnet-litert web`` writes, served by ``nafnet-litert serve``, run in a real
headless Chromium (Debian's ``chromium``): WASM with threads and WebGPU (SwiftShader), against the Python LiteRT
restorer on the same photo and the same tile model."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nafnet_litert as nl
from nafnet_litert.cli import main
from nafnet_litert.models.checkpoint import save_safetensors
from nafnet_litert.tools.web import SiteHandler, build_site, make_server

from .conftest import photo_array


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: apt-get install chromium")
        pytest.skip("no chromium")
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory, small_checkpoint):
    """The small test network as a 64 px tile site (LiteRT.js from the npm registry, integrity-checked)."""
    d = tmp_path_factory.mktemp("web")
    ckpt = d / "small.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    return build_site(str(ckpt), d / "site", tile=64).folder


class _Reporting(SiteHandler):
    events: queue.Queue

    def do_POST(self):  # the page's test hook posts what happened
        n = int(self.headers["Content-Length"])
        self.events.put(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()


def _run_page(site: Path, tmp_path: Path, image: Path, accelerator: str, timeout: float = 240) -> list[dict]:
    """Open the page in headless Chromium with ``?image=`` and collect its events until it is done or fails."""
    shutil.copy(image, site / image.name)
    events: queue.Queue = queue.Queue()
    handler = type("H", (_Reporting,), {"events": events})
    server = make_server(site, 0, handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = (f"http://127.0.0.1:{server.server_address[1]}/index.html?accelerator={accelerator}"
           f"&image={image.name}&report=/__report")  # fmt: skip
    flags = ["--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    if accelerator != "wasm":
        flags.append("--enable-unsafe-webgpu")
    browser = subprocess.Popen([_chromium(), *flags, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                e = events.get(timeout=2)
            except queue.Empty:
                continue
            seen.append(e)
            if e["event"] in ("done", "error"):
                time.sleep(0.5)  # an uncaught exception would follow at once
                while not events.empty():
                    seen.append(events.get())
                return seen
        raise AssertionError(f"the page did not finish in {timeout} s: {seen}")
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        server.server_close()


def _photo(tmp_path: Path) -> tuple[Path, np.ndarray]:
    a = (photo_array("chelsea.png", (100, 150), (60, 100)) * 255).round().astype(np.uint8)
    p = tmp_path / "photo.png"
    Image.fromarray(a).save(p)
    return p, a


def _pixels(event: dict) -> np.ndarray:
    return np.array(event["pixels"], np.uint8).reshape(event["height"], event["width"], 4)


def test_wasm_page_matches_the_python_restorer(site, tmp_path):
    """WASM (threads: the server makes the page cross-origin isolated) deblurs a 150x100 photo in 64 px tiles and
    gives the Python LiteRT restorer's pixels on the same fp32 tile model (±1 of 255: float rounding)."""
    photo, a = _photo(tmp_path)
    events = _run_page(site, tmp_path, photo, "wasm")
    ready = next(e for e in events if e["event"] == "ready")
    done = next(e for e in events if e["event"] == "done")
    assert not [e for e in events if e["event"] in ("error", "uncaught")], events
    assert ready["isolated"] is True and ready["info"]["backend"] == "wasm" and ready["info"]["tile"] == 64
    out = _pixels(done)
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        assert restorer.options.tile == 64 and restorer.options.overlap == done["info"]["overlap"] == 32
        ref = restorer(a)
    diff = np.abs(out[:, :, :3].astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())
    assert (out[:, :, 3] == 255).all()
    assert np.abs(ref.astype(int) - a).mean() > 1  # the network changed the photo: a real comparison


@pytest.mark.slow
def test_webgpu_page_is_fully_accelerated_and_agrees_with_wasm(site, tmp_path):
    """WebGPU (SwiftShader here) runs the fp16-weight tile model fully accelerated; its pixels match the Python
    restorer on the fp32 model within 1 of 255."""
    photo, a = _photo(tmp_path)
    events = _run_page(site, tmp_path, photo, "auto")
    done = next(e for e in events if e["event"] == "done")
    assert done["info"]["backend"] == "webgpu" and done["info"]["fullyAccelerated"] is True
    assert done["info"]["modelBytes"] == (site / "model_webgpu.tflite").stat().st_size
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        ref = restorer(a)
    assert np.abs(_pixels(done)[:, :, :3].astype(int) - ref).max() <= 1


def test_a_bad_file_is_a_message_not_an_exception(site, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    events = _run_page(site, tmp_path, bad, "wasm")
    errors = [e for e in events if e["event"] == "error"]
    assert errors and "not an image this browser can read" in errors[0]["message"]
    assert not [e for e in events if e["event"] == "uncaught"], events


def test_serve_isolates_the_page_and_the_site_is_complete(site):
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/index.html") as r:
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            page = r.read().decode()
        assert "https://" not in page and "http://" not in page  # nothing from a CDN
        wasm = next((site / "litert" / "core" / "wasm").glob("*.wasm"))
        with urllib.request.urlopen(f"{base}/litert/core/wasm/{wasm.name}") as r:
            assert r.headers["Content-Type"] == "application/wasm"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/litert/")  # no directory listings
    finally:
        server.shutdown()
        server.server_close()
    assert "Apache License" in (site / "litert" / "LICENSE").read_text()
    assert json.loads((site / "litert" / "core" / "package.json").read_text())["version"] == "2.5.3"
    js = (site / "nafnet.js").read_text()
    assert "export async function loadDeblurrer" in js and "deblur(image, onProgress)" in js


def test_web_and_serve_errors_are_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args, message in (
        (["web", "-o", str(afile)], "is a file"),
        (["web", "-o", str(tmp_path / "s"), "--tile", "100"], "multiple of 16"),
        (["web", "-o", str(tmp_path / "s"), "--npm-dir", str(tmp_path)], "is not in"),
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
