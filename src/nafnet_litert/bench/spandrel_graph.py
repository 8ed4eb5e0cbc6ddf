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
        # spandrel keeps its architecture files in a private package and exports no NAFNet class of its own
        from spandrel.architectures.NAFNet.__arch.NAFNet_arch import NAFNet  # type: ignore  # noqa: PLC2701

        return NAFNet
    except ImportError:
        pass
    spec = importlib.util.find_spec("spandrel")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("spandrel is not installed (pip install spandrel)")
    root = Path(list(spec.submodule_search_locations)[0])
    arch = root / "architectures" / "NAFNet" / "__arch"
    # Private module names only: nothing named `spandrel` is planted in sys.modules (a later real import of
    # spandrel in the same process must not find a stand-in).
    util = _load_module("_nafnet_litert_oracle_util", (root / "util" / "__init__.py").read_text(), root / "util")
    arch_util = _load_module("_nafnet_litert_oracle_arch_util", (arch / "arch_util.py").read_text(), arch)
    src = (arch / "NAFNet_arch.py").read_text()
    src = src.replace("from spandrel.util import", f"from {util.__name__} import")
    src = src.replace("from .arch_util import", f"from {arch_util.__name__} import")
    return _load_module("_nafnet_litert_oracle_nafnet_arch", src, arch).NAFNet


def _load_module(name: str, source: str, folder: Path) -> types.ModuleType:
    """``source`` executed as module ``name`` (registered under that private name: dataclasses and typing resolve
    their module through sys.modules)."""
    mod = types.ModuleType(name)
    mod.__file__ = str(folder / f"{name}.py")
    sys.modules[name] = mod
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return mod


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
