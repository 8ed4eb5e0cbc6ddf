"""``nafnet-litert deblur INPUT -o OUTPUT``: photos, folders (mirrored tree) and videos at full resolution."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..facts import DEFAULT_MAX_PIXELS
from .common import add_restore_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deblur",
        help="deblur photos, folders or videos at their own resolution",
        description="Deblur a photo (PNG/JPEG/WebP/TIFF, 8/16-bit, gray, alpha, EXIF/ICC kept), every photo under a "
        "folder (mirrored output tree) or a video (audio kept). Fixed-size models run in overlapping, smoothly "
        "blended tiles; --full-frame runs the whole image at once with TLC (NAFNetLocal).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", help="photo, folder or video")
    p.add_argument("-o", "--output", required=True, help="output file or folder")
    p.add_argument("--model", default="default", help="default, a checkpoint, random:PRESET, or a .tflite")
    add_restore_arguments(p)
    p.add_argument("--compare", action="store_true", help="also write NAME_compare (before | after)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6,
                   help="refuse photos above this size before decoding them (decompression bombs)")  # fmt: skip
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run photos on a Ray cluster: auto (join this machine's cluster, else start one), local, "
                   "or a cluster address")  # fmt: skip
    p.add_argument("--workers", type=int, help="with --ray: model replicas (default: the cluster's CPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..restore import Restorer, plan_jobs, run_jobs
    from .common import restore_options

    from PIL import Image

    from ..errors import NafnetLitertError

    if not (math.isfinite(args.max_megapixels) and args.max_megapixels > 0):
        raise NafnetLitertError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    max_pixels = int(args.max_megapixels * 1e6)
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels // 2)  # Pillow refuses at twice this
    jobs = plan_jobs(Path(args.input), Path(args.output), args.compare, args.skip_existing)
    if not jobs:
        print("nothing to do: every output exists (--skip-existing)")
        return 0
    if args.workers is not None and (args.workers < 1 or not args.ray):
        raise NafnetLitertError("--workers is a positive number of Ray workers and goes with --ray")
    with Restorer(args.model, restore_options(args)) as restorer:
        if args.ray:
            from ..restore.cluster import connect, remove_orphans, run_jobs_on_ray

            ours = not _ray_running()
            ray = connect(args.ray, num_cpus=args.workers if args.ray != "auto" else None)
            try:
                stats = run_jobs_on_ray(restorer, jobs, args.workers, progress=not args.quiet, max_pixels=max_pixels)
            finally:  # success, failure, Ctrl-C, SIGTERM: our actors stopped first, then their leftovers swept
                if ours:
                    ray.shutdown()
                remove_orphans(jobs)
        else:
            stats = run_jobs(restorer, jobs, progress=not args.quiet, max_pixels=max_pixels)
    rate = stats.images / stats.seconds if stats.seconds else 0.0
    where = f" on {len(stats.nodes)} Ray node(s)" if stats.nodes else ""
    print(f"deblurred {stats.images} file(s){where} in {stats.seconds:.1f} s ({rate:.2f} images/s) -> {args.output}")
    if stats.failed:
        print(f"{len(stats.failed)} of {len(jobs)} file(s) failed (each reported above); the others are done",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _ray_running() -> bool:
    """Whether this process is already connected to Ray (then the run leaves that connection alone)."""
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())
