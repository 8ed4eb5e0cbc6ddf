"""Programs built on the library: the benchmark (:mod:`.bench`), the demo (:mod:`.demo`) and the tiling study
(:mod:`.tiling_study`)."""
