"""Proofs about a shipped .tflite file: the audit (:mod:`.audit`: ops, rank, CPU parity, GPU fp32/fp16 passes),
per-op fp16 headroom on the file's own tensors (:mod:`.headroom`), the stressed twin exported the same way
(:mod:`.fp16`) and the HTML report (:mod:`.report`)."""
