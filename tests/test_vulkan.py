"""Which Vulkan driver LiteRT's GPU accelerator gets (:mod:`nafnet_litert.litert.vulkan`), and real fp16 on it.

The selection rules run on fake ICDs in tmp dirs (no GPU needed). The slow tests run a small model on the CPU and
on the GPU accelerator at fp32 and fp16, each in a fresh process (Dawn picks its adapter once per process):
on Mesa 25 lavapipe fp16 must really differ from fp32; on SwiftShader (no shaderFloat16) it must not. In CI
(CI=true) a missing lavapipe or SwiftShader is a failure; elsewhere a skip.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nafnet_litert.litert import GpuUnavailable, ensure_vulkan_icd
from nafnet_litert.litert import vulkan as vk
from nafnet_litert.litert.runtime import LiteRTModel, VulkanSetup, fp16_install_hint


def _elf_head() -> bytes:
    with open("/proc/self/exe", "rb") as f:
        return f.read(64)


def _fake_driver(path: Path, version: str | None, head: bytes | None = None) -> Path:
    """A file that looks like a Mesa driver for this architecture, with ``Mesa <version>`` in its strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (head if head is not None else _elf_head()) + b"\0" * 64
    if version:
        body += f"Mesa {version} (LLVM 15.0.6)".encode() + b"\0"
    path.write_bytes(body)
    return path


