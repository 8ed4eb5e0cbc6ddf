"""Which TFLite ops a phone GPU has been seen to run, and which it is documented to reject — with sources.

The host GPU accelerator (ML Drift over WebGPU, on SwiftShader or lavapipe) accepts ops that phones refuse
(TRANSPOSE_CONV, CUMSUM, POW; SPLIT and DEPTH_TO_SPACE are unproven), so residency on this machine is necessary,
never sufficient. The static audit therefore classifies every op of a model against two tables:

* :data:`PROVEN` — ops that published, fully resident phone runs used (LITERT_CL on a Pixel 8a, output checked
  against PyTorch). An export that stays inside this set uses nothing a phone has not already run.
* :data:`REJECTED` — ops (or op forms) that phones are documented to reject or mis-compute, each with why and
  where that is written down. Any of them fails the audit.
* :data:`FORM_REJECTIONS` — forms of otherwise proven ops that phones get wrong (a MEAN over H and W at once, a
  nearest resize read off its grid, an output ADD that is also consumed, ...), found on the graph.
* :data:`NUMERIC_REJECTIONS` — failures only a run shows (fp16 reductions past 65504): the audit's fp16 checks
  name them.

Every rule carries the proven form to use instead (``audit --explain RULE``), and has a fixture that the audit must
fail and a control in the proven form that it must pass (``tests/device_failures``).

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
    """Why phones reject (or mis-compute) something, where that is written down, and the proven form to use."""

    reason: str
    source: str
    instead: str


_ZERO_STUFF_FORM = (
    "the zero-stuff upsampler: RESIZE_NEAREST_NEIGHBOR 2x, MUL by a mask that is 1 only at [::2, ::2], CONV_2D 2x2 "
    "(ZeroStuffConvT2d; this project's export): " + _ZERO_STUFF
)
_SELECTION_CONV = (
    "a 1x1 CONV_2D with a 0/1 selection matrix for a fixed gather of channels; PAD or SLICE for padding and crops; a "
    "stride-2 CONV_2D for subsampling"
)
_PR168_BANNED = "litert-samples PR #168 build_nafnet.py (its BANNED op set: a conversion script's list, no device log)"

#: op -> why phones reject it (or compute it wrong), where that is documented, and what to use instead.
#: Only TFLite builtin op names belong here (``read_graph`` names every op of a file that way).
REJECTED: dict[str, Rejection] = {
    "TRANSPOSE_CONV": Rejection(
        "rejected by LITERT_CL on Pixel 8a (zero-stuff conv is the proven replacement)",
        "litert-samples PR #153 depth_estimation/conversion/README.md; PR #167; skills/gpu-clean-conversion",
        _ZERO_STUFF_FORM,
    ),
    "DEPTH_TO_SPACE": Rejection(
        "Mali's LITERT_CL rejects it per Google's EDSR build notes; the classic delegate rejected it in 2020-21; "
        "no fully resident phone graph contains it",
        "litert-samples PR #212 super_resolution build_edsr.py; tensorflow/tensorflow#51421, #39746",
        _ZERO_STUFF_FORM,
    ),
    "SPLIT": Rejection(
        "called GPU-banned by Google's conversion notes (slice instead); 16-way split ran out of CL resources on "
        "Mali-G76; 'Operation is not supported' on older delegates; no fully resident phone graph contains it",
        "litert-samples skills/gpu-clean-conversion/SKILL.md; tensorflow/tensorflow#56328, #35632, #44124",
        "SLICE pairs (x[:, :c], x[:, c:]), which litert-torch emits for chunk(): " + _NAFNET_SEED,
    ),
    "SPLIT_V": Rejection(
        "'Operation is not supported' with partial CPU fallback on the GPU delegate",
        "tensorflow/tensorflow#35632, #44124",
        "one SLICE per part: " + _NAFNET_SEED,
    ),
    "RELU_0_TO_1": Rejection(
        "accepted by LiteRT 2.1.3, rejected by 2.1.5 and 2.1.6: CompiledModel creation fails",
        "google-ai-edge/LiteRT#8598; litert-samples PR #182 build_dfine_split.py",
        "relu(x) - relu(x - 1), exact (litert-samples skills/gpu-clean-conversion); RELU is in no published resident "
        "phone graph, so the audit needs --allow-unproven for it",
    ),
    "BROADCAST_TO": Rejection(
        "rejected on a runtime tensor even at rank 4 (LITERT_CL, Pixel 8a)",
        "google-ai-edge/LiteRT#9191; litert-samples PR #196 semantic_similarity/conversion/README.md",
        "let the elementwise op broadcast (ADD/SUB/MUL of [1,H,W,C] by a runtime [1,1,1,C] as the seed's channel "
        "attention, " + _NAFNET_SEED + "); bake a broadcast constant at its full shape",
    ),
    "GATHER": Rejection(
        "gathers are rejected, often only on the device",
        "litert-samples skills/gpu-clean-conversion; " + _PR168_BANNED,
        _SELECTION_CONV,
    ),
    "GATHER_ND": Rejection(
        "rejected (stride-2 slicing, grid_sample, replicate/reflect pad lower to it), often only on the device",
        "litert-samples skills/gpu-clean-conversion; PR #166 build_yolox.py; architecture-walls.md",
        _SELECTION_CONV,
    ),
    "SELECT": Rejection(
        "rejected (where, PReLU/ELU forms)",
        "litert-samples skills/gpu-clean-conversion; PR #220",
        "arithmetic: x * (1 - m) + v * m with a constant mask m; relu forms for PReLU / leaky ReLU (RELU is unproven)",
    ),
    "SELECT_V2": Rejection(
        "rejected (where, PReLU/ELU forms)",
        "litert-samples skills/gpu-clean-conversion; PR #220",
        "arithmetic: x * (1 - m) + v * m with a constant mask m; relu(x) for where(x > 0, x, 0) (fused into the conv)",
    ),
    "WHERE": Rejection(
        "data-dependent output shape", _PR168_BANNED, "none in a fixed-shape image graph: compute it on the host"
    ),
    "POW": Rejection(
        "called GPU-rejected; x*x is used instead",
        "litert-samples PR #179 build_cpga.py; PR #168",
        "repeated MUL (x * x, x * x * x)",
    ),
    "CUMSUM": Rejection(
        "no GPU kernel on phones (the host GPU accepts it)",
        _PR168_BANNED,
        "a 1x1 CONV_2D with a triangular 0/1 matrix (prefix sums over channels), or shifted SLICEs and ADDs",
    ),
    "CAST": Rejection(
        "dtype changes inside the graph break GPU delegation", _PR168_BANNED, "keep the graph float32 end to end"
    ),
    "TOPK_V2": Rejection(
        "no GPU kernel",
        _PR168_BANNED,
        "for k = 1 over channels: MAX_POOL_2D over a [1, 1, C, H*W] view (the amax rewrite of "
        "litert-samples skills/gpu-clean-conversion)",
    ),
    "GELU": Rejection(
        "rejected; a tanh/sigmoid form is used instead",
        _PR168_BANNED + "; litert-samples utilities/litert_gpu_toolkit patch_gelu",
        "x * sigmoid(1.702 x) (the toolkit's SigmoidGELU; litert-torch fuses the tanh form back into GELU; "
        "LOGISTIC is unproven on phones)",
    ),
    "EMBEDDING_LOOKUP": Rejection("a gather: no GPU kernel", _PR168_BANNED, _SELECTION_CONV),
    "RFFT2D": Rejection(
        "no GPU kernel",
        _PR168_BANNED,
        "a DFT as a convolution with the cos/sin basis baked into its kernels (litert-samples "
        "skills/gpu-clean-conversion)",
    ),
    "PADV2": Rejection(
        "with -inf padding (padded MaxPool2d) rejected: 'src has wrong size'",
        "litert-samples PR #202 plantnet README",
        "a zero PAD before MAX_POOL_2D where the input is >= 0 (post-ReLU): PlantNet 37/37 and YOLACT 138/138 on a "
        "Pixel 8a (PR #202; the toolkit's ZeroPadMaxPool)",
    ),
}

#: op forms that are rejected although the op itself is proven: checked on the graph, not the op name.
FORM_REJECTIONS = {
    "DIV_SAME_INPUTS": Rejection(
        "DIV with the same tensor as both inputs: 'No support of few identical inputs', graph split in 3 partitions",
        "google-ai-edge/LiteRT#9192 (Pixel 8a, 2.1.6); also refused by the host GPU accelerator here",
        "special-case it: x / x is 1 (a softmax over a length-1 axis is identically 1)",
    ),
    "REDUCE_MAX_CONST_INPUTS": Rejection(
        "REDUCE_MAX with two constant inputs is declined",
        "google-ai-edge/LiteRT#9192 (Pixel 8a, 2.1.6)",
        "compute the reduction of the constant at export time (a constant operand of the op that reads it)",
    ),
    "MEAN_MULTI_AXIS": Rejection(
        "a MEAN over two spatial axes at once (AdaptiveAvgPool2d(1)) is mis-computed or overflows",
        "litert-samples PR #168 build_nafnet.py; PR #169 build_lraspp.py",
        "two single-axis MEANs (W, then H): " + _NAFNET_SEED,
    ),
    "RANK_ABOVE_4": Rejection(
        "tensors above rank 4 are rejected at compile time",
        "litert-samples PR #212 EDSR README; PR #226 dia2 README; toolkit README",
        "rank-4 forms: the zero-stuff upsampler for PixelShuffle, a 1x1 CONV_2D for a channel shuffle, heads folded "
        "into the channel axis",
    ),
    "RESIZE_NEAREST_OFF_GRID": Rejection(
        "a RESIZE_NEAREST_NEIGHBOR read at positions off its stride grid: Mali computes those positions differently "
        "('nearest-upsample + mask at the in-block offset' exact on desktop, corr 0.57 on the phone); every proven "
        "upsampler keeps only [::s, ::s] and lets a conv supply the offset",
        "litert-samples PR #167 compiled_model_api/metric_depth/README.md (Pixel 8a, LITERT_CL); the zero-stuff "
        "form of PR #168/#212/#209",
        _ZERO_STUFF_FORM,
    ),
    "RESIZE_BILINEAR_ALIGN_HALF_PIXEL": Rejection(
        "RESIZE_BILINEAR with align_corners and half_pixel_centers both set: the GPU delegate bans the pair",
        "litert-samples utilities/litert_gpu_toolkit patch_interpolate (README); tensorflow "
        "lite/tools/versioning/gpu_compatibility.cc",
        "align_corners=False (half-pixel centres): line detector 99/99 LITERT_CL on a Pixel 8a (litert-samples PR "
        "#173)",
    ),
    "OUTPUT_ADD_CONSUMED": Rejection(
        "an ADD of two runtime tensors whose result is a graph output and is also read by another op: LITERT_CL "
        "returns an operand in that output, not the sum (output aliasing)",
        "google-ai-edge/LiteRT#8599; litert-samples skills/gpu-clean-conversion",
        "make that output a SUB (a - (-b), the negation folded into b's producer) or a MUL by a runtime 1; the skill "
        "reports SUB, MUL and an ADD of a constant exact in this pattern",
    ),
}

#: failures that only a run shows: full GPU residency, every op proven, wrong numbers. The audit names them when
#: its fp16 checks (``--gpu``'s fp16 pass, ``--fp16``'s headroom) fail.
NUMERIC_REJECTIONS = {
    "FP16_REDUCTION_OVERFLOW": Rejection(
        "fp16 reductions (a channel LayerNorm's sum of (x - mu)^2, a mean over C*H*W) pass 65504: phone GPUs "
        "accumulate in fp16 even for fp32 graphs; full residency, wrong numbers (NAFNet residual corr 0.016, a grid "
        "artifact)",
        "litert-samples PR #168 READMEs (Pixel 8a); PR #219 dehazeformer README; skills/gpu-clean-conversion",
        "reduce in a down-scaled domain: statistics on x / S, never scaled back (this project's ScaledLayerNorm2d, "
        "the toolkit's patch_safe_layernorm); single-axis or hierarchical means",
    ),
}


def rules() -> dict[str, Rejection]:
    """Every rule the audit can name: rejected ops, rejected forms and fp16 run-time failures."""
    return {**REJECTED, **FORM_REJECTIONS, **NUMERIC_REJECTIONS}


def explain(rule: str) -> str:
    """A rule's reason, source and the proven form to use instead. Raises ``KeyError`` for an unknown rule (matched
    without regard to case)."""
    known = rules()
    key = rule.strip().upper()
    if key not in known:
        raise KeyError(rule)
    r = known[key]
    kind = "rejected op" if key in REJECTED else "rejected form" if key in FORM_REJECTIONS else "fp16 run failure"
    return f"{key} ({kind})\nreason   {r.reason}\nsource   {r.source}\ninstead  {r.instead}"


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


__all__ = [
    "FORMS", "FORM_REJECTIONS", "NUMERIC_REJECTIONS", "PROVEN", "REJECTED", "Form", "Rejection", "classify", "explain",
    "rules",
]  # fmt: skip
