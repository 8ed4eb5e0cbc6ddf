"""Measure the browser page's memory on large photos (a measurement, not a test): the peak memory of the page's
renderer process while 12 MP and 48 MP JPEGs are deblurred in headless Chromium, chosen in the file picker as a
person would; for the 12 MP photo also a second run in the same page and the PNG download, and how far the page's
PNG is from the Python restorer's output on the same model. Prints one JSON line per photo, then a markdown table
and the machine.

    python scripts/web_memory.py [--site SITE] [--megapixels 12 48] [--accelerator auto] [--no-compare]

Without --site it writes one with `nafnet-litert web` (bundled model, 256 px tiles) into a temporary folder. The
photos are the bundled GoPro crop scaled up to 4:3 (4000x3000, 8000x6000), saved as JPEG (quality 92, 4:4:4).

Figures, per renderer process (the page's, found through Chromium's SystemInfo.getProcessInfo), sampled every
50 ms from /proc (Chromium resets the kernel's high-water mark, VmHWM, from time to time, so it is only a lower
bound; the larger of the two is reported):
- "peak" is the largest resident memory (VmRSS); it includes about 115 MB of Chromium's own code and data files
  that every renderer maps (RssFile);
- "private" is the largest RssAnon + RssShmem, the memory the page itself allocated;
- "ready" is the resident memory once the model is loaded, before any photo.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nafnet_litert.bench.bench import cpu_name
from nafnet_litert.eval.demo import DEMO_BLUR
from nafnet_litert.web import build_site, make_server

SIZES = {12: (4000, 3000), 48: (8000, 6000)}


def _status_mb(pid: int) -> dict[str, float]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


class Sampler:
    """Samples a process's resident memory every 50 ms in a thread: .rss (VmRSS, or VmHWM when larger) and .private
    (RssAnon + RssShmem) are the largest values seen since the last reset()."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.private, self._stop = pid, 0.0, 0.0, threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            s = _status_mb(self.pid)
            self.rss = max(self.rss, s.get("VmRSS", 0), s.get("VmHWM", 0))
            self.private = max(self.private, s.get("RssAnon", 0) + s.get("RssShmem", 0))

    def reset(self) -> None:
        self.rss = self.private = 0.0

    def stop(self) -> None:
        self._stop.set()


def photo(path: Path, width: int, height: int) -> Path:
    img = Image.open(DEMO_BLUR).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    img.save(path, quality=92, subsampling=0)
    return path


def _deblur(page, jpg: Path) -> tuple[dict, float, int]:
    """Choose ``jpg`` in the page's file picker and wait for the run: (result JSON, wall s, frames drawn)."""
    page.wait_for_function("document.body.dataset.input === 'enabled'", timeout=300_000)
    frames0 = page.evaluate("window.__frames")
    t0 = time.time()
    with page.expect_file_chooser() as chooser:
        page.click("#drop")
    chooser.value.set_files(str(jpg))
    page.wait_for_function("document.body.dataset.status", timeout=3_600_000)
    wall = time.time() - t0
    result = json.loads(page.evaluate("document.getElementById('result-json').textContent"))
    result["status"] = page.evaluate("document.body.dataset.status")
    return result, wall, page.evaluate("window.__frames") - frames0


