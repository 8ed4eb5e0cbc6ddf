"""Which TFLite ops a phone GPU has been seen to run, and which it is documented to reject — with sources.

The host GPU accelerator (ML Drift over WebGPU, on SwiftShader or lavapipe) accepts ops that phones refuse
(TRANSPOSE_CONV, CUMSUM, POW; SPLIT and DEPTH_TO_SPACE are unproven), so residency on this machine is necessary,
never sufficient. The static audit therefore classifies every op of a model against two tables:

* :data:`PROVEN` — ops that published, fully resident phone runs used (LITERT_CL on a Pixel 8a, output checked
  against PyTorch). An export that stays inside this set uses nothing a phone has not already run.
* :data:`REJECTED` — ops (or op forms) that phones are documented to reject or mis-compute, each with why and
  where that is written down. Any of them fails the audit.

An op on neither list is *unproven on phones*: the audit fails it unless the caller allows unproven ops
explicitly (``audit --allow-unproven``). Evidence is dated; a verdict holds for the runtime version its source
names. The long form, with every source, is ``shared/DEVICE_OPS.md`` in the project's steering repository.
"""

from __future__ import annotations

from dataclasses import dataclass

_NAFNET_SEED = (
    "NAFNet-GoPro/SIDD-w32, 2179/2179 nodes on LITERT_CL, Pixel 8a, corr 1.0 vs PyTorch "
    "(google-ai-edge/litert-samples PR #168, compiled_model_api/image_restoration)"
)
_ZERO_STUFF = (
    "ZeroStuffConvT2d (RESIZE_NEAREST_NEIGHBOR + MUL + CONV_2D in place of TRANSPOSE_CONV/PixelShuffle): NAFNet "
    "2179/2179 (PR #168), EDSR x4 68/68 (PR #212), TwinLiteNet 270/270 (PR #209), Metric3D 2447/2447 (PR #167), "
    "all LITERT_CL on a Pixel 8a"
)

#: op -> the fully resident phone run(s) that contained it.
PROVEN: dict[str, str] = {
    "CONV_2D": _NAFNET_SEED,
    "DEPTHWISE_CONV_2D": _NAFNET_SEED,
    "ADD": _NAFNET_SEED,
    "SUB": _NAFNET_SEED,
    "MUL": _NAFNET_SEED,
    "MEAN": _NAFNET_SEED + "; one axis per op (a MEAN over H and W together is mis-computed, see REJECTED)",
    "RSQRT": _NAFNET_SEED,
    "RESHAPE": _NAFNET_SEED,
    "SLICE": _NAFNET_SEED + "; litert-torch lowers chunk() to SLICE pairs (144 in a straight w32 conversion)",
    "PAD": _NAFNET_SEED,
    "TRANSPOSE": _NAFNET_SEED + " (the NCHW contract at the graph edges)",
    "DEQUANTIZE": _NAFNET_SEED + " (fp16 weights; folded by the GPU delegate)",
    "RESIZE_NEAREST_NEIGHBOR": _ZERO_STUFF,
    "MAX_POOL_2D": "after a zero PAD: ResNet18 PlantNet 37/37 (PR #202), YOLACT 138/138, Pixel 8a",
    "RESIZE_BILINEAR": "align_corners=False: line detector 99/99 LITERT_CL, Pixel 8a (PR #173)",
}


@dataclass(frozen=True)
class Rejection:
    reason: str
    source: str


