"""``nafnet-litert tiling-study``: measure how the tile overlap moves quality and seams (how the default was chosen)."""

from __future__ import annotations

import argparse

from .common import check_json_path, write_json


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench.tiling_study import __doc__ as doc

    p = sub.add_parser(
        "tiling-study",
        help="measure PSNR and seams of tiled deblurring for several overlaps",
        description=(doc or "").split("\n\n")[0],  # no docstring under python -OO
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="blur/sharp pairs (GoPro layout)")
    p.add_argument("--model", default="default")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlaps", default="0,16,32,64,96", help="comma-separated overlaps in pixels")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results as JSON")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..errors import NafnetLitertError
    from ..bench.tiling_study import format_table, study

    try:
        overlaps = tuple(int(v) for v in a.overlaps.split(","))
    except ValueError:
        raise NafnetLitertError(f"--overlaps must be comma-separated whole numbers, got {a.overlaps!r}") from None
    check_json_path(a.json)
    res = study(a.data, a.model, a.tile, overlaps, a.threads)
    print(format_table(res))
    write_json(a.json, res)
    return 0
