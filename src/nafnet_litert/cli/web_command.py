"""``nafnet-litert web [MODEL] -o SITE/`` and ``nafnet-litert serve SITE/ [--port N]``: deblur in the browser."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "web",
        help="write a static site that deblurs photos in the browser (LiteRT.js, WebGPU or WASM)",
        description="Exports MODEL as a tile model (fp32 for WASM, fp16 weights for WebGPU) and writes it with "
        "LiteRT.js (pinned, integrity-checked), index.html and nafnet.js into SITE. Serve it with "
        "'nafnet-litert serve SITE'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", nargs="?", default="default", help="default, a checkpoint, random:PRESET, stress:...")
    p.add_argument("-o", "--out", required=True, help="site folder")
    p.add_argument("--tile", type=int, default=256, help="tile size of the exported model (multiple of 16)")
    p.add_argument("--npm-dir", help="folder with the LiteRT.js .tgz files (machines without npm or network); "
                   "else they are fetched with `npm pack`")
    p.set_defaults(func=run_web)

    s = sub.add_parser(
        "serve",
        help="serve a site written by 'web' on 127.0.0.1 (cross-origin isolated: WASM threads)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("site", help="folder written by 'nafnet-litert web'")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(func=run_serve)


def run_web(args: argparse.Namespace) -> int:
    from ..web.build import build_site

    site = build_site(args.model, args.out, args.tile, args.npm_dir)
    mb = sum(site.files.values()) / 1e6
    print(f"wrote {site.folder} ({', '.join(sorted(site.files))}; {mb:.1f} MB + LiteRT.js)")
    print(f"open it with: nafnet-litert serve {site.folder}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ..web.serve import make_server

    server = make_server(args.site, args.port)
    host, port = server.server_address[:2]
    print(f"serving {args.site} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
