"""spandrel's NAFNet (bit-identical to megvii's code), for ONNX Runtime's baseline graph and the tests' oracle.

spandrel's package ``__init__`` imports every architecture it supports, some of which need torchvision; the CPU
torch build used here has no matching torchvision. NAFNet's own files need only torch and ``spandrel.util``
(stdlib only), so when the full import fails they are loaded directly from the installed spandrel wheel.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def spandrel_nafnet_class():
    try:
        from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet  # type: ignore

        return NAFNet
    except ImportError:
        pass
    spec = importlib.util.find_spec("spandrel")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("spandrel is not installed (pip install spandrel)")
    root = Path(list(spec.submodule_search_locations)[0])
    pkg = types.ModuleType("_spandrel_oracle")
    pkg.__path__ = [str(root)]

    def load(name: str, path: Path):
        s = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod
        s.loader.exec_module(mod)
        return mod

    sys.modules.setdefault("spandrel", pkg)  # only a namespace for `from spandrel.util import ...`
    if "spandrel.util" not in sys.modules:
        load("spandrel.util", root / "util" / "__init__.py")
    arch = root / "architectures" / "NAFNet" / "__arch"
    load("_spandrel_nafnet_arch.arch_util", arch / "arch_util.py")
    src = (arch / "NAFNet_arch.py").read_text().replace("from .arch_util import", "from _spandrel_nafnet_arch.arch_util import")
    mod = types.ModuleType("_spandrel_nafnet_arch.NAFNet_arch")
    exec(compile(src, str(arch / "NAFNet_arch.py"), "exec"), mod.__dict__)
    return mod.NAFNet


def spandrel_nafnet(config, state_dict):
    """spandrel's NAFNet built for ``config`` and loaded strictly with ``state_dict``."""
    cls = spandrel_nafnet_class()
    net = cls(
        img_channel=config.img_channel,
        width=config.width,
        middle_blk_num=config.middle_blocks,
        enc_blk_nums=list(config.enc_blocks),
        dec_blk_nums=list(config.dec_blocks),
    )
    net.load_state_dict(state_dict, strict=True)
    return net.eval()
