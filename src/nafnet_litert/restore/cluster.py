"""Deblur a folder on a Ray cluster (``deblur --ray``): the same files as the single-machine run, in parallel.

Design (Ray Data, no scheduler of our own):

* The driver plans the jobs exactly as a single-machine run (:func:`.batch.plan_jobs`: same names, mirrored tree,
  ``--skip-existing``, ``--compare``, every check before any work) and exports the tile model once (the export
  cache), so every worker runs the very same .tflite file.
* **The model reaches the workers through Ray's object store** (``ray.put`` of the file's bytes): nothing has to be
  shared between machines but the photos' folder (input and output paths must be visible on every node, e.g. an NFS
  or a bind mount); each actor writes the bytes to a private temporary file and compiles it once.
* Photos flow as a dataset of job rows through ``map_batches`` into a pool of actors (``ActorPoolStrategy(size=workers)``), one
  row per batch. Each actor holds one :class:`~.restorer.Restorer` (``threads`` per actor) and uses the package's
  own reader and writer (16-bit, alpha, EXIF/ICC kept, atomic writes), never Ray's ``read_images``. Large photos are
  tiled inside the actor, exactly as on one machine, so outputs are byte-identical.
* **Video:** the frames are split into ranges that actors restore in parallel (each decodes its own range from the
  shared file); the driver receives the restored ranges in order through the object store and encodes them once,
  with the audio, exactly as the single-machine run encodes its frames: the same frames give the same file.
* A photo that fails is reported in its row (the run goes on); a worker that dies is restarted by Ray and its rows
  retried (Ray Data's actor pool for photos, ``max_restarts``/``max_task_retries`` for the video actors); an output
  is only ever complete or absent (atomic writes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import NafnetLitertError
from .batch import Job, RunStats
from .restorer import Restorer


def connect(address: str = "auto", num_cpus: int | None = None):
    """``local``: start Ray on this machine (``num_cpus`` CPUs); ``auto``: join the cluster this machine belongs to
    (``ray start``), else start a local one; anything else: a cluster address (``ray://host:10001`` or
    ``host:6379``), joined within :data:`CONNECT_TIMEOUT` seconds or refused in one line that says why (nothing
    listening, no answer, or the cluster's token authentication)."""
    try:
        import ray
    except ImportError:
        raise NafnetLitertError("--ray needs Ray: pip install 'nafnet-litert[cluster]' (ray[data])") from None
    if ray.is_initialized():
        return ray
    if not os.environ.get("NAFNET_LITERT_VERBOSE"):  # after the import: importing Ray resets its loggers to INFO
        for name in ("ray", "ray.data"):  # Ray's notices on successful runs (token auth on, deprecations)
            logging.getLogger(name).setLevel(logging.ERROR)
    kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "include_dashboard": False}
    if num_cpus:  # a local Ray never gets more CPU slots than the machine has (--workers 1000 on 2 cores)
        num_cpus = min(num_cpus, os.cpu_count() or 1)
    with _own_sigterm_handler(), _connect_errors(address, ray):
        if address == "local":  # a new Ray of its own, even where `ray start` runs a cluster on this machine
            ray.init(address="local", num_cpus=num_cpus, **kw)
        elif address == "auto":
            try:
                ray.init(address="auto", **kw)
            except ConnectionError:
                ray.init(num_cpus=num_cpus, **kw)
        else:
            timeout = float(os.environ.get("NAFNET_LITERT_RAY_TIMEOUT") or CONNECT_TIMEOUT)
            hostport = _check_reachable(address, timeout)
            _init_within(ray, address, hostport, timeout, kw)
    return ray


@contextlib.contextmanager
def _connect_errors(address: str, ray):
    try:
        yield
    except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as e:
        raise NafnetLitertError(connect_failure(address, e)) from None


@contextlib.contextmanager
def _own_sigterm_handler():
    """Keep the caller's SIGTERM handler: ``ray.init`` in the main thread replaces it with ``sys.exit(15)``, which
    would skip the CLI's clean stop (exit 143, one line, temporaries swept)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: Seconds to wait for a cluster address to accept a connection (``NAFNET_LITERT_RAY_TIMEOUT`` overrides it).
CONNECT_TIMEOUT = 30.0


def _check_reachable(address: str, timeout: float) -> str:
    """Fail in one line, within ``timeout``, when nothing listens at ``address`` (``host:port`` or
    ``ray://host:port``): Ray's own ``init`` would retry silently for minutes. Returns ``host:port``."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise NafnetLitertError(f"bad Ray address {address!r}: use host:port (e.g. 10.0.0.5:6379) or ray://host:10001")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise NafnetLitertError(
            f"cannot reach the Ray cluster at {hostport} ({why} after at most {timeout:g} s): is `ray start --head` "
            "running there, and is the port open?"
        ) from None
    return hostport


