"""Proofs about a shipped .tflite file: the audit (:mod:`.audit`: ops, rank, CPU parity, GPU fp32/fp16 passes) with
its thresholds and runs (:mod:`.parity`) and its text (:mod:`.text`), per-op fp16 headroom on the file's own tensors
(:mod:`.headroom`, with the accumulator bounds of :mod:`.bounds`), the stressed twin exported the same way
(:mod:`.stressed_export`) and the HTML report (:mod:`.report`)."""
