"""Faults, injected: full disks (a real tmpfs of a few KB), planted symlinks/FIFOs, models that lie, broken videos,
unreachable clusters. Each one ends in one line and a non-zero exit, with nothing lost and nothing leaked."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_clip

CLI = [sys.executable, "-m", "nafnet_litert.cli"]


def _run(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    args = [*map(str, args), *(["--quiet"] if args[0] == "deblur" else [])]  # no progress bars on stderr
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------ native logs
@pytest.mark.parametrize("planted", ["symlink", "directory", "fifo"])
def test_native_logs_never_touch_a_planted_path(tmp_path, small_exports, planted):
    """Every command used to append LiteRT's native logs to $TMPDIR/nafnet-litert-native.log, following symlinks
    (as root: into any file), with a traceback for a directory and a hang for a FIFO."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o444)
    fixed = tmpdir / "nafnet-litert-native.log"
    if planted == "symlink":
        fixed.symlink_to(victim)
    elif planted == "directory":
        fixed.mkdir()
    else:
        os.mkfifo(fixed)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    env.pop("NAFNET_LITERT_VERBOSE", None)
    r = _run("audit", small_exports["fp32"].model_path, "--json", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["passed"] is True
    assert "Traceback" not in r.stderr
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmpdir.iterdir()) == ["nafnet-litert-native.log"]  # nothing left behind