CONNECT_THREAD = "nafnet-litert-ray-connect"


def connect_left_hanging() -> bool:
    """True while a ``ray.init`` that was given up on (timeout, Ctrl-C, SIGTERM) still blocks its helper thread.
    Such a process must end with ``os._exit``: a normal interpreter exit runs Ray's shutdown against the half-made
    connection and, on a loaded machine, dies by SIGABRT instead of returning its exit code (seen 4 times in 8 runs
    with three busy cores)."""
    import threading

    return any(t.name == CONNECT_THREAD and t.is_alive() for t in threading.enumerate())


def _init_within(ray, address: str, hostport: str, timeout: float, kw: dict[str, Any]) -> None:
    """``ray.init(address)`` in a helper thread, so that the main thread keeps taking Ctrl-C and SIGTERM (Ray's
    native connect blocks the thread that calls it, ignoring both) and gives up after ``timeout`` seconds (a port
    that accepts TCP but is not a Ray cluster is retried forever)."""
    import threading

    outcome: list[BaseException | None] = []

    def join():
        try:
            ray.init(address=address, **kw)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outcome.append(e)

    notices = logging.getLogger("ray._private.worker")
    notices.addFilter(_not_the_thread_notice)
    try:
        t = threading.Thread(target=join, name=CONNECT_THREAD, daemon=True)
        t.start()
        deadline = time.monotonic() + timeout
        while t.is_alive() and time.monotonic() < deadline:
            t.join(0.1)  # between waits the main thread runs its signal handlers
    finally:
        notices.removeFilter(_not_the_thread_notice)
    if t.is_alive():
        raise NafnetLitertError(
            f"cannot join the Ray cluster at {hostport}: no answer within {timeout:g} s (the port is open: is it the "
            "head's GCS port, 6379 by default, or ray://host:10001? A cluster with token authentication also needs "
            "RAY_AUTH_MODE=token; NAFNET_LITERT_RAY_TIMEOUT sets the wait)"
        )
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _not_the_thread_notice(record: logging.LogRecord) -> bool:
    """False for Ray's "SIGTERM handler is not set because current thread is not the main thread" notice, which a
    connect from the helper thread triggers: the CLI's own handler stays in charge of SIGTERM, as it should."""
    return "SIGTERM handler is not set" not in record.getMessage()


