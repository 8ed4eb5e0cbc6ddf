"""Pick the Vulkan driver (ICD) that LiteRT's GPU accelerator (ML Drift over Dawn/WebGPU) runs on.

Order, first match wins (:func:`ensure_vulkan_icd`):

1. ``VK_ICD_FILENAMES`` / ``VK_DRIVER_FILES`` set by the user: honoured as is.
2. A real GPU (``/dev/dri/renderD*``, ``/dev/nvidia0``) and a Vulkan loader: the loader picks the driver.
3. Mesa >= 24 lavapipe, a software Vulkan with ``shaderFloat16``, so the GPU accelerator runs real fp16 kernels:
   the private copy that ``scripts/install_lavapipe.sh`` unpacks (``$NAFNET_LITERT_LAVAPIPE``, default
   ``/opt/nafnet-litert/lavapipe``), then a system ``lvp_icd*.json``. Debian 12's own lavapipe (Mesa 22.3) is
   skipped: Dawn refuses it ("No adapters found").
4. SwiftShader from Debian's ``chromium`` package: it has no ``shaderFloat16``, so "fp16" computes in fp32.

The choice reaches the Vulkan loader through ``VK_ICD_FILENAMES``, set only while a GPU model is compiled
(:func:`vulkan_env`, which ``LiteRTModel`` uses) and put back after: the process environment is left as it was.
Dawn picks its adapter when the GPU accelerator starts; a model compiled and run after the variable is restored
keeps its device (tested).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import GpuUnavailable

#: Where Debian's chromium package puts SwiftShader's Vulkan ICD.
SWIFTSHADER_ICDS = (
    "/usr/lib/chromium/vk_swiftshader_icd.json",
    "/usr/lib/chromium-browser/vk_swiftshader_icd.json",
)
#: The Vulkan loader (Debian's ``libvulkan1``), which Dawn dlopens.
VULKAN_LOADERS = (
    "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
    "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
    "/usr/lib64/libvulkan.so.1",
    "/usr/lib/libvulkan.so.1",
)
#: Mesa's lavapipe ICDs as distributions install them.
SYSTEM_LAVAPIPE_GLOB = "/usr/share/vulkan/icd.d/lvp_icd*.json"
#: Environment variable naming the prefix ``scripts/install_lavapipe.sh`` installs into, and its default.
LAVAPIPE_ENV = "NAFNET_LITERT_LAVAPIPE"
DEFAULT_LAVAPIPE_PREFIX = "/opt/nafnet-litert/lavapipe"
#: Oldest Mesa whose lavapipe Dawn accepts (Debian 12's 22.3 is refused; bookworm-backports' 25.0 works).
MIN_LAVAPIPE_MESA = (24, 0)
#: Where a real GPU shows up.
GPU_DEVICE_GLOBS = (("/dev/dri", "renderD*"), ("/dev", "nvidia0"))
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib")

KINDS = ("env", "system-gpu", "lavapipe", "swiftshader")


@dataclass(frozen=True)
class VulkanSetup:
    """What :func:`ensure_vulkan_icd` chose.

    ``icd``: the ICD json(s) put in ``VK_ICD_FILENAMES`` (None: the system loader picks a real GPU's driver);
    ``kind``: one of :data:`KINDS`; ``fp16_expected``: whether the default ("fp16") GPU precision really computes
    in fp16 (False on SwiftShader, which has no ``shaderFloat16`` and runs fp16 models in fp32).
    """

    icd: str | None
    kind: str
    fp16_expected: bool


def fp16_install_hint() -> str:
    """One line: how to get a Vulkan driver on which the GPU accelerator runs real fp16 kernels."""
    return (
        "for real fp16 GPU kernels without a GPU, run 'bash scripts/install_lavapipe.sh' from the nafnet-litert "
        "repository (Mesa 25 lavapipe from Debian bookworm-backports, unpacked into "
        f"${LAVAPIPE_ENV} or {DEFAULT_LAVAPIPE_PREFIX}; no system package is changed)"
    )


def lavapipe_prefix() -> Path:
    """Where ``scripts/install_lavapipe.sh`` installs (``$NAFNET_LITERT_LAVAPIPE`` overrides the default)."""
    return Path(os.environ.get(LAVAPIPE_ENV) or DEFAULT_LAVAPIPE_PREFIX)


def has_vulkan_loader() -> bool:
    return any(Path(p).exists() for p in VULKAN_LOADERS)


def has_gpu_device() -> bool:
    return any(any(Path(d).glob(pattern)) for d, pattern in GPU_DEVICE_GLOBS if Path(d).is_dir())


def icd_library(icd_json: str | Path) -> Path | None:
    """The driver library an ICD json names (absolute, relative to the json, or a bare name on the lib path)."""
    try:
        lib = json.loads(Path(icd_json).read_text())["ICD"]["library_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(lib, str) or not lib:
        return None
    p = Path(lib)
    if p.is_absolute():
        return p if p.is_file() else None
    if "/" in lib:
        p = (Path(icd_json).parent / lib).resolve()
        return p if p.is_file() else None
    return next((Path(d) / lib for d in LIB_DIRS if (Path(d) / lib).is_file()), None)


_MESA_VERSION = re.compile(rb"Mesa (\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?")


def mesa_version(library: str | Path) -> tuple[int, int, int] | None:
    """Mesa's version, read from the version string built into a Mesa driver (``b"Mesa 25.0.7-2~bpo12+1"``)."""
    try:
        with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found = [
                (int(mt[1]), int(mt[2]), int(mt[3] or 0))  # the patch number is optional
                for mt in _MESA_VERSION.finditer(m)
            ]
    except (OSError, ValueError):
        return None
    return max(found) if found else None


def _elf_id(path: str | Path) -> tuple[bytes, bytes] | None:
    """(ELF class, machine) of a shared object, to skip ICDs for another architecture (e.g. i686 on x86_64)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return head[4:6], head[18:20]  # EI_CLASS + EI_DATA, e_machine


def _same_arch(library: Path) -> bool:
    mine = _elf_id("/proc/self/exe")
    return mine is None or _elf_id(library) == mine


def usable_lavapipe(icd_json: str | Path) -> Path | None:
    """The library of a lavapipe ICD that Dawn accepts (Mesa >= :data:`MIN_LAVAPIPE_MESA`, this arch), or None."""
    lib = icd_library(icd_json)
    if lib is None or not _same_arch(lib):
        return None
    version = mesa_version(lib)
    if version is None or version[:2] < MIN_LAVAPIPE_MESA:
        return None
    return lib


def _preload_private_libdrm(library: Path) -> None:
    """Load the libdrm unpacked next to a private lavapipe before the driver is dlopened.

    The backports driver declares libdrm2 >= 2.4.121; Debian 12 has 2.4.114. On bookworm the symbols lavapipe
    imports all exist in 2.4.114 (checked), so this is a safeguard, and only done while no libdrm is loaded
    (a second copy next to the system's would only confuse). The driver's DT_NEEDED ``libdrm.so.2`` then binds
    to the loaded copy by soname. Subprocesses that compile GPU models call :func:`ensure_vulkan_icd` themselves.
    """
    drm = library.parent / "libdrm.so.2"
    if not drm.exists() or library.parent.as_posix() in LIB_DIRS:
        return
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    if "libdrm.so.2" in maps:
        return
    try:
        ctypes.CDLL(str(drm), mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass


def find_lavapipe() -> tuple[str, Path] | None:
    """(ICD json, driver library) of the first usable lavapipe: the private prefix, then the system's; or None."""
    private = lavapipe_prefix() / "lvp_icd.json"
    candidates = [private] + sorted(Path(p) for p in glob.glob(SYSTEM_LAVAPIPE_GLOB))
    for icd in candidates:
        if icd.is_file():
            lib = usable_lavapipe(icd)
            if lib is not None:
                return str(icd), lib
    return None


def _is_swiftshader(icds: str) -> bool:
    return "swiftshader" in icds.lower()


@contextlib.contextmanager
def vulkan_env(setup: VulkanSetup | None):
    """``VK_ICD_FILENAMES`` pointing at ``setup``'s driver for the duration of the block (when this module chose
    it), then the caller's value back (or no variable, as before)."""
    if setup is None or setup.icd is None or setup.kind == "env":
        yield
        return
    old = os.environ.get("VK_ICD_FILENAMES")
    os.environ["VK_ICD_FILENAMES"] = setup.icd
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("VK_ICD_FILENAMES", None)
        else:
            os.environ["VK_ICD_FILENAMES"] = old


def ensure_vulkan_icd() -> VulkanSetup:
    """Make a Vulkan device visible to LiteRT's GPU accelerator (see the module's doc for the order).

    Changes no environment variable: :func:`vulkan_env` applies the choice while a model compiles. Raises
    :class:`GpuUnavailable` with what to install when there is no usable Vulkan driver.
    """
    user = os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")
    if user:
        setup = VulkanSetup(icd=user, kind="env", fp16_expected=not _is_swiftshader(user))
        for part in user.split(os.pathsep):
            lib = icd_library(part) if part.endswith(".json") else None
            if lib is not None and lib.name.startswith("libvulkan_lvp"):
                _preload_private_libdrm(lib)
        return setup
    loader = has_vulkan_loader()
    if loader and has_gpu_device():
        return VulkanSetup(icd=None, kind="system-gpu", fp16_expected=True)
    if loader:
        found = find_lavapipe()
        if found is not None:
            icd, lib = found
            _preload_private_libdrm(lib)
            return VulkanSetup(icd=icd, kind="lavapipe", fp16_expected=True)
        swiftshader = next((p for p in SWIFTSHADER_ICDS if Path(p).exists()), None)
        if swiftshader is not None:
            return VulkanSetup(icd=swiftshader, kind="swiftshader", fp16_expected=False)
    raise GpuUnavailable(
        "no Vulkan driver for the LiteRT GPU accelerator"
        + ("" if loader else " (and no Vulkan loader, libvulkan1)")
        + ": from the nafnet-litert repository run 'bash scripts/install_lavapipe.sh' (Mesa 25 lavapipe, real fp16) "
        "or 'apt-get install -y chromium libvulkan1' (SwiftShader, fp32 only), or install a GPU driver"
    )
