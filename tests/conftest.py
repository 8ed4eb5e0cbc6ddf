from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.models import PRESETS, NAFNetConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: A small config with every structural feature (4 levels, several blocks), fast to convert.
SMALL = NAFNetConfig(width=8, enc_blocks=(1, 1, 1, 2), middle_blocks=1, dec_blocks=(1, 1, 1, 1))


def run_folder(tmp_path_factory) -> Path:
    """This test run's folder, shared by its xdist workers (each worker's own base folder sits inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build):
    """``build(folder)`` once per test run, also across xdist workers: the first worker builds under a file lock and
    pickles the result beside it; the others wait for the lock and load it."""
    import pickle

    from filelock import FileLock

    folder = run_folder(tmp_path_factory) / name
    with FileLock(f"{folder}.lock"):
        done = folder / ".result.pickle"
        if done.is_file():
            return pickle.loads(done.read_bytes())
        folder.mkdir(exist_ok=True)
        result = build(folder)
        done.write_bytes(pickle.dumps(result))
        return result


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory):
    """Models that restorers export go to a folder of this test run (one for all its workers: an export one worker
    made is the other's cache hit; the cache writes each model atomically), never the user's ~/.cache."""
    old = os.environ.get("NAFNET_LITERT_CACHE")
    cache = run_folder(tmp_path_factory) / "model-cache"
    cache.mkdir(exist_ok=True)
    os.environ["NAFNET_LITERT_CACHE"] = str(cache)
    yield
    if old is None:
        os.environ.pop("NAFNET_LITERT_CACHE", None)
    else:
        os.environ["NAFNET_LITERT_CACHE"] = old


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def skimage_photo(name: str) -> Path:
    """Path of a real photo bundled in scikit-image's wheel (no download)."""
    import skimage

    p = Path(skimage.__file__).parent / "data" / name
    if not p.is_file():
        pytest.skip(f"scikit-image does not ship {name}")
    return p


def photo_array(name: str, size: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    from nafnet_litert.io.image import load_image

    img = load_image(skimage_photo(name))
    if size:
        y, x = offset
        img = img[y : y + size[0], x : x + size[1]]
    return np.ascontiguousarray(img)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED_DATA}): real GoPro pairs not available in this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gopro_crops(shared_data, tmp_path_factory) -> Path:
    """The five held-out GoPro pairs of ``shared_data/gopro_frames`` as 384 x 512 centre crops (a fifth of the
    pixels), in the same blur/ sharp/ layout: the claims on them are per pixel; the full frames are the scripts'."""
    from PIL import Image

    out = tmp_path_factory.mktemp("gopro-crops")
    for src in sorted((shared_data / "gopro_frames").glob("*/*.png")):
        (out / src.parent.name).mkdir(exist_ok=True)
        with Image.open(src) as im:
            w, h = im.size
            box = ((w - 512) // 2, (h - 384) // 2, (w + 512) // 2, (h + 384) // 2)
            im.crop(box).save(out / src.parent.name / src.name)
    return out


@pytest.fixture(scope="session")
def w32_checkpoint():
    return random_checkpoint(PRESETS["GoPro-width32"], seed=0)


@pytest.fixture(scope="session")
def small_checkpoint():
    return random_checkpoint(SMALL, seed=1, scale=0.5)


@pytest.fixture(scope="session")
def small_checkpoint_file(tmp_path_factory, small_checkpoint) -> Path:
    """``small_checkpoint`` as a .safetensors file (what the CLI takes), written once per session."""
    from nafnet_litert.models.checkpoint import save_safetensors

    path = tmp_path_factory.mktemp("small-ckpt") / "small.safetensors"
    save_safetensors(small_checkpoint.state_dict, path)
    return path


def make_clip(path: Path, seconds: int, size: str = "96x64", rate: int = 10) -> Path:
    """A test video with a sine audio track (ffmpeg's lavfi sources, through imageio-ffmpeg's binary)."""
    import subprocess

    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-shortest", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture(scope="session")
def small_exports(tmp_path_factory, small_checkpoint):
    """``small_checkpoint`` exported at 64x64 (NCHW, the default recipe) in fp32 and fp16, once per test run: an
    export costs ~10 s of fixed converter work, so tests that only need "the small model as a file" share these."""
    from nafnet_litert.litert.convert import export

    return built_once(
        tmp_path_factory, "small-exports",
        lambda d: {p: export(small_checkpoint, d / f"small_64_{p}.tflite", 64, p) for p in ("fp32", "fp16")},
    )  # fmt: skip


@pytest.fixture(scope="session")
def exported_w32(tmp_path_factory, w32_checkpoint):
    """GoPro-w32 (random non-zero weights) exported at 256x256 in fp32 and fp16, once per session."""
    from nafnet_litert.litert.convert import export

    d = tmp_path_factory.mktemp("w32")
    return {p: export(w32_checkpoint, d / f"w32_256_{p}.tflite", 256, p) for p in ("fp32", "fp16")}


def pytest_report_header(config):
    return f"shared data: {SHARED_DATA if SHARED_DATA.is_dir() else 'absent'}; threads: {os.cpu_count()}"


@pytest.fixture(scope="session")
def fp16_vulkan():
    """LiteRT's GPU accelerator on a Vulkan device with real fp16 kernels (Mesa lavapipe): skipped without one,
    a failure in CI, which must run the GPU tests."""
    from nafnet_litert.litert import GpuUnavailable, ensure_vulkan_icd

    try:
        setup = ensure_vulkan_icd()
    except GpuUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the GPU tests: {e}")
        pytest.skip(str(e))
    if not setup.fp16_expected:
        msg = f"the Vulkan device here ({setup.kind}) has no shaderFloat16: bash scripts/install_lavapipe.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


#: ``pytest -n 3 --dist loadgroup`` (scripts/test.sh) sends each group to one worker. A test file is a group (its
#: module fixtures are built once); tests that share an expensive session fixture across files are one group (the
#: fixture is built once); tests that start Ray clusters run one after another (two local clusters on one machine
#: would compete for its CPUs and ports).
_GROUPS = (
    ("w32", lambda item: {"exported_w32", "w32_checkpoint"} & set(item.fixturenames)),
    ("ray", lambda item: item.path.name in ("test_cluster.py", "test_cluster_nodes.py") or "ray" in item.name.split("_")),
)


#: The longest groups go out first (a worker takes a group whole), so none of them is the run's tail: the order of
#: their summed test times in a full run (``--durations=0``, summed by the ``@group`` suffix of the test ids).
_LONGEST_FIRST = (
    "ray", "w32", "test_web.py", "test_faults.py", "test_export_audit.py", "test_gpu.py", "test_device_failures.py",
    "test_restorer.py", "test_conversions.py", "test_tlc.py", "test_artifact_headroom.py", "test_int8.py",
    "test_api.py", "test_stress.py", "test_report.py", "test_restore_eval.py", "test_bad_input.py",
    "test_media_properties.py",
)  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        groups[item] = next((name for name, wants in _GROUPS if wants(item)), item.path.name)
        item.add_marker(pytest.mark.xdist_group(groups[item]))


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: absent under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """xdist's group scheduler, with :data:`_LONGEST_FIRST` at the head of its queue (xdist orders groups by their
    number of tests, which put the few long Ray and w32 tests last and made them the run's tail)."""
    from xdist.scheduler import LoadGroupScheduling

    class LongestFirst(LoadGroupScheduling):
        def _assign_work_unit(self, node):
            if not getattr(self, "ranked", False):
                rank = {g: i for i, g in enumerate(_LONGEST_FIRST)}
                queue = sorted(self.workqueue.items(), key=lambda kv: rank.get(kv[0], len(rank)))  # stable
                self.workqueue.clear()
                self.workqueue.update(queue)
                self.ranked = True
            super()._assign_work_unit(node)

    return LongestFirst(config, log)