#: op -> why phones reject it (or compute it wrong) and where that is documented.
REJECTED: dict[str, Rejection] = {
    "TRANSPOSE_CONV": Rejection(
        "rejected by LITERT_CL on Pixel 8a (zero-stuff conv is the proven replacement)",
        "litert-samples PR #153 depth_estimation/conversion/README.md; PR #167; skills/gpu-clean-conversion",
    ),
    "DEPTH_TO_SPACE": Rejection(
        "Mali's LITERT_CL rejects it per Google's EDSR build notes; the classic delegate rejected it in 2020-21; "
        "no fully resident phone graph contains it",
        "litert-samples PR #212 super_resolution build_edsr.py; tensorflow/tensorflow#51421, #39746",
    ),
    "SPLIT": Rejection(
        "called GPU-banned by Google's conversion notes (slice instead); 16-way split ran out of CL resources on "
        "Mali-G76; 'Operation is not supported' on older delegates; no fully resident phone graph contains it",
        "litert-samples skills/gpu-clean-conversion/SKILL.md; tensorflow/tensorflow#56328, #35632, #44124",
    ),
    "SPLIT_V": Rejection(
        "'Operation is not supported' with partial CPU fallback on the GPU delegate",
        "tensorflow/tensorflow#35632, #44124",
    ),
    "RELU_0_TO_1": Rejection(
        "accepted by LiteRT 2.1.3, rejected by 2.1.5 and 2.1.6: CompiledModel creation fails",
        "google-ai-edge/LiteRT#8598; litert-samples PR #182 build_dfine_split.py",
    ),
    "BROADCAST_TO": Rejection(
        "rejected on a runtime tensor even at rank 4 (LITERT_CL, Pixel 8a)",
        "google-ai-edge/LiteRT#9191; litert-samples PR #196 semantic_similarity/conversion/README.md",
    ),
    "GATHER": Rejection("gathers are rejected, often only on the device", "litert-samples skills/gpu-clean-conversion"),
    "GATHER_ND": Rejection(
        "rejected (stride-2 slicing, grid_sample, replicate/reflect pad lower to it), often only on the device",
        "litert-samples skills/gpu-clean-conversion; PR #166 build_yolox.py; architecture-walls.md",
    ),
    "SELECT": Rejection("rejected (where, PReLU/ELU forms)", "litert-samples skills/gpu-clean-conversion; PR #220"),
    "SELECT_V2": Rejection("rejected (where, PReLU/ELU forms)", "litert-samples skills/gpu-clean-conversion; PR #220"),
    "WHERE": Rejection("rejected (data-dependent shapes)", "litert-samples skills/gpu-clean-conversion"),
    "POW": Rejection("called GPU-rejected; x*x is used instead", "litert-samples PR #179 build_cpga.py; PR #168"),
    "CUMSUM": Rejection("no GPU kernel on phones (the host GPU accepts it)", "litert-samples skills/gpu-clean-conversion"),
    "CAST": Rejection("dtype changes inside the graph break GPU delegation", "litert-samples skills/gpu-clean-conversion"),
    "TOPK_V2": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "GELU": Rejection("rejected; a tanh/sigmoid form is used instead", "litert-samples skills/gpu-clean-conversion"),
    "ERF": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "EMBEDDING_LOOKUP": Rejection("a gather: no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "RFFT2D": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "RFFT": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "IRFFT": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "FFT": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "STFT": Rejection("no GPU kernel", "litert-samples skills/gpu-clean-conversion"),
    "COMPLEX": Rejection("no complex tensors on GPU", "litert-samples skills/gpu-clean-conversion"),
    "PADV2": Rejection(
        "with -inf padding (padded MaxPool2d) rejected: 'src has wrong size'", "litert-samples PR #202 plantnet README"
    ),
}

#: op forms that are rejected although the op itself is proven: checked on the graph, not the op name.
FORM_REJECTIONS = {
    "DIV_SAME_INPUTS": Rejection(
        "DIV with the same tensor as both inputs: 'No support of few identical inputs', graph split in 3 partitions",
        "google-ai-edge/LiteRT#9192 (Pixel 8a, 2.1.6); also refused by the host GPU accelerator here",
    ),
    "REDUCE_MAX_CONST_INPUTS": Rejection(
        "REDUCE_MAX with two constant inputs is declined", "google-ai-edge/LiteRT#9192 (Pixel 8a, 2.1.6)"
    ),
    "MEAN_MULTI_AXIS": Rejection(
        "a MEAN over two spatial axes at once (AdaptiveAvgPool2d(1)) is mis-computed or overflows",
        "litert-samples PR #168 build_nafnet.py; PR #169 build_lraspp.py",
    ),
    "RANK_ABOVE_4": Rejection(
        "tensors above rank 4 are rejected at compile time", "litert-samples PR #212 EDSR README; toolkit README"
    ),
}


def classify(op: str) -> str:
    """'proven', 'rejected' or 'unproven' (custom ops are never proven)."""
    if op in PROVEN:
        return "proven"
    if op in REJECTED:
        return "rejected"
    return "unproven"


__all__ = ["FORM_REJECTIONS", "PROVEN", "REJECTED", "Rejection", "classify"]
