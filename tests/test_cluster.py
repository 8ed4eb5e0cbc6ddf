"""``deblur --ray``: the same files as the single-machine run, made by Ray Data actors (Ray local, 2 CPUs)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from nafnet_litert.cli import main

from .conftest import make_clip, photo_array

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    """One Ray local (2 CPU slots at most) for this module's in-process runs: a run that finds Ray running uses it
    and leaves it running, as it would in a notebook; each start costs ~10 CPU-seconds. (The subprocess runs
    below start their own.)"""
    from nafnet_litert.restore.cluster import connect

    ray = connect("local", num_cpus=2)  # the CLI's own start (capped at the machine's CPUs, quiet, no dashboard)
    yield
    ray.shutdown()


def _folder(root):
    """8-bit, 16-bit, RGBA and EXIF-rotated photos in a nested tree, and one broken file."""
    import png

    (root / "sub").mkdir(parents=True)
    u8 = (photo_array("chelsea.png", (70, 90), (50, 80)) * 255).round().astype(np.uint8)
    Image.fromarray(u8).save(root / "rgb8.png")
    u16 = (photo_array("coffee.png", (60, 80), (100, 100)) * 65535).round().astype(np.uint16)
    png.Writer(80, 60, greyscale=False, bitdepth=16).write(open(root / "sub" / "rgb16.png", "wb"),
                                                          u16.reshape(60, -1).tolist())  # fmt: skip
    alpha = np.linspace(0, 255, 70 * 90).reshape(70, 90, 1).astype(np.uint8)
    Image.fromarray(np.concatenate([u8, alpha], axis=2)).save(root / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    Image.fromarray(u8).save(root / "sub" / "rotated.jpg", exif=exif.tobytes(), quality=95)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")


@pytest.mark.slow
def test_ray_local_writes_the_single_machine_files_byte_for_byte(tmp_path, small_checkpoint_file, ray_local, capsys):
    ckpt = small_checkpoint_file
    src = tmp_path / "in"
    _folder(src)
    flags = ["--model", str(ckpt), "--tile", "32", "--overlap", "8", "--precision", "fp32", "--compare", "--quiet"]
    assert main(["deblur", str(src), "-o", str(tmp_path / "one"), *flags]) == 2  # the broken file: reported
    capsys.readouterr()
    # --workers 1000: capped at the cluster's CPU slots, and the user is told
    assert main(["deblur", str(src), "-o", str(tmp_path / "ray"), *flags, "--ray", "local", "--workers", "1000"]) == 2
    out = capsys.readouterr()
    assert "broken.png" in out.err and "1 of 5 file(s) failed" in out.err and "on 1 Ray node(s)" in out.out
    assert f"--workers 1000 lowered to {min(2, os.cpu_count() or 1)}" in out.err, out.err
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "ray"): p.read_bytes() for p in (tmp_path / "ray").rglob("*") if p.is_file()}
    assert len(one) == 8 and one.keys() == two.keys()  # 4 photos + 4 comparisons, same names and tree
    assert all(one[k] == two[k] for k in one), [str(k) for k in one if one[k] != two[k]]
    assert not [p for p in (tmp_path / "ray").rglob(".*")]  # no temporary file left


def test_ray_flags_are_checked(tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p.png")
    assert main(["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "q.png"), "--workers", "2"]) == 2
    assert "goes with --ray" in capsys.readouterr().err


def _many(root, n=24, size=256):
    root.mkdir(parents=True)
    img = photo_array("astronaut.png", (size, size), (0, 0))
    for i in range(n):
        a = np.roll(img, 7 * i, axis=1)
        Image.fromarray((a * 255).round().astype(np.uint8)).save(root / f"p{i:02d}.png")


def _done(out) -> list:
    """The finished photos in ``out`` (a worker's hidden temporary ``.p00.XXXXXXXX.png`` is not one)."""
    return [q for q in out.glob("[!.]*.png")] if out.is_dir() else []


@pytest.mark.slow
def test_killing_a_worker_mid_run_loses_nothing(tmp_path, small_checkpoint_file, ray_local, capsys):
    """SIGKILL one actor's process (its PID from Ray's actor table) while photos are in flight: Ray restarts it and
    retries its rows; the run exits 0, every output is complete and equal to the single-machine one, and no
    temporary file is left."""
    import os
    import signal
    import threading
    import time

    import ray
    # Ray's actor table (GCS): what `ray list actors` shows, without the dashboard that ray.util.state needs
    from ray._private.state import actors  # noqa: PLC2701

    ckpt = small_checkpoint_file
    src = tmp_path / "in"
    _many(src)
    flags = ["--model", str(ckpt), "--tile", "32", "--overlap", "8", "--precision", "fp32", "--quiet"]
    assert main(["deblur", str(src), "-o", str(tmp_path / "one"), *flags]) == 0
    out = tmp_path / "ray"
    rc = []
    run = threading.Thread(
        target=lambda: rc.append(main(["deblur", str(src), "-o", str(out), *flags, "--ray", "local", "--workers", "2"]))
    )
    run.start()
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and killed is None and run.is_alive():
        if ray.is_initialized() and out.is_dir() and len(list(out.glob("*.png"))) >= 2:
            for actor in actors().values():
                if actor["State"] == "ALIVE" and "MapWorker" in actor["ActorClassName"] and actor.get("Pid"):
                    os.kill(actor["Pid"], signal.SIGKILL)
                    killed = actor["Pid"]
                    break
        time.sleep(0.1)
    run.join(timeout=300)
    assert killed is not None, "no worker was killed: the run ended too soon"
    assert rc == [0], capsys.readouterr().err[-3000:]
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in out.iterdir()}
    assert one.keys() == two.keys() and all(one[k] == two[k] for k in one)  # complete, and the same bytes


