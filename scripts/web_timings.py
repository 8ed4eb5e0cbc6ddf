"""Time the browser page in one run: WASM with 1 and 2 threads and WebGPU, same site, same photo (a benchmark, not a
test). Prints a markdown table and the machine.

    python scripts/web_timings.py [--site SITE] [--runs 3]

Without --site it writes one with `nafnet-litert web` (bundled model, 256 px tiles) into a temporary folder.
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

from nafnet_litert.tools.bench import cpu_name
from nafnet_litert.tools.demo import DEMO_BLUR
from nafnet_litert.tools.web import build_site, make_server


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    site = Path(a.site) if a.site else build_site("default", Path(tmp.name) / "site").folder
    photo = site / "timing_320x200.png"
    Image.fromarray(np.asarray(Image.open(DEMO_BLUR).convert("RGB"))[28:228]).save(photo)
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/index.html?image={photo.name}"
    rows = []
    with sync_playwright() as pw:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--enable-unsafe-webgpu"])
        for label, query in (("WASM, 1 thread", "&accelerator=wasm&threads=1"),
                             ("WASM, 2 threads", "&accelerator=wasm&threads=2"),
                             ("WebGPU", "&accelerator=webgpu")):  # fmt: skip
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
    print(f"machine: {cpu_name()}, {platform.machine()}, no GPU "
          f"(WebGPU = SwiftShader); Chromium {version}; photo 320x200 (GoPro crop), "
          f"{rows[0][1]['tiles']} tiles of {json.loads(Path(site, 'model_fp32.json').read_text())['size']['height']} px;"
          f" median of {a.runs} runs")  # fmt: skip
    print("| backend | weights | fully accelerated | ms per photo | ms per tile |")
    print("|---|---|---|---|---|")
    for label, r, ms in rows:
        weights = "fp16" if label == "WebGPU" else "fp32"
        print(f"| {label} | {weights} | {r['fullyAccelerated']} | {ms:.0f} | {ms / r['tiles']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