def connect_failure(address: str, e: BaseException) -> str:
    """One line for a failed ``ray.init``: the token-authentication fix where that is the cause (Ray wraps it, and
    its message, in a generic "Failed to connect"), else the deepest cause's last line."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(f"{type(x).__name__}: {x}" for x in chain)
    if "AuthenticationError" in text or "InvalidAuthToken" in text or "Unauthenticated" in text:
        mode = (os.environ.get("RAY_AUTH_MODE") or "").lower()
        if mode != "token":
            sent = f"RAY_AUTH_MODE is {mode or 'unset'}, so no token was sent"
        else:
            have = [k for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if os.environ.get(k)]
            sent = f"the token from {' and '.join(have) or '~/.ray/auth_token'} was missing or wrong"
        return (
            f"the Ray cluster {address!r} uses token authentication and refused this client ({sent}): set "
            "RAY_AUTH_MODE=token and give the cluster's token (`ray get-auth-token` on the head) in "
            "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
        )
    deepest = chain[-1]
    lines = [ln.strip() for ln in str(deepest).strip().splitlines() if ln.strip()]
    why = lines[-1] if lines else type(deepest).__name__
    return f"cannot reach the Ray cluster {address!r}: {why[:200]}"


def worker_count(requested: int | None, jobs: int, say) -> int:
    """``--workers`` capped at the cluster's CPUs and the number of jobs (one actor per CPU slot), with a note when
    a number the user asked for is lowered (None: as many as the cluster's CPUs and the jobs allow, silently)."""
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    n = max(1, min(requested or cpus, cpus, jobs))
    if requested is not None and n < requested:
        say(f"--workers {requested} lowered to {n} (the cluster has {cpus} CPU(s) and the run {jobs} job(s))")
    return n


def _ship(restorer: Restorer) -> tuple[list, dict]:
    """Driver side, once per run: the tile model exported (or taken from the cache) and put in the object store,
    and the options every worker's restorer gets. The reference is wrapped in a list so that Ray passes it to actor
    constructors as is (the actor fetches the bytes)."""
    import ray

    o = restorer.options
    if o.backend != "litert" or o.full_frame:
        raise NafnetLitertError("--ray runs LiteRT tile models: drop --backend torch / --full-frame")
    restorer.litert_model((o.tile, o.tile))
    return [ray.put(restorer.model_files[0].read_bytes())], {"threads": o.threads, "overlap": o.overlap, "gpu": o.gpu}


class _WorkerModel:
    """Worker side: the shipped tile model written to a private temporary file and compiled once."""

    def __init__(self, model_ref: list, options: dict):
        import ray

        self._dir = tempfile.TemporaryDirectory(prefix="nafnet-litert-worker-")
        path = Path(self._dir.name) / "model.tflite"
        path.write_bytes(ray.get(model_ref[0]))
        self.restorer = Restorer(str(path), **options)


class _DeblurActor(_WorkerModel):
    """One per worker: a compiled tile model from the object store, and the package's reader and writer."""

    def __init__(self, model_ref: list, options: dict, max_pixels: int | None):
        super().__init__(model_ref, options)
        self.max_pixels = max_pixels

    def __call__(self, batch: dict) -> dict:
        from ..io.image import read_photo
        from .batch import failure_reason, write_outputs

        import ray

        node = ray.get_runtime_context().get_node_id()
        out = {"src": [], "error": [], "tiles": [], "node": [], "pid": []}
        for src, dst, compare in zip(batch["src"], batch["dst"], batch["compare"]):
            error, tiles = "", 0
            try:
                photo = read_photo(src, self.max_pixels)
                restored = self.restorer.restore_photo(photo)
                write_outputs(photo, restored, Job(Path(src), Path(dst), Path(compare) if compare else None))
                tiles = self.restorer.tiles_for(*photo.color.shape[:2])
            except Exception as e:  # noqa: BLE001 - reported per file, the run goes on
                error = failure_reason(e)
            out["src"].append(src)
            out["error"].append(error)
            out["tiles"].append(tiles)
            out["node"].append(node)
            out["pid"].append(os.getpid())
        return out


class _VideoActor(_WorkerModel):
    """Restores frame ranges of a video with one compiled tile model."""

    def restore_range(self, src: str, start: int, end: int):
        """Frames [start, end) of ``src``, restored, as one uint8 array [n, H, W, 3]."""
        import numpy as np

        from ..io.video import read_video

        frames, _ = read_video(Path(src))
        out = []
        for i, (frame, _pts) in enumerate(frames):
            if i >= end:
                break
            if i >= start:
                out.append(self.restorer.restore(frame))
        frames.close()
        return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def deblur_video_on_ray(
    restorer: Restorer, src: Path, dst: Path, workers: int | None = None, progress: bool = True, shipped=None
) -> int:
    """Deblur ``src`` into ``dst`` with ``workers`` actors restoring frame ranges in parallel; the driver encodes
    the frames in order with the audio (:func:`~nafnet_litert.io.video.write_video`), so the result is frame for
    frame the single-machine output. Returns the number of frames."""
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    from ..io.video import check_complete, frame_times, probe, write_video

    info = probe(src)
    times = frame_times(src)  # every frame's timestamp, in order: the frames keep them, as on one machine
    n = len(times)
    check_complete(src, info, next((t for t in reversed(times) if t is not None), None), n)
    model_ref, options = shipped or _ship(restorer)
    planned = workers or worker_count(None, n, lambda _note: None)  # None: the cluster's CPUs, at most n
    chunk = max(1, -(-n // (4 * planned)))  # about four ranges per worker: balance without much re-decoding
    ranges = [(start, min(n, start + chunk)) for start in range(0, n, chunk)]
    actor = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)(_VideoActor)
    workers = worker_count(workers, len(ranges), lambda m: tqdm.write(m, file=sys.stderr))
    pool = ActorPool([actor.remote(model_ref, options) for _ in range(workers)])
    bar = tqdm(total=n, unit="frame", disable=not progress, desc=f"{src.name} (ray)", leave=False)

    def frames():
        i = 0
        for block in pool.map(lambda a, r: a.restore_range.remote(str(src), *r), ranges):  # results in order
            for frame in block:
                yield frame, times[i]
                i += 1
            bar.update(len(block))

    try:
        return write_video(src, dst, info, frames())
    finally:
        bar.close()


def remove_orphans(jobs: list[Job]) -> None:
    """A worker killed while writing (SIGKILL, a lost node, the run stopped) cannot remove its temporary file; its
    output is either complete (the task was retried) or absent. Remove such ``.<stem>.XXXXXXXX<suffix>`` leftovers
    of these jobs' outputs. Called when a run ends, however it ends."""
    from ..io.files import temporaries_of

    for j in jobs:
        for out in (j.dst, j.compare):
            for tmp in temporaries_of(out) if out is not None else ():
                tmp.unlink(missing_ok=True)


def run_jobs_on_ray(
    restorer: Restorer,
    jobs: list[Job],
    workers: int | None = None,
    progress: bool = True,
    log=None,
    max_pixels: int | None = None,
) -> RunStats:
    """Process photo ``jobs`` on the connected Ray cluster with ``workers`` actors, each running ``restorer``'s tile
    model with its options. Returns the same :class:`RunStats` as :func:`.batch.run_jobs` (plus ``nodes``)."""
    import ray
    import ray.exceptions
    from tqdm import tqdm

    from .batch import VIDEO_SUFFIXES

    model_ref, options = _ship(restorer)  # once per run, photos and videos alike
    stats = RunStats()
    t0 = time.perf_counter()
    videos = [j for j in jobs if j.src.suffix.lower() in VIDEO_SUFFIXES]
    jobs = [j for j in jobs if j.src.suffix.lower() not in VIDEO_SUFFIXES]
    for j in videos:
        try:
            j.dst.parent.mkdir(parents=True, exist_ok=True)
            deblur_video_on_ray(restorer, j.src, j.dst, workers, progress, (model_ref, options))
            stats.images += 1
        except NafnetLitertError as e:
            if len(videos) + len(jobs) == 1:
                raise
            stats.failed.append((j.src, str(e)))
    if not jobs:
        stats.seconds = time.perf_counter() - t0
        stats.nodes = sorted({n["NodeID"] for n in ray.nodes() if n.get("Alive")})
        return stats
    rows = [{"src": str(j.src), "dst": str(j.dst), "compare": str(j.compare) if j.compare else ""} for j in jobs]
    say = log or (lambda m: tqdm.write(m, file=sys.stderr))
    workers = worker_count(workers, len(rows), say)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours is the one bar
    quiet = not os.environ.get("NAFNET_LITERT_VERBOSE")
    logging.getLogger("ray.data").setLevel(logging.ERROR if quiet else logging.WARNING)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    ds = ds.map_batches(
        _DeblurActor,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,  # one scheduling slot per actor; LiteRT's own threads are --threads
        fn_constructor_kwargs={"model_ref": model_ref, "options": options, "max_pixels": max_pixels},
        # no max_restarts/max_task_retries here: Ray Data's actor pool restarts dead actors and retries their
        # rows by itself, and passing them as remote args is deprecated (a warning on stderr); measured in #28: with
        # them, retries went to a vanished actor after a node loss
    )
    bar = tqdm(total=len(rows), unit="img", disable=not progress, desc=f"deblur (ray, {workers} workers)")
    nodes: set[str] = set()
    try:
        for row in ds.iter_rows():
            nodes.add(row["node"])
            if row["error"]:
                stats.failed.append((Path(row["src"]), row["error"]))
                say(f"skipped {row['src']}: {row['error']}")
            else:
                stats.images += 1
                stats.tiles += int(row["tiles"])
            bar.update(1)
    except ray.exceptions.RayError as e:  # the cluster itself failed (not one photo): one line, not Ray's trace
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NafnetLitertError(f"the Ray run failed ({type(e).__name__}: {first})") from None
    finally:
        bar.close()
        remove_orphans(jobs)
    stats.seconds = time.perf_counter() - t0
    stats.nodes = sorted(nodes)
    return stats