# ------------------------------------------------------------------------------------------------ full disks
@contextlib.contextmanager
def tiny_disk(root: Path, kib: int):
    """A real tmpfs of ``kib`` KiB mounted at ``root`` (CI and these machines run as root)."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    if free > leave:
        (disk / "ballast").write_bytes(b"\0" * (free - leave))


def _photo(path: Path, size=(48, 40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    return path


def test_disk_full_while_writing_a_photo_keeps_the_previous_output(tmp_path, small_exports):
    src = _photo(tmp_path / "in.png", (96, 80))
    with tiny_disk(tmp_path / "disk", 64) as disk:
        old = _photo(disk / "out.png", (20, 20), seed=5)
        before = old.read_bytes()
        _fill(disk, 2048)  # the restored 96x80 PNG of noise needs ~23 KB
        r = _run("deblur", src, "-o", old, "--model", small_exports["fp32"].model_path)
        assert r.returncode == 2, r.stderr
        line = _one_line(r.stderr)
        assert "disk full" in line and "in.png" in line, line
        assert old.read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "out.png"]  # no temporary left


def test_disk_full_while_writing_a_tflite_keeps_the_previous_model(tmp_path, small_checkpoint_file):
    with tiny_disk(tmp_path / "disk", 256) as disk:
        old = disk / "m.tflite"
        old.write_bytes(b"an older model")
        _fill(disk, 16 << 10)  # the small model is ~100 KB
        r = _run("convert", small_checkpoint_file, "-o", old, "--size", "64", "--precision", "fp32")
        assert r.returncode == 2, r.stderr
        assert "disk full" in _one_line(r.stderr)
        assert old.read_bytes() == b"an older model"
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "m.tflite"]


def _pages(n: int) -> int:
    return -(-n // 4096) * 4096  # tmpfs counts whole pages


def test_disk_full_while_writing_the_sidecar_keeps_the_previous_model_and_sidecar(
    tmp_path, small_checkpoint_file, small_exports
):
    """The model fits, its sidecar does not: neither is replaced (a new model beside an old sidecar would fail its
    own SHA-256 check)."""
    size = small_exports["fp32"].model_path.stat().st_size  # the same graph as the one converted below
    with tiny_disk(tmp_path / "disk", (_pages(size) >> 10) + 64) as disk:
        (disk / "m.tflite").write_bytes(b"an older model")
        (disk / "m.json").write_text('{"older": true}\n')
        _fill(disk, _pages(size))  # exactly the model's pages: the sidecar's first byte finds the disk full
        r = _run("convert", small_checkpoint_file, "-o", disk / "m.tflite", "--size", "64", "--precision", "fp32")
        assert r.returncode == 2, r.stderr
        line = _one_line(r.stderr)
        assert "disk full" in line and "m.json" in line, line  # the model was written; its sidecar was not
        assert (disk / "m.tflite").read_bytes() == b"an older model"
        assert (disk / "m.json").read_text() == '{"older": true}\n'
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "m.json", "m.tflite"]


def test_disk_full_while_writing_eval_reports_keeps_the_previous_three(tmp_path, small_checkpoint_file):
    data = tmp_path / "data"
    for sub in ("blur", "sharp"):
        (data / "seq" / sub).mkdir(parents=True)
        _photo(data / "seq" / sub / "000.png", (64, 48), seed=1 if sub == "blur" else 2)
    flags = ["--data", data, "--model", small_checkpoint_file, "--backend", "torch", "--quiet", "--name", "r"]
    with tiny_disk(tmp_path / "disk", 64) as disk:
        old = {f"r.{ext}": f"old {ext}\n" for ext in ("json", "csv", "md")}
        for name, text in old.items():
            (disk / name).write_text(text)
        _fill(disk, 4096)  # room for one report file, not three
        r = _run("eval", *flags, "-o", disk)
        assert r.returncode == 2, r.stderr
        assert "disk full" in _one_line(r.stderr)
        assert {p.name: p.read_text() for p in disk.iterdir() if p.name != "ballast"} == old


def test_disk_full_while_training_keeps_the_previous_checkpoint(tmp_path):
    with tiny_disk(tmp_path / "disk", 256) as disk:
        out = disk / "fit.safetensors"
        out.write_bytes(b"an older checkpoint")
        _fill(disk, 8192)  # the tiny config's weights are ~60 KB
        r = _run("train", "--synthetic-blur", "bundled", "--config", "tiny", "--steps", "2", "--crop", "32",
                 "--batch-size", "2", "-o", out, timeout=600)  # fmt: skip
        assert r.returncode == 2, r.stderr
        last = r.stderr.strip().splitlines()[-1]  # after train's own progress lines
        assert "Traceback" not in r.stderr and "disk full" in last and "fit.safetensors" in last, r.stderr
        assert out.read_bytes() == b"an older checkpoint"
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "fit.safetensors"]


def test_disk_full_while_building_the_web_site_keeps_the_previous_site(tmp_path, small_checkpoint_file):
    """The site is built beside the folder and swapped in by renames: a full disk half way leaves the old site."""
    from nafnet_litert.web.build import SITE_MARKER

    with tiny_disk(tmp_path / "disk", 1024) as disk:
        site = disk / "site"
        site.mkdir()
        old = {SITE_MARKER: "an older site\n", "index.html": "<p>the previous page</p>"}
        for name, text in old.items():
            (site / name).write_text(text)
        _fill(disk, 256 << 10)  # the two small models fit, LiteRT.js (several MB) does not
        r = _run("web", small_checkpoint_file, "-o", site, "--tile", "64")
        assert r.returncode == 2, r.stderr
        assert "disk full" in _one_line(r.stderr)
        assert {p.name: p.read_text() for p in site.iterdir()} == old
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "site"]  # nothing staged is left


def test_disk_full_while_writing_a_video_keeps_the_previous_output(tmp_path, small_exports):
    clip = make_clip(tmp_path / "clip.mp4", 2)
    with tiny_disk(tmp_path / "disk", 128) as disk:
        old = disk / "out.mp4"
        old.write_bytes(b"the previous good output")
        _fill(disk, 6 << 10)  # the restored 2 s clip needs ~40 KB; ffmpeg fails to write its index
        r = _run("deblur", clip, "-o", old, "--model", small_exports["fp32"].model_path)
        assert r.returncode == 2, r.stderr
        assert "disk full" in _one_line(r.stderr)
        assert old.read_bytes() == b"the previous good output"
        assert sorted(p.name for p in disk.iterdir()) == ["ballast", "out.mp4"]


# ------------------------------------------------------------------------------------------------ one error funnel
def test_any_failure_of_one_job_is_one_line_with_the_file_name(tmp_path, small_exports, monkeypatch, capsys):
    """A failure that is not the package's own (here an EXIF decoder's struct.error) used to reach the CLI as a
    traceback; it is one line naming the file, exit 2."""
    import struct

    from nafnet_litert import cli
    from nafnet_litert.restore import batch

    def broken(*a, **k):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(batch, "read_photo", broken)
    src = _photo(tmp_path / "odd_exif.jpg")
    code = cli.main(["deblur", str(src), "-o", str(tmp_path / "out.png"), "--model",
                     str(small_exports["fp32"].model_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    line = _one_line(err)
    assert "odd_exif.jpg" in line and "unpack requires a buffer" in line, line
    assert not (tmp_path / "out.png").exists()


def test_bad_max_megapixels_is_one_line(tmp_path, small_exports):
    src = _photo(tmp_path / "in.png")
    r = _run("deblur", src, "-o", tmp_path / "out.png", "--model", small_exports["fp32"].model_path,
             "--max-megapixels", "inf")  # fmt: skip
    assert r.returncode == 2
    _one_line(r.stderr)
    assert not (tmp_path / "out.png").exists()


# ------------------------------------------------------------------------------------------------ models that lie
def _ckpt_with(tmp_path: Path, small_checkpoint, edit) -> Path:
    from nafnet_litert.models.checkpoint import save_safetensors

    sd = {k: v.clone() for k, v in small_checkpoint.state_dict.items()}
    edit(sd)
    path = tmp_path / "edited.safetensors"
    save_safetensors(sd, path)
    return path


def test_a_nan_weight_is_refused_at_load_with_its_name(tmp_path, small_checkpoint):
    import torch

    def nan(sd):
        sd["middle_blks.0.conv3.weight"][0, 0, 0, 0] = float("nan")

    path = _ckpt_with(tmp_path, small_checkpoint, nan)
    r = _run("deblur", _photo(tmp_path / "in.png"), "-o", tmp_path / "out.png", "--model", path)
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "middle_blks.0.conv3.weight" in line and "non-finite" in line, line
    assert not (tmp_path / "out.png").exists()
    r = _run("convert", path, "-o", tmp_path / "m.tflite", "--size", "64")
    assert r.returncode == 2 and "non-finite" in _one_line(r.stderr)
    assert not (tmp_path / "m.tflite").exists()

    from safetensors.torch import save_file

    ints = {k: v.clone() for k, v in small_checkpoint.state_dict.items()}
    ints["intro.bias"] = ints["intro.bias"].round().to(torch.int32)
    save_file(ints, str(tmp_path / "ints.safetensors"))
    r = _run("convert", tmp_path / "ints.safetensors", "-o", tmp_path / "m.tflite", "--size", "64")
    assert r.returncode == 2 and "intro.bias holds int32" in _one_line(r.stderr)
    assert not (tmp_path / "m.tflite").exists()


def _deblur_with_module(tmp_path: Path, module) -> str:
    """Convert ``module`` (32x32, fp32), deblur a photo with it: the one error line (nothing may be written)."""
    from nafnet_litert.litert.convert import convert_to_tflite

    path = tmp_path / "liar.tflite"
    path.write_bytes(convert_to_tflite(module.eval(), (32, 32), "fp32"))
    r = _run("deblur", _photo(tmp_path / "in.png"), "-o", tmp_path / "out.png", "--model", path)
    assert r.returncode == 2
    assert not (tmp_path / "out.png").exists()
    return _one_line(r.stderr)


def test_a_model_that_is_not_image_to_image_is_refused_before_any_work(tmp_path):
    import torch

    class OneChannel(torch.nn.Module):
        def forward(self, image):
            return image.mean(1, keepdim=True)

    assert "not an image-to-image model" in _deblur_with_module(tmp_path, OneChannel())


def test_non_finite_output_is_an_error_never_a_black_photo(tmp_path):
    import torch

    class Lies(torch.nn.Module):  # an image model whose output is NaN at run time (RSQRT of a negative number)
        def forward(self, image):
            return image + torch.rsqrt(image - 2.0)

    assert "non-finite" in _deblur_with_module(tmp_path, Lies())


def test_a_one_channel_checkpoint_is_refused_in_one_line(tmp_path):
    from nafnet_litert.models import NAFNetConfig
    from nafnet_litert.models.checkpoint import random_checkpoint, save_safetensors

    ck = random_checkpoint(NAFNetConfig(img_channel=1, width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,)))
    path = tmp_path / "gray.safetensors"
    save_safetensors(ck.state_dict, path)
    r = _run("deblur", _photo(tmp_path / "in.png"), "-o", tmp_path / "out.png", "--model", path)
    assert r.returncode == 2
    assert "1-channel model" in _one_line(r.stderr)


# ------------------------------------------------------------------------------------------------ videos
def test_an_odd_sized_video_keeps_its_size(tmp_path, small_exports):
    import imageio_ffmpeg

    clip = tmp_path / "odd.mp4"  # 4:4:4, since 4:2:0 cannot hold odd sizes
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=95x63:rate=10:duration=1", "-pix_fmt", "yuv444p", str(clip)], check=True)  # fmt: skip
    out = tmp_path / "out.mp4"
    r = _run("deblur", clip, "-o", out, "--model", small_exports["fp32"].model_path)
    assert r.returncode == 0, r.stderr
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (95, 63)
    assert sum(1 for _ in reader) == 10


def test_a_truncated_video_is_reported_as_damaged(tmp_path, small_exports):
    import imageio_ffmpeg

    clip = make_clip(tmp_path / "clip.mp4", 3)
    front = tmp_path / "front.mp4"  # the index first (as phones and web uploads write it): a cut file still opens
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip), "-c", "copy", "-movflags",
                    "+faststart", str(front)], check=True)  # fmt: skip
    data = front.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    r = _run("deblur", cut, "-o", tmp_path / "out.mp4", "--model", small_exports["fp32"].model_path)
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert "cut.mp4" in line and ("damaged" in line or "not a readable video" in line), line
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------------------ web -o
def test_web_never_overwrites_a_foreign_index_or_follows_links(tmp_path):
    site = tmp_path / "mine"
    site.mkdir()
    (site / "index.html").write_text("<p>my own page</p>")
    r = _run("web", "-o", site)
    assert r.returncode == 2 and "not a site written by this command" in _one_line(r.stderr)
    assert (site / "index.html").read_text() == "<p>my own page</p>"

    outside = tmp_path / "outside"
    (outside / "core").mkdir(parents=True)
    (outside / "core" / "keep.txt").write_text("keep")
    site2 = tmp_path / "site2"
    site2.mkdir()
    from nafnet_litert.web.build import SITE_MARKER

    (site2 / SITE_MARKER).write_text("")
    (site2 / "litert").symlink_to(outside)
    r = _run("web", "-o", site2)
    assert r.returncode == 2 and "symbolic link" in _one_line(r.stderr)
    assert (outside / "core" / "keep.txt").read_text() == "keep"


# ------------------------------------------------------------------------------------------------ Ray
def test_an_unreachable_ray_address_fails_in_one_line_quickly(tmp_path, small_exports):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.png")
    env = {**os.environ, "NAFNET_LITERT_RAY_TIMEOUT": "5"}
    r = _run("deblur", folder, "-o", tmp_path / "out", "--model", small_exports["fp32"].model_path,
             "--ray", f"127.0.0.1:{port}", env=env, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert f"127.0.0.1:{port}" in line and "cannot reach" in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@contextlib.contextmanager
def _silent_port():
    """A port that accepts TCP connections and never answers (a wrong service, a half-dead head): Ray's connect
    waits on it forever. Yields (port, number of connections accepted so far)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("", 0))  # every interface: Ray dials the machine's own address, not the loopback it was given
    server.listen(16)
    accepted: list = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()
        for c in accepted:
            c.close()


