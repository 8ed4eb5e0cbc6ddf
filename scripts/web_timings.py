"""Time the browser page in one run: WASM with 1 and 2 threads and WebGPU on a 320x200 crop, and `auto` on a
1280x720 frame, same site (a benchmark, not a test). Prints a markdown table and the machine.

    python scripts/web_timings.py [--site SITE] [--runs 3] [--frame FRAME.png]

Without --site it writes one with `nafnet-litert web` (bundled model, 256 px tiles) into a temporary folder. The
frame is a held-out GoPro frame from ../shared/data when there is one, else the bundled crop scaled to 1280x720.
The ms are the page's own (from choosing the photo to the last row), in a new page each run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from nafnet_litert.bench.bench import cpu_name
from nafnet_litert.eval.demo import DEMO_BLUR
from nafnet_litert.web import build_site, make_server


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frame", help="a 1280x720 photo for the `auto` row")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    site = Path(a.site) if a.site else build_site("default", Path(tmp.name) / "site").folder
    photo = site / "timing_320x200.png"
    Image.fromarray(np.asarray(Image.open(DEMO_BLUR).convert("RGB"))[28:228]).save(photo)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "gopro_frames" / "blur" / "dgtf_01.png"
    frame = site / "timing_1280x720.png"
    if a.frame or shared.is_file():
        shutil.copy(a.frame or shared, frame)
    else:
        Image.open(DEMO_BLUR).convert("RGB").resize((1280, 720), Image.Resampling.LANCZOS).save(frame)
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html?image="
    rows = []
    with sync_playwright() as pw:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--enable-unsafe-webgpu"])
        for label, query in (("WASM, 1 thread", f"{photo.name}&accelerator=wasm&threads=1"),
                             ("WASM, 2 threads", f"{photo.name}&accelerator=wasm&threads=2"),
                             ("WebGPU", f"{photo.name}&accelerator=webgpu"),
                             ("auto, 1280x720 frame", f"{frame.name}&accelerator=auto")):  # fmt: skip
            times, result = [], {}
            for _ in range(a.runs):
                page = browser.new_page()
                page.goto(base + query)
                page.wait_for_function("document.body.dataset.status", timeout=600_000)
                result = json.loads(page.evaluate("document.getElementById('result-json').textContent"))
                page.close()
                if "ms" not in result:
                    raise SystemExit(f"{label}: {result}")
                times.append(result["ms"])
            rows.append((label, result, statistics.median(times)))
        version = browser.version
        browser.close()
    server.shutdown()
    tile = json.loads(Path(site, "model_fp32.json").read_text())["size"]["height"]
    print(f"machine: {cpu_name()}, {platform.machine()}, no GPU (WebGPU = SwiftShader, a fallback adapter); "
          f"Chromium {version}; {tile} px tiles; median of {a.runs} runs")  # fmt: skip
    print("| photo | backend | weights | fully accelerated | tiles | ms per photo | ms per tile |")
    print("|---|---|---|---|---|---|---|")
    for label, r, ms in rows:
        weights = "fp16" if r["backend"] == "webgpu" else "fp32"
        picked = f"{label} → {r['backend']}" if label.startswith("auto") else label
        size = f"{r['width']}x{r['height']}"
        print(f"| {size} | {picked} | {weights} | {r['fullyAccelerated']} | {r['tiles']} | {ms:.0f} | "
              f"{ms / r['tiles']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
