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
    "RESIZE_NEAREST_OFF_GRID": Rejection(
        "a RESIZE_NEAREST_NEIGHBOR read at positions off its stride grid: Mali computes those positions differently "
        "('nearest-upsample + mask at the in-block offset' exact on desktop, corr 0.57 on the phone); every proven "
        "upsampler keeps only [::s, ::s] and lets a conv supply the offset",
        "litert-samples PR #167 compiled_model_api/metric_depth/README.md (Pixel 8a, LITERT_CL); the zero-stuff "
        "form of PR #168/#212/#209",
    ),
}


@dataclass(frozen=True)
class Form:
    """An op *form* our exports use, and the published fully resident phone graph that contains the same form
    (``evidence``), or ``None`` where no published phone graph does (then ``note`` says why we use it anyway)."""

    ops: str
    evidence: str | None
    note: str = ""


_DM_COUNT = "DM-Count 30/30 LITERT_CL, Pixel 8a (its density head is a 1x1 conv to one channel; PR branch README)"
_SEED_LN = "the seed's LayerNorm: mean over C, x - mu and d * rsqrt(var) broadcast over C (" + _NAFNET_SEED + ")"

#: Every form the default, TLC and int8 exports use, one entry per rewrite piece (README: "Forms and evidence").
FORMS: dict[str, Form] = {
    "layernorm_mean_conv": Form("CONV_2D 1x1, C -> 1 output channel (the LayerNorm means)", _DM_COUNT),
    "broadcast_channels": Form("SUB / MUL of [1,H,W,C] by a runtime [1,H,W,1] (x - mu, d * rsqrt(v))", _SEED_LN),
    "rsqrt": Form("RSQRT of the variance + eps", _SEED_LN),
    "broadcast_spatial": Form(
        "MUL of [1,H,W,C] by a runtime [1,1,1,C] (channel attention)", "the seed's SCA, x * sca(x) (" + _NAFNET_SEED + ")"
    ),
    "mean_single_axis": Form("MEAN over one spatial axis, twice (channel-attention pooling)", _NAFNET_SEED),
    "gate_split_convs": Form(
        "SimpleGate as MUL of two same-shape convolutions (each producer conv split by output rows)",
        "ordinary CONV_2D / DEPTHWISE_CONV_2D and a same-shape MUL, as in the seed's gate (" + _NAFNET_SEED + ")",
    ),
    "zero_stuff_upsample": Form(
        "RESIZE_NEAREST_NEIGHBOR 2x, MUL by a [::2, ::2] mask (as its even-row and even-column factors), PAD 1, "
        "CONV_2D 2x2, SLICE from offset 0",
        _ZERO_STUFF + "; the seed multiplies by one [1,2H,2W,1] constant, broadcast over C, we by its two factors "
        "(constants broadcast over W and C, and over H and C)",
    ),
    "nchw_transposes": Form(
        "TRANSPOSE at the graph edges only (NCHW [1,3,H,W] in and out)",
        "the seed's NCHW [1,3,256,256] I/O (" + _NAFNET_SEED + ")",
    ),
    "fp16_dequantize": Form("DEQUANTIZE of fp16 weights (folded by the GPU delegate)", _NAFNET_SEED),
    "int8_dequantize": Form(
        "DEQUANTIZE of per-channel int8 conv weights (weight-only int8)",
        None,
        "no published fully resident phone graph has int8 weights; the fp16 export is the proven one",
    ),
    "tlc_box_mean_slices": Form(
        "SLICE along H or W at non-zero offsets, ADD, MUL by a scalar (TLC box means)",
        None,
        "published graphs slice channels (the seed's gate) or crop from offset 0 (the zero-stuff crop); spatial "
        "slices at an offset are unproven",
    ),
    "tlc_edge_broadcast": Form(
        "PAD, then SUB of a runtime [1,H,1,C] or [1,1,W,C] edge from the padded map (a broadcast along one axis), "
        "MUL by a 0/1 mask, SUB (TLC replicate padding)",
        None,
        "the seed broadcasts a runtime tensor over H and W together (SCA); over one spatial axis is unproven",
    ),
}


def classify(op: str) -> str:
    """'proven', 'rejected' or 'unproven' (custom ops are never proven)."""
    if op in PROVEN:
        return "proven"
    if op in REJECTED:
        return "rejected"
    return "unproven"


__all__ = ["FORMS", "FORM_REJECTIONS", "PROVEN", "REJECTED", "Form", "Rejection", "classify"]