def _deblur_on_ray_at(tmp_path: Path, model: Path, port: int, timeout_s: str) -> subprocess.Popen:
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    _photo(folder / "a.png")
    env = {**os.environ, "NAFNET_LITERT_RAY_TIMEOUT": timeout_s}
    args = ["deblur", folder, "-o", tmp_path / "out", "--model", model, "--ray", f"127.0.0.1:{port}", "--quiet"]
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def test_a_port_that_never_answers_fails_in_one_line_after_the_timeout(tmp_path, small_exports):
    with _silent_port() as (port, _):
        p = _deblur_on_ray_at(tmp_path, small_exports["fp32"].model_path, port, "4")
        _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    line = _one_line(err)
    assert f"127.0.0.1:{port}" in line and "no answer within 4 s" in line, line


@pytest.mark.parametrize("sig, code, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_and_sigterm_stop_a_hanging_ray_connect_at_once(tmp_path, small_exports, sig, code, word):
    import signal
    import time

    with _silent_port() as (port, accepted):
        p = _deblur_on_ray_at(tmp_path, small_exports["fp32"].model_path, port, "300")
        deadline = time.monotonic() + 60
        while len(accepted) < 2 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)  # the reachability check, then Ray's own connect: it is now waiting inside Ray
        assert len(accepted) >= 2, "the CLI never tried to connect"
        time.sleep(1)
        sent = time.monotonic()
        p.send_signal(getattr(signal, sig))
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - sent
    assert p.returncode == code, err
    assert word in _one_line(err)
    assert took < 10, f"{sig} took {took:.1f} s to stop the run"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_token_auth_refusal_names_ray_auth_mode():
    """Ray wraps the cause (an ``AuthenticationError``, or the GCS client's ``InvalidAuthToken``) in a generic
    "Failed to connect": the one line must name the fix. (The live two-node token cluster test meets it for real.)"""
    pytest.importorskip("ray")
    from ray.exceptions import AuthenticationError

    from nafnet_litert.restore.cluster import connect_failure

    try:
        try:
            raise RuntimeError("Failed to connect to GCS. Last connection error: Unauthenticated: InvalidAuthToken")
        except RuntimeError as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379") from inner
    except ConnectionError as e:
        line = connect_failure("10.0.0.5:6379", e)
    assert "RAY_AUTH_MODE=token" in line and "10.0.0.5:6379" in line and "\n" not in line
    line = connect_failure("h:1", AuthenticationError("Token authentication is enabled but no token was found"))
    assert "RAY_AUTH_MODE=token" in line
    plain = connect_failure("h:1", ConnectionError("Failed to connect"))
    assert "RAY_AUTH_MODE" not in plain and "h:1" in plain


