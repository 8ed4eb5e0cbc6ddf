"""``deblur --ray``: the same files as the single-machine run, made by Ray Data actors (Ray local, 2 CPUs)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nafnet_litert.cli import main
from nafnet_litert.models.checkpoint import save_safetensors

from .conftest import photo_array

pytest.importorskip("ray")


@pytest.fixture
def ray_local():
    import ray

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
def test_ray_local_writes_the_single_machine_files_byte_for_byte(tmp_path, small_checkpoint, ray_local, capsys):
    ckpt = tmp_path / "small.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    src = tmp_path / "in"
    _folder(src)
    flags = ["--model", str(ckpt), "--tile", "32", "--overlap", "8", "--precision", "fp32", "--compare", "--quiet"]
    assert main(["deblur", str(src), "-o", str(tmp_path / "one"), *flags]) == 2  # the broken file: reported
    capsys.readouterr()
    assert main(["deblur", str(src), "-o", str(tmp_path / "ray"), *flags, "--ray", "local", "--workers", "2"]) == 2
    out = capsys.readouterr()
    assert "broken.png" in out.err and "1 of 5 file(s) failed" in out.err and "on 1 Ray node(s)" in out.out
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "ray"): p.read_bytes() for p in (tmp_path / "ray").rglob("*") if p.is_file()}
    assert len(one) == 8 and one.keys() == two.keys()  # 4 photos + 4 comparisons, same names and tree
    assert all(one[k] == two[k] for k in one), [str(k) for k in one if one[k] != two[k]]
    assert not [p for p in (tmp_path / "ray").rglob(".*")]  # no temporary file left


def test_ray_flags_are_checked(tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p.png")
    assert main(["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "q.png"), "--workers", "2"]) == 2
    assert "goes with --ray" in capsys.readouterr().err
