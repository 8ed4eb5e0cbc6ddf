"""How deblurring scales with Ray, measured in one run (a benchmark, not a test), and a paper model for N nodes.

    python scripts/ray_scaling.py [--images DIR] [--model default] [--repeat 2]

On the same photos (default: the five 1280x720 GoPro frames in ../shared/data, each repeated --repeat times) it
times the single-machine pipeline and Ray local with 1 and 2 workers, measures Ray's per-photo overhead (the same
rows through an actor that does nothing), and from those figures sizes a cluster of N nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "gopro_frames" / "blur"


class _Nothing:
    def __call__(self, batch):
        return {"src": batch["src"]}


def _photos(src: Path, repeat: int, work: Path) -> Path:
    d = work / "in"
    d.mkdir()
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for k in range(repeat):
        for f in files:
            shutil.copy(f, d / f"{k}_{f.name}")
    return d


def main() -> int:
    import ray

    from nafnet_litert.restore import Restorer, plan_jobs, run_jobs
    from nafnet_litert.restore.cluster import connect, run_jobs_on_ray

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=str(SHARED))
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    cores = len(os.sched_getaffinity(0))
    try:
        src = _photos(Path(a.images), a.repeat, work)
        rows = []
        with Restorer(a.model, threads=cores) as r:
            r.litert_model((256, 256))  # export outside the timings
            jobs = plan_jobs(src, work / "single", False, False)
            st = run_jobs(r, jobs, progress=False)
            rows.append((f"single machine ({cores} threads)", st.images, st.seconds))
        connect("local", num_cpus=cores)
        for workers, threads in ((1, cores), (2, max(1, cores // 2))):
            with Restorer(a.model, threads=threads) as r, contextlib.redirect_stderr(io.StringIO()):
                jobs = plan_jobs(src, work / f"ray{workers}", False, False)
                st = run_jobs_on_ray(r, jobs, workers, progress=False)
            rows.append((f"Ray local, {workers} worker(s) x {threads} thread(s)", st.images, st.seconds))
        # Ray's own cost per photo: rows through an actor that does nothing; the slope between 20 and 220 rows
        # (start-up cancels out)
        n = len(jobs)

        def noop(rows: int) -> float:
            ds = ray.data.from_items([{"src": f"{i}"} for i in range(rows)], override_num_blocks=rows)
            t0 = time.perf_counter()
            list(ds.map_batches(_Nothing, batch_size=1, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1).iter_rows())
            return time.perf_counter() - t0

        overhead = max(1e-6, (noop(220) - noop(20)) / 200)
        ray.shutdown()
        photo = next(src.iterdir())
        from PIL import Image

        w, h = Image.open(photo).size
        print(f"{n} photos of {w}x{h} (bundled model, 256 px tiles, LiteRT fp16), {cores} cores, one run:\n")
        print("| pipeline | photos | seconds | photos/s | vs single |")
        print("|---|---|---|---|---|")
        base = rows[0][1] / rows[0][2]
        for label, images, seconds in rows:
            print(f"| {label} | {images} | {seconds:.1f} | {images / seconds:.2f} | {images / seconds / base:.2f}x |")
        per_node = rows[-1][1] / rows[-1][2]  # what one node of this size sustains under Ray
        per_photo = 1 / per_node
        print(f"\nRay overhead per photo (a no-op actor, same rows): {overhead * 1e3:.0f} ms "
              f"({overhead / per_photo * 100:.1f}% of a photo's time here)")  # fmt: skip
        print("\nOn paper: N nodes like this one, photos spread evenly, the driver only schedules (its cost is the "
              "overhead above, paid in parallel with the work):\n")  # fmt: skip
        print("| nodes | photos/s | 20,000 photos | 100,000 video frames |")
        print("|---|---|---|---|")
        for nodes in (1, 2, 4, 8, 16, 32, 64):
            rate = min(nodes * per_node, 1 / overhead if overhead > 0 else float("inf"))
            print(f"| {nodes} | {rate:.1f} | {20000 / rate / 3600:.2f} h | {100000 / rate / 3600:.2f} h |")
        print(f"\n(the driver caps the rate at 1 / overhead = {1 / overhead:.0f} photos/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