def test_workers_are_capped_at_the_clusters_cpus_and_the_jobs(monkeypatch):
    ray = pytest.importorskip("ray")
    from nafnet_litert.restore.cluster import worker_count

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    notes = []
    assert worker_count(1000, 50, notes.append) == 2
    assert notes == ["--workers 1000 lowered to 2 (the cluster has 2 CPU(s) and the run 50 job(s))"]
    assert worker_count(2, 1, notes.append) == 1 and len(notes) == 2
    assert worker_count(2, 8, notes.append) == 2 and len(notes) == 2  # nothing lowered, nothing said
    assert worker_count(None, 1, notes.append) == 1 and len(notes) == 2  # not asked for: lowered silently


# ------------------------------------------------------------------------------------------------ small items
def test_a_folder_deblurs_its_videos_too(tmp_path, small_exports):
    import imageio_ffmpeg

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png")
    make_clip(src / "sub" / "clip.mp4", 1)
    r = _run("deblur", src, "-o", tmp_path / "out", "--model", small_exports["fp32"].model_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    assert (out / "a.png").is_file() and (out / "sub" / "clip.mp4").is_file()
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "sub" / "clip.mp4"))[0] == 10


def test_a_read_only_cache_that_holds_the_model_is_used(tmp_path, small_checkpoint_file, monkeypatch):
    from nafnet_litert.restore.restorer import Restorer

    cache = tmp_path / "cache"
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    x = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    with Restorer(str(small_checkpoint_file), tile=32, overlap=8, precision="fp32") as r:
        first = r(x)
    files = sorted(p.name for p in cache.iterdir())
    assert any(f.endswith(".tflite") for f in files)
    for p in [cache, *cache.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    monkeypatch.setattr("nafnet_litert.io.files.check_writable", _refuse_writes)
    try:
        with Restorer(str(small_checkpoint_file), tile=32, overlap=8, precision="fp32") as r:
            assert np.array_equal(r(x), first)
    finally:
        cache.chmod(0o755)
    assert sorted(p.name for p in cache.iterdir()) == files


def _refuse_writes(folder, what="output folder"):  # root ignores 0555: stand in for a real read-only mount
    from nafnet_litert.io.files import OutputError

    raise OutputError(f"cannot write to the {what} {folder} (Read-only file system)")


def test_eval_notes_a_gray_blurred_frame_against_a_colour_sharp_one(tmp_path, capsys):
    from nafnet_litert.io.datasets import Pair
    from nafnet_litert.eval.evaluate import evaluate

    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)
    Image.fromarray(rgb).convert("L").save(tmp_path / "blur.png")
    Image.fromarray(rgb).save(tmp_path / "sharp.png")
    res = evaluate(lambda x: x, [Pair("frame1", tmp_path / "blur.png", tmp_path / "sharp.png")], progress=False)
    assert len(res.rows) == 1
    err = capsys.readouterr().err
    assert "frame1: the blurred image is gray and the sharp one colour" in err


