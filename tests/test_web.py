"""Deblur in the browser: the site that ``nafnet-litert web`` writes, served by ``nafnet-litert serve``, run in a real
headless Chromium (Debian's ``chromium``): WASM with threads and WebGPU (SwiftShader), against the Python LiteRT
restorer on the same photo and the same tile model; the page as a person uses it (responsive while tiles run,
Cancel, clear states, keyboard), the embed API as the README shows it, and the server's limits."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nafnet_litert as nl
from nafnet_litert.cli import main
from nafnet_litert.web import CORE_IMPORT, CORE_IMPORT_RELATIVE, build_site, make_server

README = Path(__file__).resolve().parents[1] / "README.md"

#: A requestAnimationFrame loop that counts frames and records each new progress value it sees (and the frame).
FRAMES = """window.__frames = 0; window.__seen = [];
(function frame() {
  window.__frames++;
  const p = document.body && document.body.dataset.progress;
  const seen = window.__seen;
  if (p && (!seen.length || seen[seen.length - 1][0] !== p)) seen.push([p, window.__frames]);
  requestAnimationFrame(frame);
})();"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: apt-get install chromium")
        pytest.skip("no chromium")
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The bundled model as a 128 px tile site (LiteRT.js with npm pack, integrity-checked): what ``nafnet-litert
    web`` writes, at a smaller tile so the software WebGPU finishes quickly."""
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


@contextlib.contextmanager
def page_at(browser, url: str, viewport=(1000, 900), init: str | None = FRAMES):
    """A new page at ``url`` (frames counted by ``FRAMES``); yields (page, page errors). ``page.console_errors``
    collects the console's error lines (the page's and its workers')."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    if init:
        page.add_init_script(init)
    try:
        page.goto(url)
        yield page, errors
    finally:
        page.close()


def wait_status(page, timeout_ms: int = 300_000) -> tuple[str, dict]:
    """Wait for the automation hook: (status, result JSON)."""
    page.wait_for_function("document.body.dataset.status", timeout=timeout_ms)
    return page.evaluate("document.body.dataset.status"), json.loads(page.inner_text("#result-json") or "{}")


def ready_info(page) -> dict:
    page.wait_for_function("document.body.dataset.ready || document.body.dataset.status", timeout=300_000)
    return json.loads(page.evaluate("document.body.dataset.ready || 'null'") or "null") or {}


def download(page, tmp_path: Path) -> np.ndarray:
    """The PNG the Download button makes, as RGBA pixels."""
    with page.expect_download() as d:
        page.click("#download")
    assert d.value.suggested_filename.endswith("_deblurred.png")
    path = tmp_path / d.value.suggested_filename
    d.value.save_as(path)
    return np.asarray(Image.open(path).convert("RGBA"))


def choose(page, path: Path) -> None:
    """Choose ``path`` in the page's file picker, opened by clicking the drop box, as a person would."""
    page.wait_for_function("document.body.dataset.input === 'enabled'", timeout=300_000)
    page.evaluate("delete document.body.dataset.status")
    with page.expect_file_chooser() as chooser:
        page.click("#drop")
    chooser.value.set_files(str(path))


def _gopro(tmp_path: Path, size: tuple[int, int] | None = None, name: str = "gopro_320x200.png"
           ) -> tuple[Path, np.ndarray]:  # fmt: skip
    """A 320x200 crop of a real GoPro frame (the demo's held-out blurry crop), or it resized to ``size``."""
    from nafnet_litert.eval.demo import DEMO_BLUR

    img = Image.open(DEMO_BLUR).convert("RGB")
    img = img.resize(size, Image.Resampling.LANCZOS) if size else img.crop((0, 28, 320, 228))
    p = tmp_path / name
    img.save(p)
    return p, np.asarray(img)


def _python(site: Path, a: np.ndarray) -> np.ndarray:
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        assert restorer.options.tile == 128 and restorer.options.overlap == 32
        return restorer(a)


