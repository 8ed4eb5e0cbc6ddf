"""Measurements, not tests: the speed benchmark (:mod:`.bench`), the tile-overlap study (:mod:`.tiling_study`), and
spandrel's NAFNet graph (:mod:`.spandrel_graph`), which the benchmark's ONNX comparison and the tests' oracle use."""