def test_a_video_keeps_when_and_where_it_was_shot(tmp_path, small_exports):
    import imageio_ffmpeg

    from nafnet_litert.io.video import source_metadata

    plain = make_clip(tmp_path / "plain.mp4", 1)
    clip = tmp_path / "phone.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(plain), "-c", "copy",
                    "-metadata", "creation_time=2024-05-01T10:00:00.000000Z",
                    "-metadata", "location=+48.8584+002.2945/", str(clip)], check=True)  # fmt: skip
    tags = source_metadata(clip)
    assert tags["creation_time"].startswith("2024-05-01T10:00:00") and tags["location"] == "+48.8584+002.2945/"
    out = tmp_path / "out.mp4"
    r = _run("deblur", clip, "-o", out, "--model", small_exports["fp32"].model_path)
    assert r.returncode == 0, r.stderr
    kept = source_metadata(out)
    assert kept.get("creation_time", "").startswith("2024-05-01T10:00:00"), kept
    assert kept.get("location") == "+48.8584+002.2945/", kept


def test_a_rotated_phone_video_deblurs_quietly_and_upright(tmp_path, small_exports):
    import imageio_ffmpeg

    plain = make_clip(tmp_path / "plain.mp4", 1)
    rotated = tmp_path / "rotated.mp4"  # a portrait phone clip: landscape pixels and a display rotation
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(rotated)], check=True)  # fmt: skip
    out = tmp_path / "out.mp4"
    env = {k: v for k, v in os.environ.items() if k != "NAFNET_LITERT_VERBOSE"}
    r = _run("deblur", rotated, "-o", out, "--model", small_exports["fp32"].model_path, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # imageio-ffmpeg's frame-size warning is library noise
    reader = imageio_ffmpeg.read_frames(str(out))
    assert tuple(next(reader)["size"]) == (64, 96)  # written upright