def measure(browser, url: str, jpg: Path, second_run: bool, download_to: Path | None) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("window.__frames = 0; (function f() { window.__frames++; requestAnimationFrame(f); })();")
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready || document.body.dataset.status", timeout=300_000)
    time.sleep(1)
    procs = browser.new_browser_cdp_session().send("SystemInfo.getProcessInfo")["processInfo"]
    pid = max((p["id"] for p in procs if p["type"] == "renderer"), key=lambda r: _status_mb(r).get("VmRSS", 0))
    ready = _status_mb(pid)
    sampler = Sampler(pid)
    result, wall, frames = _deblur(page, jpg)
    row = {"status": result["status"], "backend": result.get("backend"), "threads": result.get("threads"),
           "s": result.get("ms", 0) / 1000, "wall_s": wall, "tiles": result.get("tiles"), "frames": frames,
           "ready_mb": ready["VmRSS"], "peak_mb": max(sampler.rss, _status_mb(pid)["VmHWM"]),
           "private_peak_mb": sampler.private}  # fmt: skip
    if second_run and row["status"] == "done":
        sampler.reset()
        result2, _, _ = _deblur(page, jpg)
        row.update(second_status=result2["status"], second_s=result2.get("ms", 0) / 1000,
                   second_peak_mb=max(sampler.rss, _status_mb(pid)["VmHWM"]),
                   second_private_peak_mb=sampler.private)  # fmt: skip
    if download_to is not None and row["status"] == "done":
        sampler.reset()
        with page.expect_download(timeout=600_000) as download:
            page.click("#download")
        download.value.save_as(download_to)
        row.update(download_peak_mb=max(sampler.rss, _status_mb(pid)["VmHWM"]),
                   download_private_peak_mb=sampler.private)
    sampler.stop()
    row["errors"] = errors
    page.close()
    return row


def compare(site: Path, jpg: Path, png: Path) -> dict:
    import nafnet_litert as nl

    page = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    with nl.Restorer(str(site / "model_fp32.tflite")) as restorer:
        ref = restorer(np.asarray(Image.open(jpg).convert("RGB"))).astype(np.int16)
    diff = np.abs(page - ref)
    return {"max_diff": int(diff.max()), "differing": float((diff > 0).mean())}


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site")
    ap.add_argument("--megapixels", type=int, nargs="+", default=[12, 48], choices=sorted(SIZES))
    ap.add_argument("--accelerator", default="auto", choices=["auto", "wasm", "webgpu"])
    ap.add_argument("--no-compare", action="store_true", help="skip the second run, download and Python comparison")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    site = Path(a.site) if a.site else build_site("default", Path(tmp.name) / "site").folder
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?accelerator={a.accelerator}"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    rows = []
    for i, mp in enumerate(a.megapixels):
        w, h = SIZES[mp]
        jpg = photo(site / f"memory_{mp}mp.jpg", w, h)
        full = i == 0 and not a.no_compare
        png = Path(tmp.name) / "page.png" if full else None
        with sync_playwright() as pw:  # a fresh browser per photo
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--enable-unsafe-webgpu"])
            version = browser.version
            row = {"mp": mp, "size": f"{w}x{h}", **measure(browser, url, jpg, full, png)}
            browser.close()
        if png is not None and png.is_file():
            row.update(compare(site, jpg, png))
        rows.append(row)
        print(json.dumps(row), flush=True)
        jpg.unlink()
    server.shutdown()
    print(f"\nmachine: {cpu_name()}, {platform.machine()}, no GPU; Chromium {version}; accelerator={a.accelerator}; "
          "bundled model, 256 px tiles; JPEG q92 4:4:4 (the GoPro crop scaled up); chosen in the file "
          "picker")  # fmt: skip
    print("| photo | backend | s | frames drawn | renderer ready | renderer peak (private) | 2nd run peak (private) "
          "| with PNG download | vs Python |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        backend = f"{r['backend']}" + (f", {r['threads']} threads" if r.get("threads") else "")
        second = (f"{r['second_peak_mb']:.0f} MB ({r['second_private_peak_mb']:.0f} MB)" if "second_peak_mb" in r
                  else "")  # fmt: skip
        download = f"{r['download_peak_mb']:.0f} MB" if "download_peak_mb" in r else ""
        vs = f"max {r['max_diff']}/255, {100 * r['differing']:.4f}% of values differ" if "max_diff" in r else ""
        print(f"| {r['mp']} MP ({r['size']}) | {backend} | {r['s']:.0f} | {r['frames']} | {r['ready_mb']:.0f} MB "
              f"| {r['peak_mb']:.0f} MB ({r['private_peak_mb']:.0f} MB) | {second} | {download} | {vs} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
