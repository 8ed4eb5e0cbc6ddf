"""spandrel's NAFNet (bit-identical to megvii's code) as an independent oracle: the network is spandrel's own file,
loaded from the installed wheel by :mod:`nafnet_litert.tools.spandrel_graph` (spandrel's ``__init__`` needs
torchvision, which this CPU torch build lacks)."""

from nafnet_litert.tools.spandrel_graph import spandrel_nafnet, spandrel_nafnet_class

__all__ = ["spandrel_nafnet", "spandrel_nafnet_class"]