def _icd(path: Path, library: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    icd = {"file_format_version": "1.0.1", "ICD": {"library_path": library, "api_version": "1.4.305"}}
    path.write_text(json.dumps(icd))
    return path


def _private_lavapipe(prefix: Path, version: str = "25.0.7-2~bpo12+1") -> Path:
    lib = _fake_driver(prefix / "usr/lib/x86_64-linux-gnu/libvulkan_lvp.so", version)
    return _icd(prefix / "lvp_icd.json", str(lib))


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A machine made of tmp paths: no GPU, a Vulkan loader, no lavapipe, no SwiftShader, no user ICD."""
    for var in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", vk.LAVAPIPE_ENV):
        # setenv first, so the original state (absent too) is restored after the test: a fake ICD left behind
        # would blind the later GPU tests of this process.
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    loader = tmp_path / "lib" / "libvulkan.so.1"
    loader.parent.mkdir()
    loader.write_bytes(b"")
    (tmp_path / "dev" / "dri").mkdir(parents=True)
    (tmp_path / "icd.d").mkdir()
    monkeypatch.setattr(vk, "VULKAN_LOADERS", (str(loader),))
    devices = ((str(tmp_path / "dev" / "dri"), "renderD*"), (str(tmp_path / "dev"), "nvidia0"))
    monkeypatch.setattr(vk, "GPU_DEVICE_GLOBS", devices)
    monkeypatch.setattr(vk, "SYSTEM_LAVAPIPE_GLOB", str(tmp_path / "icd.d" / "lvp_icd*.json"))
    monkeypatch.setattr(vk, "SWIFTSHADER_ICDS", (str(tmp_path / "chromium" / "vk_swiftshader_icd.json"),))
    monkeypatch.setattr(vk, "DEFAULT_LAVAPIPE_PREFIX", str(tmp_path / "opt" / "lavapipe"))
    return tmp_path


def _swiftshader(world: Path) -> Path:
    lib = _fake_driver(world / "chromium" / "libvk_swiftshader.so", None)
    return _icd(world / "chromium" / "vk_swiftshader_icd.json", "./" + lib.name)


# ------------------------------------------------------------------------------------------ selection rules
def test_private_lavapipe_is_chosen_and_set_for_the_loader_only_while_compiling(world, monkeypatch):
    icd = _private_lavapipe(world / "opt" / "lavapipe")
    _swiftshader(world)
    setup = ensure_vulkan_icd()
    assert setup == VulkanSetup(icd=str(icd), kind="lavapipe", fp16_expected=True)
    assert "VK_ICD_FILENAMES" not in os.environ  # choosing changes nothing process-wide
    assert ensure_vulkan_icd() == setup  # idempotent
    with vk.vulkan_env(setup):
        assert os.environ["VK_ICD_FILENAMES"] == str(icd)
    assert "VK_ICD_FILENAMES" not in os.environ
    monkeypatch.setenv("VK_ICD_FILENAMES", "/users/own.json")  # a user's value is put back too
    with vk.vulkan_env(setup):
        assert os.environ["VK_ICD_FILENAMES"] == str(icd)
    assert os.environ["VK_ICD_FILENAMES"] == "/users/own.json"


def test_lavapipe_prefix_env_overrides_the_default(world, monkeypatch):
    _private_lavapipe(world / "opt" / "lavapipe")
    icd = _private_lavapipe(world / "elsewhere")
    monkeypatch.setenv(vk.LAVAPIPE_ENV, str(world / "elsewhere"))
    assert ensure_vulkan_icd().icd == str(icd)


def test_private_lavapipe_beats_a_system_one(world):
    icd = _private_lavapipe(world / "opt" / "lavapipe")
    _icd(world / "icd.d" / "lvp_icd.x86_64.json", str(_fake_driver(world / "sys" / "libvulkan_lvp.so", "25.2.1")))
    assert ensure_vulkan_icd().icd == str(icd)


def test_system_lavapipe_from_mesa_24_or_later_is_taken(world):
    lib = _fake_driver(world / "sys" / "libvulkan_lvp.so", "24.2.8")
    icd = _icd(world / "icd.d" / "lvp_icd.x86_64.json", str(lib))
    _swiftshader(world)
    assert ensure_vulkan_icd() == VulkanSetup(icd=str(icd), kind="lavapipe", fp16_expected=True)


def test_debian12_mesa_22_lavapipe_is_refused_for_swiftshader(world):
    """Dawn refuses Mesa 22.3's lavapipe ("No adapters found"): SwiftShader is used, and it has no fp16."""
    _icd(world / "icd.d" / "lvp_icd.x86_64.json", str(_fake_driver(world / "sys" / "libvulkan_lvp.so", "22.3.6")))
    sw = _swiftshader(world)
    setup = ensure_vulkan_icd()
    assert setup == VulkanSetup(icd=str(sw), kind="swiftshader", fp16_expected=False)
    with vk.vulkan_env(setup):
        assert os.environ["VK_ICD_FILENAMES"] == str(sw)


@pytest.mark.parametrize(
    "case", ["no version string", "other architecture", "missing library", "broken json", "private too old"]
)
def test_unusable_lavapipes_are_skipped(world, case):
    prefix = world / "opt" / "lavapipe"
    if case == "no version string":
        _icd(prefix / "lvp_icd.json", str(_fake_driver(prefix / "lib.so", None)))
    elif case == "other architecture":
        head = bytearray(_elf_head())
        head[18:20] = b"\xb7\x00" if bytes(head[18:20]) != b"\xb7\x00" else b"\x3e\x00"  # aarch64 <-> x86_64
        _icd(prefix / "lvp_icd.json", str(_fake_driver(prefix / "lib.so", "25.0.7", bytes(head))))
    elif case == "missing library":
        _icd(prefix / "lvp_icd.json", str(prefix / "absent.so"))
    elif case == "broken json":
        prefix.mkdir(parents=True)
        (prefix / "lvp_icd.json").write_text("{not json")
    else:
        _private_lavapipe(prefix, "23.3.5")
    _swiftshader(world)
    assert ensure_vulkan_icd().kind == "swiftshader"


def test_icd_library_paths_relative_and_bare(world, monkeypatch):
    lib = _fake_driver(world / "icd.d" / "sub" / "libvulkan_lvp.so", "25.0.7")
    rel = _icd(world / "icd.d" / "lvp_icd.rel.json", "./sub/libvulkan_lvp.so")
    assert vk.icd_library(rel) == lib.resolve()
    monkeypatch.setattr(vk, "LIB_DIRS", (str(world / "icd.d" / "sub"),))
    bare = _icd(world / "bare.json", "libvulkan_lvp.so")
    assert vk.icd_library(bare) == lib
    assert vk.mesa_version(lib) == (25, 0, 7)


def test_a_real_gpu_keeps_the_system_loader(world):
    _private_lavapipe(world / "opt" / "lavapipe")
    (world / "dev" / "dri" / "renderD128").write_text("")
    assert ensure_vulkan_icd() == VulkanSetup(icd=None, kind="system-gpu", fp16_expected=True)
    assert "VK_ICD_FILENAMES" not in os.environ


def test_nvidia_device_counts_as_a_gpu(world):
    (world / "dev" / "nvidia0").write_text("")
    assert ensure_vulkan_icd().kind == "system-gpu"


@pytest.mark.parametrize("var", ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"])
def test_user_icd_is_honoured_as_is(world, monkeypatch, var):
    _private_lavapipe(world / "opt" / "lavapipe")
    (world / "dev" / "dri" / "renderD128").write_text("")
    monkeypatch.setenv(var, "/somewhere/my_icd.json")
    assert ensure_vulkan_icd() == VulkanSetup(icd="/somewhere/my_icd.json", kind="env", fp16_expected=True)
    assert os.environ[var] == "/somewhere/my_icd.json"


def test_user_swiftshader_icd_is_not_expected_to_do_fp16(world, monkeypatch):
    monkeypatch.setenv("VK_ICD_FILENAMES", "/usr/lib/chromium/vk_swiftshader_icd.json")
    assert ensure_vulkan_icd() == VulkanSetup(
        icd="/usr/lib/chromium/vk_swiftshader_icd.json", kind="env", fp16_expected=False
    )


def test_nothing_installed_is_one_line_with_both_install_routes(world):
    with pytest.raises(GpuUnavailable) as e:
        ensure_vulkan_icd()
    msg = str(e.value)
    assert "\n" not in msg
    assert "bash scripts/install_lavapipe.sh" in msg and "apt-get install -y chromium libvulkan1" in msg
    assert "VK_ICD_FILENAMES" not in os.environ


def test_no_vulkan_loader_is_unavailable_even_with_drivers(world, monkeypatch):
    _private_lavapipe(world / "opt" / "lavapipe")
    _swiftshader(world)
    monkeypatch.setattr(vk, "VULKAN_LOADERS", (str(world / "nope" / "libvulkan.so.1"),))
    with pytest.raises(GpuUnavailable, match="libvulkan1"):
        ensure_vulkan_icd()


def test_fp16_install_hint_is_one_line():
    hint = fp16_install_hint()
    assert "\n" not in hint and "scripts/install_lavapipe.sh" in hint and "bookworm-backports" in hint


def test_gpu_precision_is_validated(tmp_path):
    with pytest.raises(ValueError, match="gpu_precision"):
        LiteRTModel(tmp_path / "m.tflite", "gpu", gpu_precision="int8")
    with pytest.raises(ValueError, match="accelerator"):
        LiteRTModel(tmp_path / "m.tflite", "npu")


def test_install_script_is_valid_bash_and_hooked_into_install_sh():
    root = Path(__file__).resolve().parents[1]
    script = root / "scripts" / "install_lavapipe.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "bash scripts/install_lavapipe.sh" in (root / "scripts" / "install.sh").read_text()


# ------------------------------------------------------------------------------------------ real runs
#: Runs in a fresh process: CPU, GPU fp32 (enforce_f32) and GPU fp16 on one small model; prints the differences.
_RUNNER = r"""
import json, sys
import numpy as np
from nafnet_litert.litert import LiteRTModel
path = sys.argv[1]
x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
out, info = {}, {}
for name, acc, prec in (("cpu", "cpu", "fp16"), ("gpu_fp32", "gpu", "fp32"), ("gpu_fp16", "gpu", "fp16")):
    m = LiteRTModel(path, acc, gpu_precision=prec)
    out[name] = m.run(x)
    if acc == "gpu":
        info[name] = {"fully": m.is_fully_accelerated(), "kind": m.vulkan.kind, "fp16_expected": m.vulkan.fp16_expected}
    m.close()
d = lambda a, b: float(np.abs(out[a] - out[b]).max())
print("RESULT " + json.dumps({"fp32_vs_cpu": d("gpu_fp32", "cpu"), "fp16_vs_fp32": d("gpu_fp16", "gpu_fp32"),
                              "fp16_vs_cpu": d("gpu_fp16", "cpu"), **info}))
"""


@pytest.fixture(scope="module")
def small_conv_model(tmp_path_factory):
    """A 3-conv residual net at 64x64, fp32 weights: seconds to convert and to compile for the GPU."""
    import torch

    from nafnet_litert.litert.convert import convert_to_tflite

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.c2 = torch.nn.Conv2d(16, 16, 3, padding=1)
            self.c3 = torch.nn.Conv2d(16, 3, 3, padding=1)

        def forward(self, x):
            return self.c3(torch.relu(self.c2(torch.relu(self.c1(x))))) + x

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vulkan") / "small_conv.tflite"
    path.write_bytes(convert_to_tflite(Net().eval(), (64, 64), "fp32"))
    return path


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the fp16 GPU tests: {what}")
    pytest.skip(what)


def _run_fresh(model: Path, icd: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")}
    if icd:
        env["VK_ICD_FILENAMES"] = icd
    cmd = [sys.executable, "-c", _RUNNER, str(model)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
def test_lavapipe_runs_real_fp16_kernels(small_conv_model, snapshot):
    found = vk.find_lavapipe()
    if found is None or not vk.has_vulkan_loader():
        _missing(f"no Mesa >= 24 lavapipe: {fp16_install_hint()}")
    # Without a GPU, ensure_vulkan_icd itself must pick lavapipe; with one, lavapipe is named explicitly.
    res = _run_fresh(small_conv_model, found[0] if vk.has_gpu_device() else None)
    assert res["gpu_fp16"]["kind"] == ("env" if vk.has_gpu_device() else "lavapipe")
    assert res["gpu_fp32"]["fully"] and res["gpu_fp16"]["fully"]
    assert res["fp32_vs_cpu"] <= 1e-5, res  # enforce_f32: fp32 kernels
    assert 1e-5 < res["fp16_vs_fp32"] < 1e-2, res  # real fp16 kernels
    # the orders of magnitude measured (the exact errors follow the CPU's rounding; decades do not)
    assert {k: round(math.log10(max(res[k], 1e-12))) for k in ("fp32_vs_cpu", "fp16_vs_fp32")} == snapshot


@pytest.mark.slow
def test_swiftshader_computes_fp16_in_fp32(small_conv_model):
    """SwiftShader has no shaderFloat16: the default precision gives the fp32 result, which is why it is not
    enough to test fp16 (``fp16_expected`` is False for it)."""
    icd = next((p for p in vk.SWIFTSHADER_ICDS if Path(p).exists()), None)
    if icd is None or not vk.has_vulkan_loader():
        _missing("no SwiftShader: apt-get install -y chromium libvulkan1")
    res = _run_fresh(small_conv_model, icd)
    assert res["gpu_fp16"]["fp16_expected"] is False
    assert res["fp32_vs_cpu"] <= 1e-5 and res["fp16_vs_fp32"] == 0.0, res