@pytest.mark.slow
def test_ray_video_is_frame_for_frame_the_single_machine_one(tmp_path, small_checkpoint_file, ray_local):
    """Frame ranges restored by two actors in parallel, encoded in order with the audio by the driver: the same
    decoded frames as the single-machine run, and the audio is kept."""
    import subprocess

    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    clip = make_clip(tmp_path / "clip.mp4", seconds=3)
    ckpt = small_checkpoint_file
    flags = ["--model", str(ckpt), "--tile", "32", "--overlap", "8", "--precision", "fp32", "--quiet"]
    assert main(["deblur", str(clip), "-o", str(tmp_path / "one.mp4"), *flags]) == 0
    assert main(["deblur", str(clip), "-o", str(tmp_path / "ray.mp4"), *flags, "--ray", "local", "--workers", "2"]) == 0

    def frames(p):
        reader = imageio_ffmpeg.read_frames(str(p))
        next(reader)
        return [bytes(f) for f in reader]

    one, two = frames(tmp_path / "one.mp4"), frames(tmp_path / "ray.mp4")
    assert len(one) == len(two) == 30 and one == two
    probe = subprocess.run([ff, "-i", str(tmp_path / "ray.mp4")], capture_output=True, text=True).stderr
    assert "Audio:" in probe and "Video: h264" in probe


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stopped_ray_run_leaves_only_complete_outputs(tmp_path, small_checkpoint_file, sig):
    """Ctrl-C or SIGTERM in the middle of a `--ray local` run: exit 130/143, every output that exists is complete
    (the single-machine bytes), and no hidden temporary is left by the workers that were stopped mid-write."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    _many(src, n=24, size=256)
    flags = ["--model", str(small_checkpoint_file), "--tile", "32", "--overlap", "8", "--precision", "fp32", "--quiet"]
    out = tmp_path / "ray"
    p = subprocess.Popen([sys.executable, "-m", "nafnet_litert.cli", "deblur", str(src), "-o", str(out), *flags,
                          "--ray", "local", "--workers", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline and not _done(out):
        time.sleep(0.05)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=300)
    assert p.returncode == {"SIGINT": 130, "SIGTERM": 143}[sig], err[-3000:]
    # Ray local was started with no more CPU slots than the machine has (not the 1000 asked for)
    assert f"--workers 1000 lowered to {min(os.cpu_count() or 1, 24)}" in err, err[-3000:]
    written = {q.name: q.read_bytes() for q in out.iterdir()}
    assert 0 < len(written) < 24, "the run was not in flight when it was stopped"
    assert not [q for q in out.rglob(".*")]
    done = tmp_path / "done"  # the single-machine run of just the photos that were written
    done.mkdir()
    for name in written:
        shutil.copy(src / name, done / name)
    assert main(["deblur", str(done), "-o", str(tmp_path / "one"), *flags]) == 0
    assert all(written[k] == (tmp_path / "one" / k).read_bytes() for k in written)