def _close(out: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (diff.max(), (diff > 0).mean())


# ---------------------------------------------------------------------------------------------------------- results
@pytest.mark.parametrize("store", ["file", "memory"])
def test_wasm_page_matches_the_python_restorer(browser, served, site, tmp_path, store):
    """WASM (threads: the server makes the page cross-origin isolated) deblurs the 320x200 GoPro crop in 128 px
    tiles and gives the Python LiteRT restorer's pixels on the same fp32 tile model within 1/255 (the PNG from the
    Download button), with the photo and result kept in a file of the browser's private storage or in memory; no
    data URL is left in the page, and a new photo deletes the kept file."""
    photo, a = _gopro(tmp_path)
    shutil.copy(photo, site / photo.name)
    url = f"{served}/index.html?accelerator=wasm&image={photo.name}&store={store}"
    files = ("(async () => { const names = []; try { const d = await (await navigator.storage.getDirectory())"
             ".getDirectoryHandle('nafnet-deblur'); for await (const n of d.keys()) names.push(n); } catch {} "
             "return names; })()")  # fmt: skip
    with page_at(browser, url) as (page, errors):
        status, result = wait_status(page)
        ready = ready_info(page)
        out = download(page, tmp_path)
        data_urls = page.evaluate("[...document.querySelectorAll('[src],[href]')].map((e) => e.src || e.href)"
                                  ".filter((u) => u.startsWith('data:image'))")  # fmt: skip
        kept = page.evaluate(files)
        choose(page, photo)
        assert wait_status(page)[0] == "done"
        kept_after = page.evaluate(files)
        console = page.console_errors  # LiteRT.js's native log lines are not errors
    assert status == "done" and errors == [] and console == [], (result, errors, console)
    assert result["stored"] == store and len(kept) == (store == "file") and len(kept_after) == len(kept)
    assert set(kept).isdisjoint(kept_after)  # the first photo's file was deleted
    assert ready["isolated"] is True and ready["threads"] == min(4, os.cpu_count()) and ready["tile"] == 128
    assert ready["runtime"] == "threaded" and result["threads"] == ready["threads"]
    assert result["backend"] == "wasm" and (result["width"], result["height"]) == (320, 200) and result["tiles"] == 6
    assert data_urls == []
    ref = _python(site, a)
    _close(out[:, :, :3], ref)
    assert (out[:, :, 3] == 255).all()
    assert np.abs(ref.astype(int) - a).mean() > 1  # the network changed the photo: a real comparison


@pytest.mark.slow
def test_webgpu_page_is_fully_accelerated_and_matches_python(browser, served, site, tmp_path):
    """WebGPU (forced: SwiftShader here) runs the fp16-weight tile model fully accelerated in the worker; its pixels
    match the Python restorer on the fp32 model within 1/255; the screenshot of the finished page is not blank."""
    photo, a = _gopro(tmp_path)
    shutil.copy(photo, site / photo.name)
    shot = tmp_path / "page.png"
    with page_at(browser, f"{served}/index.html?accelerator=webgpu&image={photo.name}") as (page, errors):
        status, result = wait_status(page, 900_000)
        out = download(page, tmp_path)
        page.screenshot(path=str(shot), full_page=True)
    assert status == "done" and errors == [], (result, errors)
    assert result["backend"] == "webgpu" and result["fullyAccelerated"] is True
    assert result["modelBytes"] == (site / "model_webgpu.tflite").stat().st_size
    assert np.abs(out[:, :, :3].astype(int) - _python(site, a)).max() <= 1
    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.std() > 20 and img.shape[0] > 400  # the page with its before/after images, not blank
    if os.environ.get("NAFNET_LITERT_SCREENSHOT"):  # how README's screenshot is made
        shutil.copy(shot, os.environ["NAFNET_LITERT_SCREENSHOT"])


@pytest.fixture(scope="module")
def api_page(site):
    """A bare page of the site that imports nafnet.js (the embed API) and nothing else."""
    (site / "api.html").write_text(
        "<!doctype html><body><script type=module>window.nafnet = await import('./nafnet.js');"
        "document.body.dataset.ok = '1';</script></body>"
    )
    return "api.html"


def test_the_readme_snippet_runs_in_a_fresh_page(browser, served, site, tmp_path):
    """README's nafnet.js snippet, pasted as written into a new page of the site that holds a canvas with a photo,
    runs without an import map and gives the Python restorer's pixels."""
    text = README.read_text()
    section = text[text.index("### Deblurring in the browser"):]
    snippet = re.search(r"```js\n(.*?)```", section, re.DOTALL).group(1)
    assert "import {loadDeblurrer} from './nafnet.js';" in snippet and "importmap" not in snippet
    _, a = _gopro(tmp_path, (200, 150), "snippet_photo.png")
    rgba = np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
    pixels = json.dumps(rgba.reshape(-1).tolist())
    (site / "snippet.html").write_text(
        "<!doctype html><body><canvas width=200 height=150></canvas>\n"
        "<script>document.querySelector('canvas').getContext('2d').putImageData("
        f"new ImageData(new Uint8ClampedArray({pixels}), 200, 150), 0, 0);</script>\n"
        f"<script type=module>\n{snippet}\n"
        "window.__result = {info: deblurrer.info, pixels: Array.from(canvas.getContext('2d')"
        ".getImageData(0, 0, 200, 150).data)};\n</script></body>"
    )  # fmt: skip
    with page_at(browser, f"{served}/snippet.html", init=None) as (page, errors):
        page.wait_for_function("window.__result", timeout=300_000)
        result = page.evaluate("window.__result")
    assert errors == [], errors
    assert result["info"]["backend"] in ("wasm", "webgpu") and result["info"]["reason"]
    out = np.asarray(result["pixels"], np.uint8).reshape(150, 200, 4)
    _close(out[:, :, :3], _python(site, a))


def test_small_photos_with_alpha_match_python_through_the_api(browser, served, site, api_page):
    """Photos smaller than a tile on one or both sides (reflect or symmetric padding) and with an alpha channel,
    through deblur(ImageData): the Python restorer's pixels within 1/255, alpha untouched."""
    from nafnet_litert.eval.demo import DEMO_BLUR

    rng = np.random.default_rng(0)
    base = np.asarray(Image.open(DEMO_BLUR).convert("RGB"))
    with page_at(browser, f"{served}/{api_page}", init=None) as (page, errors):
        page.wait_for_function("document.body.dataset.ok")
        page.evaluate("(async () => { window.d = await nafnet.loadDeblurrer('model_fp32.tflite', "
                      "{accelerator: 'wasm'}); })()")  # fmt: skip
        for h, w in ((60, 100), (90, 300), (200, 40)):
            rgb = base[:h, :w]
            alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
            rgba = np.dstack([rgb, alpha])  # ImageData is read as it is (no canvas, no premultiplied alpha)
            out = page.evaluate(
                "async ([w, h, px]) => Array.from((await d.deblur(new ImageData(new Uint8ClampedArray(px), w, h)))"
                ".data)", [w, h, rgba.reshape(-1).tolist()])  # fmt: skip
            out = np.asarray(out, np.uint8).reshape(h, w, 4)
            assert (out[:, :, 3] == alpha).all()
            with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
                ref = restorer(rgb)
            _close(out[:, :, :3], ref)
    assert errors == []


# ---------------------------------------------------------------------------------------------------- using the page
def test_the_page_keeps_drawing_frames_during_a_wasm_run(browser, served, site, tmp_path):
    """Inference runs in a worker: while a 640x400 photo runs on WASM (28 tiles), requestAnimationFrame keeps
    firing, and its callbacks see the progress advance tile by tile (a blocked main thread sees it jump)."""
    photo, _ = _gopro(tmp_path, (640, 400), "gopro_640x400.png")
    shutil.copy(photo, site / photo.name)
    with page_at(browser, f"{served}/index.html?accelerator=wasm&image={photo.name}") as (page, errors):
        status, result = wait_status(page)
        seen = page.evaluate("window.__seen")
    assert status == "done" and errors == [] and result["tiles"] == 28
    values = [int(p.split("/")[0]) for p, _ in seen]
    frames_during = seen[-1][1] - seen[0][1]
    assert len(values) >= 28 // 2 and values == sorted(values), seen  # most tiles seen by a frame, in order
    assert frames_during >= 28, seen  # at least a frame per tile on average


def test_cancel_stops_within_one_tile_and_the_next_photo_runs(browser, served, site, tmp_path):
    """Cancel during a run stops it after the tile in flight: no tile beyond that one is reported, the page says
    it was cancelled, shows no result, and then deblurs the next photo."""
    big, _ = _gopro(tmp_path, (1024, 640), "gopro_1024x640.png")
    small, _ = _gopro(tmp_path)
    with page_at(browser, f"{served}/index.html?accelerator=wasm") as (page, errors):
        ready_info(page)
        choose(page, big)
        page.evaluate("document.getElementById('cancel').addEventListener('click', "
                      "() => { window.__atCancel = document.body.dataset.progress; }, {capture: true})")  # fmt: skip
        page.wait_for_function("(document.body.dataset.progress || '0/0').split('/')[0] >= 3", timeout=300_000)
        page.click("#cancel")
        status, _ = wait_status(page)
        at_click = int(page.evaluate("window.__atCancel").split("/")[0])
        last, total = map(int, page.evaluate("document.body.dataset.progress").split("/"))
        assert status == "cancelled" and page.is_hidden("#result") and "Cancelled" in page.inner_text("#status")
        # the tile in flight finishes, and at most one that had finished but was not yet shown when it was pressed
        assert at_click <= last <= at_click + 2 < total, (at_click, last, total)
        choose(page, small)
        status, result = wait_status(page)
        assert status == "done" and (result["width"], result["height"]) == (320, 200)
    assert errors == []


def test_an_abort_signal_stops_the_api(browser, served, site, api_page):
    """deblur(..., {signal}): an aborted signal rejects with an AbortError after at most one more tile."""
    with page_at(browser, f"{served}/{api_page}", init=None) as (page, errors):
        page.wait_for_function("document.body.dataset.ok")
        r = page.evaluate("""async () => {
          const d = await nafnet.loadDeblurrer('model_fp32.tflite', {accelerator: 'wasm'});
          const c = new AbortController();
          let last = 0, at = 0;
          try {
            const onProgress = (done) => { last = done; if (done === 2) { at = done; c.abort(); } };
            await d.deblur(new ImageData(640, 400), onProgress, {signal: c.signal});
            return {ok: true};
          } catch (e) {
            return {name: e.name, at, last};
          } finally {
            await d.delete();
          }
        }""")  # fmt: skip
    assert r["name"] == "AbortError" and r["at"] == 2 and r["last"] <= 3, r
    assert errors == []


@pytest.mark.parametrize("fallback", [True, False])
def test_auto_skips_a_fallback_webgpu_adapter(browser, served, fallback):
    """`auto` reads the adapter's isFallbackAdapter: a fallback (software) adapter gives WASM, with the reason on
    the page; a hardware one gives WebGPU. The adapter is the browser's (SwiftShader here) with that flag set."""
    flag = "true" if fallback else "false"
    init = ("const request = GPU.prototype.requestAdapter;"
            "GPU.prototype.requestAdapter = async function (...a) {"
            "  const adapter = await request.apply(this, a); if (!adapter) return adapter;"
            f"  Object.defineProperty(adapter, 'info', {{value: {{isFallbackAdapter: {flag}}}}});"
            f"  Object.defineProperty(adapter, 'isFallbackAdapter', {{value: {flag}}});"
            "  return adapter; };")  # fmt: skip
    with page_at(browser, f"{served}/index.html", init=init) as (page, errors):
        ready = ready_info(page)
        assert page.evaluate("'gpu' in navigator"), "this Chromium has no WebGPU: run with --enable-unsafe-webgpu"
        info = page.inner_text("#info")
    assert errors == []
    if fallback:
        assert ready["backend"] == "wasm" and "fallback" in ready["reason"] and "fallback" in info
    else:
        assert ready["backend"] == "webgpu" and ready["fullyAccelerated"] is True


def test_auto_on_this_browser_agrees_with_its_adapter(browser, served):
    """Without any stand-in: `auto` is WASM exactly when the browser's adapter is a fallback one or absent (here,
    SwiftShader is a fallback adapter)."""
    with page_at(browser, f"{served}/index.html") as (page, errors):
        ready = ready_info(page)
        fallback = page.evaluate("(async () => { const a = await navigator.gpu?.requestAdapter(); "
                                 "return !a || a.info.isFallbackAdapter === true; })()")  # fmt: skip
    assert errors == [] and ready["backend"] == ("wasm" if fallback else "webgpu"), ready


@pytest.mark.slow
def test_a_wasm_deblurrer_after_a_webgpu_one_keeps_its_threads(browser, served, api_page):
    """Each deblurrer has its own runtime: a WASM one loaded after a WebGPU one gets the threaded runtime, and
    info.threads says how many threads it really has (the single-threaded runtime says 1)."""
    with page_at(browser, f"{served}/{api_page}", init=None) as (page, errors):
        page.wait_for_function("document.body.dataset.ok")
        infos = page.evaluate("""async () => {
          const gpu = await nafnet.loadDeblurrer('model_webgpu.tflite', {accelerator: 'webgpu'});
          const cpu = await nafnet.loadDeblurrer('model_fp32.tflite', {accelerator: 'wasm', threads: 2});
          const one = await nafnet.loadDeblurrer('model_fp32.tflite', {accelerator: 'wasm', threads: 1});
          const out = [gpu.info, cpu.info, one.info];
          await Promise.all([gpu.delete(), cpu.delete(), one.delete()]);
          return out;
        }""")  # fmt: skip
    assert errors == []
    assert infos[0]["backend"] == "webgpu" and infos[0]["threads"] is None
    assert infos[1]["runtime"] == "threaded" and infos[1]["threads"] == 2
    assert infos[2]["runtime"] != "threaded" and infos[2]["threads"] == 1


def test_litert_base_loads_an_npm_copy_of_litertjs(browser, served, site, api_page):
    """litertBase pointing at LiteRT.js as npm installs it (core's import of @litertjs/wasm-utils still bare, which
    a worker cannot resolve) loads and runs."""
    npm = site / "node_modules" / "@litertjs"
    if not npm.exists():
        shutil.copytree(site / "litert" / "core", npm / "core")
        shutil.copytree(site / "litert" / "wasm-utils", npm / "wasm-utils")
        index = npm / "core" / "dist" / "index.js"
        index.write_text(index.read_text().replace(CORE_IMPORT_RELATIVE, CORE_IMPORT))
    with page_at(browser, f"{served}/{api_page}", init=None) as (page, errors):
        page.wait_for_function("document.body.dataset.ok")
        info = page.evaluate("""async () => {
          const d = await nafnet.loadDeblurrer('model_fp32.tflite',
                                               {accelerator: 'wasm', litertBase: 'node_modules/@litertjs/'});
          const out = await d.deblur(new ImageData(64, 48));
          await d.delete();
          return {...d.info, width: out.width};
        }""")  # fmt: skip
    assert errors == [] and info["backend"] == "wasm" and info["width"] == 64


# ------------------------------------------------------------------------------------------------- states and layout
def test_input_is_disabled_until_the_model_is_ready(browser, served, site, tmp_path):
    """While the model loads (held back here), the drop box is disabled and opens no picker, and no error shows;
    once it is ready the box opens the picker."""
    import time

    held = []
    with page_at(browser, "about:blank", init=None) as (page, errors):
        page.route("**/model_fp32.tflite", lambda route: held.append(route))  # answered below
        page.goto(f"{served}/index.html?accelerator=wasm", wait_until="domcontentloaded")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Loading the model')")
        assert page.get_attribute("#drop", "aria-disabled") == "true" and page.is_disabled("#file")
        opened = []
        page.on("filechooser", lambda fc: opened.append(fc))
        page.evaluate("window.__pickers = 0; const click = HTMLInputElement.prototype.click;"
                      "HTMLInputElement.prototype.click = function () { window.__pickers++; click.call(this); }; 0")
        page.click("#drop", force=True)  # force: Playwright itself would wait for an enabled button
        page.focus("#drop")
        page.keyboard.press("Enter")
        time.sleep(0.5)
        assert opened == [] and page.evaluate("window.__pickers") == 0 and page.inner_text("#error") == ""
        for _ in range(300):  # the worker asks for the model once its runtime is loaded
            if held:
                break
            page.wait_for_timeout(100)
        assert len(held) == 1 and page.get_attribute("#drop", "aria-disabled") == "true"
        held[0].continue_()
        ready_info(page)
        assert page.get_attribute("#drop", "aria-disabled") == "false"
        with page.expect_file_chooser():
            page.click("#drop")
    assert errors == []


def test_errors_say_what_went_wrong_and_a_new_photo_clears_the_result(browser, served, site, tmp_path):
    """A 404 image URL, a text file named .png and a model that cannot be loaded each give their own message, no
    exception; after a good result, a bad file clears it (no result, no download left)."""
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file, not a photo")
    photo, _ = _gopro(tmp_path)
    with page_at(browser, f"{served}/index.html?accelerator=wasm&image=missing.png") as (page, errors):
        status, result = wait_status(page)
        assert status == "error" and "404" in result["error"] and "not found" in result["error"], result
        choose(page, photo)
        assert wait_status(page)[0] == "done" and page.is_visible("#result") and page.is_enabled("#download")
        choose(page, bad)
        status, result = wait_status(page)
        assert status == "error" and "not an image this browser can read" in result["error"]
        assert page.is_hidden("#result") and page.is_disabled("#download")
    assert errors == []
    with page_at(browser, f"{served}/index.html?accelerator=wasm&model=nothere.tflite") as (page, errors):
        status, result = wait_status(page)
        assert status == "error" and result["error"].startswith("The model could not be loaded") and "404" in result[
            "error"]
        assert page.get_attribute("#drop", "aria-disabled") == "true"
    assert errors == []


def test_the_result_fits_the_window_and_the_drop_box_is_a_button(browser, served, site, tmp_path):
    """On a 1280x800 window a portrait photo's before/after pair fits in 80% of the height with the slider and the
    download button on screen; the slider moves a divider; the drop box opens the picker on click, Enter and Space
    once reached with Tab."""
    photo, _ = _gopro(tmp_path, (200, 400), "portrait.png")
    with page_at(browser, f"{served}/index.html?accelerator=wasm", viewport=(1280, 800)) as (page, errors):
        ready_info(page)
        choose(page, photo)
        assert wait_status(page)[0] == "done"
        box = page.locator("#compare").bounding_box()
        assert box["height"] <= 0.8 * 800 + 1 and box["width"] <= 1280
        for element in ("#slider", "#download"):
            b = page.locator(element).bounding_box()
            assert b["y"] + b["height"] <= 800, element  # on screen without scrolling
        before = page.locator("#divider").bounding_box()
        page.evaluate("const s = document.getElementById('slider'); s.value = 20; "
                      "s.dispatchEvent(new Event('input'))")  # fmt: skip
        after = page.locator("#divider").bounding_box()
        assert page.is_visible("#divider") and after["x"] < before["x"] - box["width"] * 0.2
        page.wait_for_function("document.body.dataset.input === 'enabled'")  # the next photo is welcome
        # (the picker really opens on a click: choose() above; here, how often the page asks for it, since Chromium
        # may drop a second picker asked for right after one was answered)
        page.evaluate("window.__pickers = 0;"
                      "HTMLInputElement.prototype.click = function () { if (this.id === 'file') window.__pickers++; }; 0")
        for n, key in enumerate(("Enter", " "), 1):
            page.evaluate("document.activeElement.blur()")
            for _ in range(10):  # Tab until the drop box has the focus
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.id") == "drop":
                    break
            assert page.evaluate("document.activeElement.id") == "drop"
            page.keyboard.press(key)
            assert page.evaluate("window.__pickers") == n, key
        drop = page.locator("#drop").bounding_box()
        page.mouse.click(drop["x"] + 5, drop["y"] + 5)  # the box's corner, not its text
        assert page.evaluate("window.__pickers") == 3
        assert page.is_visible("#result") and page.evaluate("document.body.dataset.status") == "done"
    assert errors == []


# ------------------------------------------------------------------------------------------------------------ server
def test_serve_isolates_the_page_and_the_site_is_complete(site, served):
    with urllib.request.urlopen(served + "/index.html") as r:
        assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        page = r.read().decode()
    assert "https://" not in page and "http://" not in page and "importmap" not in page  # no CDN, no import map
    wasm = next((site / "litert" / "core" / "wasm").glob("*.wasm"))
    with urllib.request.urlopen(f"{served}/litert/core/wasm/{wasm.name}") as r:
        assert r.headers["Content-Type"] == "application/wasm"
    with urllib.request.urlopen(f"{served}/nafnet-worker.js") as r:
        assert r.headers["Content-Type"] == "text/javascript"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(served + "/litert/")  # no directory listings
    assert "Apache License" in (site / "litert" / "LICENSE").read_text()
    assert json.loads((site / "litert" / "core" / "package.json").read_text())["version"] == "2.5.3"
    core = (site / "litert" / "core" / "dist" / "index.js").read_text()
    assert CORE_IMPORT not in core and CORE_IMPORT_RELATIVE in core
    js = (site / "nafnet.js").read_text()
    assert "export async function loadDeblurrer" in js and "deblur(image, onProgress, options = {})" in js
    assert not re.search(r"^import .* from ['\"]@", js, re.MULTILINE)  # no bare specifier: no import map needed


def _get(port: int, target: bytes) -> int:
    """The status code of a raw GET of ``target`` (sent as is, so malformed paths reach the server)."""
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return int(c.recv(4096).split(b" ", 2)[1])


def test_serve_never_serves_a_file_outside_the_site(tmp_path):
    """Symbolic links whose real path leaves the site folder (to a file, to a folder, relative or absolute) are
    refused with 404, a link that stays inside is served, '..' cannot climb out, and malformed paths get 400."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ("index.html", "nafnet.js"):
        (site / name).write_text("x")
    (site / "inside.txt").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the site")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "index.html").write_text("outside the site")
    (site / "abs_link.txt").symlink_to(secret)
    (site / "rel_link.txt").symlink_to(Path("..") / "secret.txt")
    (site / "dir_link").symlink_to(tmp_path / "outdir", target_is_directory=True)
    (site / "passwd").symlink_to("/etc/passwd")
    (site / "ok_link.txt").symlink_to("inside.txt")
    with serving(site) as url:
        port = int(url.rsplit(":", 1)[1])
        with urllib.request.urlopen(url + "/ok_link.txt") as r:
            assert r.read() == b"inside"
        for path in ("abs_link.txt", "rel_link.txt", "dir_link/index.html", "dir_link/", "passwd"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"{url}/{path}")
            assert e.value.code == 404, path
        assert _get(port, b"/../secret.txt") == 404 and _get(port, b"/%2e%2e/secret.txt") == 404
        for target in (b"/%zz", b"/index.html%00", b"/%ff%fe", b"index.html", b"/a%0d%0ab"):
            assert _get(port, target) == 400, target
        assert _get(port, b"/index.html?x=%zz") == 400


def test_a_client_that_hangs_up_mid_file_is_silent(tmp_path, capfd):
    """A browser that closes a tab while a model downloads resets the connection: no traceback from the server's
    handler threads (CI once caught one in a later test's stderr); another failing request is one line."""
    import struct
    import time

    from nafnet_litert.web.serve import SiteHandler

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


# --------------------------------------------------------------------------------------------------- building a site
def test_web_reuses_the_export_cache(site, tmp_path, monkeypatch):
    """A second site of the same model and tile exports nothing: its models are the cached ones."""
    from nafnet_litert.litert import convert

    def no_export(*a, **k):
        raise AssertionError("web exported the model again")

    monkeypatch.setattr(convert, "export", no_export)
    again = build_site("default", tmp_path / "again", tile=128).folder
    for name in ("model_fp32.tflite", "model_webgpu.tflite"):
        assert (again / name).read_bytes() == (site / name).read_bytes()
        assert json.loads((again / name).with_suffix(".json").read_text())["model"] == name


def test_litertjs_comes_through_npm_pack_and_its_pinned_integrity(tmp_path, monkeypatch):
    """Without a cached tarball, `npm pack` is run (the user's npm and its configuration), and what it gives is
    checked against the pinned integrity: a tarball that differs is refused in one line."""
    from nafnet_litert.web import build as web

    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_pack(name, version, dest):
        calls.append((name, version))
        p = dest / f"litertjs-{name}-{version}.tgz"
        p.write_bytes(b"not the pinned tarball")
        return p

    monkeypatch.setattr(web, "npm_pack", fake_pack)
    with pytest.raises(web.WebError, match="does not match its pinned integrity"):
        web.npm_tarball("wasm-utils")
    assert calls == [("wasm-utils", web.LITERTJS["wasm-utils"][0])]
    assert not (tmp_path / "cache" / "npm" / "litertjs-wasm-utils-2.5.3.tgz").exists()


def test_a_tarball_that_reaches_out_of_its_folder_is_refused(tmp_path):
    """LiteRT.js tarballs are unpacked with tarfile's ``data`` filter: files land under the site with ``package/``
    dropped, links are skipped, and a member outside ``package/`` or escaping the folder is a one-line error."""
    import io
    import tarfile

    from nafnet_litert.web import build

    def tarball(*members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, kind in members:
                info = tarfile.TarInfo(name)
                if kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                    tf.addfile(info)
                else:
                    info.size = 2
                    tf.addfile(info, io.BytesIO(b"ok"))
        return buf.getvalue()

    build.unpack(tarball(("package/dist/index.js", "file"), ("package/evil", "link")), tmp_path / "good")
    assert sorted(p.relative_to(tmp_path / "good").as_posix() for p in (tmp_path / "good").rglob("*")) == [
        "dist", "dist/index.js"]  # fmt: skip
    assert (tmp_path / "good" / "dist" / "index.js").read_bytes() == b"ok"
    for name in ("package/../../evil.js", "/etc/evil.js", "other/evil.js", "package"):
        with pytest.raises(build.WebError) as e:
            build.unpack(tarball((name, "file")), tmp_path / "bad")
        assert str(e.value) == f"unexpected path in the LiteRT.js tarball: {name}"
    assert not (tmp_path / "evil.js").exists() and not list((tmp_path / "bad").rglob("*.js"))


@pytest.mark.skipif(shutil.which("npm") is None, reason="no npm (scripts/install.sh --test installs Debian's npm)")
def test_npm_pack_fetches_the_pinned_tarball(tmp_path, monkeypatch):
    """The real `npm pack @litertjs/wasm-utils@2.5.3` (npm's cache or its registry) passes the integrity check and
    is cached."""
    from nafnet_litert.web import build as web

    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(tmp_path / "cache"))
    data = web.npm_tarball("wasm-utils")
    assert web.integrity_of(data) == web.LITERTJS["wasm-utils"][1]
    assert (tmp_path / "cache" / "npm" / "litertjs-wasm-utils-2.5.3.tgz").read_bytes() == data


def test_no_registry_host_in_the_code():
    """LiteRT.js is fetched with npm's client, the lavapipe installer reads the apt sources: no registry or mirror
    host is written into the package or the scripts."""
    import re

    root = Path(nl.__file__).resolve().parent
    files = [*root.rglob("*.py"), *(root / "assets" / "web").iterdir(), *(root.parents[1] / "scripts").iterdir()]
    allowed = {"127.0.0.1", "www.w3.org", "www.apache.org"}  # the local server, the SVG namespace, a licence text
    hosts = {(f.name, h) for f in files for h in re.findall(r"https?://([A-Za-z0-9.-]+)", f.read_text(errors="replace"))}
    assert {(name, h) for name, h in hosts if h not in allowed} == set()


def test_web_and_serve_errors_are_one_line(tmp_path, capsys, monkeypatch):
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
    # no npm on PATH and nothing cached: one line that says what to do
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert main(["web", "-o", str(tmp_path / "s2")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "npm is not installed" in err[0] and "--npm-dir" in err[0], err


def test_tile_positions_in_javascript_equal_pythons(tmp_path):
    """nafnet.js's positions(), windows, their sums (the blend's normaliser) and 8-bit conversion, run by Node.js,
    equal restore/tiling.py's and io/image.py's (ties rounded half to even)."""
    from nafnet_litert.photo import from_float
    from nafnet_litert.restore.tiling import positions, ramp_window

    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run this test: apt-get install nodejs (scripts/install.sh --test does)")
        pytest.skip("no node")
    src = Path(nl.__file__).parent / "assets" / "web" / "nafnet.js"
    shutil.copy(src, tmp_path / "nafnet.mjs")  # imports nothing: LiteRT.js is loaded by the worker
    cases = [(length, tile, ov) for tile in (64, 256) for ov in (0, 8, 32) for length in (1, 63, 64, 65, 100, 150,
             257, 300, 517, 720, 1280, 4000)]  # fmt: skip
    values = [-0.1, 0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.2, 0.5, 254.5 / 255, 1, 1.2]
    script = ("import {positions, rampWindow, axisWindows, axisSums, toByte} from './nafnet.mjs';"
              f"const cases = {json.dumps(cases)};"
              "const s = positions(720, 256, 32);"
              "console.log(JSON.stringify({p: cases.map(([l, t, o]) => positions(Math.max(l, t), t, o)),"
              " w: [Array.from(rampWindow(64, 8, 32)), Array.from(rampWindow(256, 32, 0))],"
              " sums: Array.from(axisSums(s, axisWindows(s, 256), 256, 720)),"
              f" bytes: {json.dumps(values)}.map(toByte)}}));")  # fmt: skip
    (tmp_path / "t.mjs").write_text(script)
    out = json.loads(subprocess.run([node, str(tmp_path / "t.mjs")], capture_output=True, text=True, check=True).stdout)
    assert out["p"] == [positions(max(length, t), t, o) for length, t, o in cases]
    assert np.allclose(out["w"][0], ramp_window(64, 8, 32), atol=1e-15)
    assert np.allclose(out["w"][1], ramp_window(256, 32, 0), atol=1e-15)
    starts = positions(720, 256, 32)
    wsum = np.zeros(720)
    for i, s in enumerate(starts):
        left = starts[i - 1] + 256 - s if i else 0
        right = s + 256 - starts[i + 1] if i + 1 < len(starts) else 0
        wsum[s : s + 256] += ramp_window(256, max(0, left), max(0, right))
    assert np.allclose(out["sums"], wsum, atol=1e-12)
    assert out["bytes"] == from_float(np.asarray(values, np.float32)).tolist()
