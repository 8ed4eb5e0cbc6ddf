"""Every documented phone-GPU failure as a .tflite built at test time, and a control in the proven form.

One fixture per rule of :mod:`nafnet_litert.litert.device_ops` (each :data:`~.device_ops.REJECTED` op, each
:data:`~.device_ops.FORM_REJECTIONS` form, each :data:`~.device_ops.NUMERIC_REJECTIONS` run-time failure): a tiny
PyTorch network (:mod:`.modules`) converted with litert-torch, or, where the converter will not emit the op, that
conversion with one op edited in the flatbuffer (:mod:`.flatbuffer`). A fixture's docstring names where the failure
is documented. A control computes the same thing in the form phones are proven to run (or, where the rule is about
an op form, the same op in a form outside the rule) and must pass the audit: no rule fires on everything.

``tests/test_device_failures.py`` converts them all once per session and checks each one;
``scripts/toolkit_column.py`` runs Google's host checker on the same files for the README table.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nafnet_litert.litert.convert import convert_to_tflite
from nafnet_litert.models.deploy.native_ops import channel_halves

from . import modules as m
from .flatbuffer import Editor, options


@dataclass(frozen=True)
class Case:
    """A fixture (``rule`` set: the audit must fail it naming ``rule``) or a control (``rule`` None)."""

    name: str
    build: Callable[[], bytes]
    #: the op that must be in the built graph (so a conversion that dropped or renamed it cannot pass silently)
    op: str
    rule: str | None = None
    #: fixtures: the control's name (None: no proven form exists; ``no_control`` says why)
    control: str | None = None
    no_control: str = ""
    #: how the audit catches it: "static" (the file alone) or "gpu_fp16" (``audit --gpu`` / ``--fp16``)
    caught_by: str = "static"
    #: controls: passes only with ``--allow-unproven`` (it uses ops no published phone graph has)
    allow_unproven: bool = False
    #: controls: the checks it is allowed to fail (the two-output control fails the one-image io contract)
    may_fail: tuple[str, ...] = ()
    #: fixture and control compute the same function (their CPU outputs are compared)
    same_function: bool = False
    edited: bool = False
    outputs: tuple[str, ...] = field(default=("restored",))

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.build) or ""


FIXTURES: dict[str, Case] = {}
CONTROLS: dict[str, Case] = {}


def fixture(rule: str, op: str, control: str | None = None, **kw):
    def register(fn):
        FIXTURES[fn.__name__] = Case(fn.__name__, fn, op, rule, control, **kw)
        return fn

    return register


def control(op: str, **kw):
    def register(fn):
        CONTROLS[fn.__name__] = Case(fn.__name__, fn, op, **kw)
        return fn

    return register


def convert(net) -> bytes:
    return convert_to_tflite(net.eval(), m.SIZE, "fp32")


# ================================================================================================ table B: ops
@fixture("SPLIT", "SPLIT", control="slice_gate", same_function=True)
def split():
    """SimpleGate through one SPLIT (``torch.chunk`` as TFLite emits it when asked for the native op). Called
    GPU-banned in litert-samples skills/gpu-clean-conversion/SKILL.md ("slice instead"); a 16-way split ran out of
    CL resources on Mali-G76 (tensorflow/tensorflow#56328); 'Operation is not supported' on older delegates
    (tensorflow/tensorflow#35632, #44124)."""

    def gate(y):
        a, b = channel_halves(y, 1)
        return a * b

    return convert(m.probe(gate, head_in=m.CHANNELS // 2))


@fixture("SPLIT_V", "SPLIT_V", control="slice_gate", same_function=True, edited=True)
def split_v():
    """The SPLIT fixture with its SPLIT rewritten as SPLIT_V (sizes [2, 2]; litert-torch lowers unequal
    ``torch.split`` to SLICEs, so only an edit makes one). 'Operation is not supported', partial CPU fallback:
    tensorflow/tensorflow#35632, #44124."""
    ed = Editor(split())
    k = ed.find("SPLIT")
    axis, x = ed.graph.operators[k].inputs
    sizes = ed.const("split_v_sizes", np.array([2, 2], np.int32))
    ed.set_op(k, "SPLIT_V", inputs=[x, sizes, axis], options=options("SplitVOptionsT", numSplits=2))
    return ed.to_bytes()


@control("SLICE")
def slice_gate():
    """SimpleGate as ``a, b = y.chunk(2, 1); a * b``: litert-torch lowers it to two SLICEs, the form of NAFNet's
    2179/2179 resident graph (litert-samples PR #168)."""

    def gate(y):
        a, b = y.chunk(2, 1)
        return a * b

    return convert(m.probe(gate, head_in=m.CHANNELS // 2))


@fixture("DEPTH_TO_SPACE", "DEPTH_TO_SPACE", control="zero_stuff", same_function=True)
def depth_to_space():
    """NAFNet's upsampler as 1x1 conv + DEPTH_TO_SPACE. litert-samples PR #212 build_edsr.py says Mali rejects it;
    the classic delegate rejected it in 2020-21 (tensorflow/tensorflow#51421, #39746)."""
    return convert(m.probe(m.DepthToSpaceUpsample(m.reference_upsample()), head_in=m.CHANNELS // 2, down=True))


@fixture("TRANSPOSE_CONV", "TRANSPOSE_CONV", control="zero_stuff", same_function=True)
def transpose_conv():
    """NAFNet's upsampler as one ConvTranspose2d(k=2, s=2). Rejected by LITERT_CL on a Pixel 8a: litert-samples
    PR #153 depth_estimation/conversion/README.md, PR #167; the skill calls it version skew."""
    return convert(m.probe(m.transpose_conv(m.reference_upsample()), head_in=m.CHANNELS // 2, down=True))


@control("RESIZE_NEAREST_NEIGHBOR")
def zero_stuff():
    """The same upsampler in the zero-stuff form (nearest 2x, a [::2, ::2] mask, a 2x2 conv): NAFNet PR #168,
    EDSR PR #212, TwinLiteNet PR #209, Metric3D PR #167, all fully resident on a Pixel 8a."""
    return convert(m.probe(m.ZeroStuffUpsample.from_reference(m.reference_upsample()), head_in=2, down=True))


@fixture("RELU_0_TO_1", "RELU_0_TO_1", control="relu_difference", same_function=True)
def relu_0_to_1():
    """``clamp(y, 0, 1)`` (hard-sigmoid, Hardtanh(0, 1)): accepted by LiteRT 2.1.3, rejected by 2.1.5 and 2.1.6,
    CompiledModel creation fails (google-ai-edge/LiteRT#8598; litert-samples PR #182 build_dfine_split.py)."""
    return convert(m.probe(lambda y: y.clamp(0, 1)))


@control("SUB", allow_unproven=True)
def relu_difference():
    """``relu(y) - relu(y - 1)``, the exact rewrite the skill gives for LiteRT#8598 (RELU, one of them fused into
    the stem conv: not in a published resident phone graph, so it passes with --allow-unproven)."""
    return convert(m.probe(lambda y: F.relu(y) - F.relu(y - 1)))


@fixture("BROADCAST_TO", "BROADCAST_TO", control="implicit_broadcast", same_function=True)
def broadcast_to():
    """A runtime row expanded over H before a conv (``.expand().contiguous()`` lowers to BROADCAST_TO): rejected on
    a runtime tensor even at rank 4, LITERT_CL on a Pixel 8a (google-ai-edge/LiteRT#9191; litert-samples PR #196
    semantic_similarity/conversion/README.md)."""
    return convert(m.probe(lambda y: y[:, :, :1, :].expand(1, m.CHANNELS, *m.SIZE).contiguous()))


@control("ADD")
def implicit_broadcast():
    """The same: the head convolves the row and the residual ADD broadcasts it over H (no BROADCAST_TO; a runtime
    broadcast along one axis is an unproven form that the audit lists, not fails)."""
    return convert(m.probe(lambda y: y[:, :, :1, :]))


@fixture("GATHER_ND", "GATHER_ND", control="permutation_conv", same_function=True)
def gather_nd():
    """A channel gather (``index_select``), which litert-torch lowers to GATHER_ND as it does stride-2 slicing,
    grid_sample, bicubic and padded pooling elsewhere: rejected on the device (litert-samples
    skills/gpu-clean-conversion; PR #166 build_yolox.py; architecture-walls.md)."""
    perm = torch.tensor(m.PERMUTATION)
    return convert(m.probe(lambda y: y.index_select(1, perm)))


@fixture("EMBEDDING_LOOKUP", "EMBEDDING_LOOKUP", control="permutation_conv", same_function=True)
def embedding_lookup():
    """The same channel gather as ``F.embedding`` over the channel rows (EMBEDDING_LOOKUP). In the banned set of
    litert-samples PR #168 build_nafnet.py (a gather; no GPU kernel)."""
    ids = torch.tensor(m.PERMUTATION)
    return convert(m.probe(lambda y: F.embedding(ids, y.reshape(m.CHANNELS, -1)).reshape(1, m.CHANNELS, *m.SIZE)))


@fixture("GATHER", "GATHER", control="permutation_conv", same_function=True, edited=True)
def gather():
    """The EMBEDDING_LOOKUP fixture with the lookup rewritten as GATHER(params, ids, axis 0) (the same rows).
    Gathers are rejected, often only on the device: litert-samples skills/gpu-clean-conversion; PR #168
    build_nafnet.py's banned set."""
    ed = Editor(embedding_lookup())
    k = ed.find("EMBEDDING_LOOKUP")
    ids, params = ed.graph.operators[k].inputs
    ed.set_op(k, "GATHER", inputs=[params, ids], options=options("GatherOptionsT", axis=0, batchDims=0))
    return ed.to_bytes()


@control("CONV_2D")
def permutation_conv():
    """The channel gather as a 1x1 CONV_2D with a 0/1 permutation matrix (proven: NAFNet PR #168)."""
    return convert(m.probe(lambda y, conv: conv(y), conv=m.permutation_conv()))


@fixture("PADV2", "PADV2", control="zero_pad_maxpool", same_function=True)
def padv2():
    """A padded MaxPool2d (3x3, stride 1) on a non-negative map, padded with -inf (PADV2): rejected on a Pixel 8a,
    'src has wrong size' (litert-samples PR #202 image_classification/plantnet_kotlin_gpu README)."""
    return convert(m.probe(lambda y: F.max_pool2d(F.pad(y * y, (1, 1, 1, 1), value=float("-inf")), 3, 1)))


@control("MAX_POOL_2D")
def zero_pad_maxpool():
    """The same pool after a zero PAD (exact on a non-negative map): PlantNet 37/37 and YOLACT 138/138 on a Pixel
    8a (litert-samples PR #202; toolkit ZeroPadMaxPool)."""
    return convert(m.probe(lambda y: F.max_pool2d(F.pad(y * y, (1, 1, 1, 1)), 3, 1)))


@fixture("SELECT", "SELECT", control="leaky_arithmetic", same_function=True)
def select():
    """A leaky ReLU / PReLU as ``torch.where(y > 0, y, 0.1 * y)`` (SELECT): rejected on a Pixel 8a
    (litert-samples skills/gpu-clean-conversion; PR #220 build_rwkv7_step.py)."""
    return convert(m.probe(lambda y: torch.where(y > 0, y, 0.1 * y)))


@control("MUL", allow_unproven=True)
def leaky_arithmetic():
    """The same as arithmetic, ``0.1 y + 0.9 relu(y)`` (the skill's rewrite; RELU is unproven on phones)."""
    return convert(m.probe(lambda y: 0.1 * y + 0.9 * F.relu(y)))


@fixture("SELECT_V2", "SELECT_V2", control="fused_relu", same_function=True)
def select_v2():
    """A ReLU as ``torch.where(y > 0, y, 0.0)`` (SELECT_V2, the scalar broadcasts): rejected on a Pixel 8a
    (litert-samples skills/gpu-clean-conversion; PR #220 build_rwkv7_step.py)."""
    return convert(m.probe(lambda y: torch.where(y > 0, y, 0.0)))


@control("CONV_2D")
def fused_relu():
    """The same as ``relu(y)``, which the converter fuses into the stem's CONV_2D."""
    return convert(m.probe(F.relu))


@fixture("POW", "POW", control="repeated_mul", same_function=True)
def power():
    """``y ** 3.0`` (POW): called GPU-rejected, repos use x*x (litert-samples PR #179 build_cpga.py; PR #168
    build_nafnet.py's banned set)."""
    return convert(m.probe(lambda y: y.pow(3.0)))


@control("MUL")
def repeated_mul():
    """The same as ``y * y * y`` (MUL)."""
    return convert(m.probe(lambda y: y * y * y))


@fixture("CUMSUM", "CUMSUM", control="triangular_conv", same_function=True)
def cumsum():
    """A channel prefix sum (CUMSUM): in the banned set of litert-samples PR #168 build_nafnet.py (no phone
    kernel; the host GPU accepts it)."""
    return convert(m.probe(lambda y: y.cumsum(1)))


@control("CONV_2D")
def triangular_conv():
    """The same prefix sum as a 1x1 CONV_2D with a lower-triangular 0/1 matrix."""
    tri = np.tril(np.ones((m.CHANNELS, m.CHANNELS), np.float32))
    return convert(m.probe(lambda y, conv: conv(y), conv=m.constant_conv(tri)))


@fixture("CAST", "CAST", no_control="keeping float32 end to end is the only proven form: no op phones are "
         "proven to run truncates to an integer")  # fmt: skip
def cast():
    """A float -> int32 -> float round trip (two CASTs): dtype changes inside the graph, in the banned set of
    litert-samples PR #168 build_nafnet.py."""
    return convert(m.probe(lambda y: (y * 4).to(torch.int32).to(torch.float32) / 4))


@fixture("TOPK_V2", "TOPK_V2", control="maxpool_channel_max", same_function=True, edited=True)
def topk_v2():
    """The channel max, ``y + amax_c(y)``, with its REDUCE_MAX rewritten as TOPK_V2(k = 1) over the channel axis
    (litert-torch lowers ``torch.topk`` to a STABLEHLO_SORT). In the banned set of litert-samples PR #168
    build_nafnet.py."""
    ed = Editor(convert(m.probe(lambda y: y + y.amax(1, keepdim=True))))
    k = ed.find("REDUCE_MAX")
    x, axes = ed.graph.operators[k].inputs
    if ed.value(axes).ravel().tolist() != [len(ed.shape(x)) - 1]:
        raise AssertionError("the channel max must reduce the last (NHWC channel) axis, TOPK_V2's axis")
    (values,) = ed.graph.operators[k].outputs
    indices = ed.tensor("topk_indices", ed.shape(values), np.int32)
    kk = ed.const("topk_k", np.array(1, np.int32))
    ed.set_op(k, "TOPK_V2", inputs=[x, kk], outputs=[values, indices], options=options("TopKV2OptionsT"))
    return ed.to_bytes()


@control("MAX_POOL_2D")
def maxpool_channel_max():
    """The same channel max as MAX_POOL_2D over a ``[1, 1, C, H*W]`` view (the skill's amax rewrite)."""

    def channel_max(y):
        return y + F.max_pool2d(y.reshape(1, 1, m.CHANNELS, -1), (m.CHANNELS, 1)).reshape(1, 1, *m.SIZE)

    return convert(m.probe(channel_max))


@fixture("GELU", "GELU", control="sigmoid_gelu")
def gelu():
    """``F.gelu`` (GELU): in the banned set of litert-samples PR #168 build_nafnet.py; the toolkit's patch_gelu
    swaps it for a tanh or sigmoid form."""
    return convert(m.probe(F.gelu))


@control("LOGISTIC", allow_unproven=True)
def sigmoid_gelu():
    """``y * sigmoid(1.702 y)``, the toolkit's SigmoidGELU (an approximation; LOGISTIC is unproven on phones). The
    tanh form is no control: litert-torch fuses it back into GELU."""
    return convert(m.probe(lambda y: y * torch.sigmoid(1.702 * y)))


@fixture("WHERE", "WHERE", edited=True, no_control="a data-dependent shape has no fixed-shape image-graph form")
def where():
    """A WHERE (coordinates of the non-zero elements, a data-dependent shape) inserted on the stem's output, its
    int64 result left unread: in the banned set of litert-samples PR #168 build_nafnet.py. litert-torch cannot
    convert ``torch.nonzero``, so only an edit makes one."""
    ed = Editor(convert(m.probe(lambda y: y * y)))
    k = ed.find("MUL")
    y = ed.graph.operators[k].inputs[0]
    coords = ed.tensor("where_coords", (1, 4), np.int64, signature=(-1, 4))
    ed.insert(k, "WHERE", inputs=[y], outputs=[coords], options=options("WhereOptionsT"))
    return ed.to_bytes()


@fixture("RFFT2D", "RFFT2D", edited=True, no_control="a DFT as a convolution with a cos/sin basis needs a SQRT for "
         "the magnitude, an unproven op")  # fmt: skip
def rfft2d():
    """A 2-D real FFT magnitude over the last two axes (RFFT2D + COMPLEX_ABS) in place of a channel SLICE of the
    same shape: in the banned set of litert-samples PR #168 build_nafnet.py. litert-torch has no lowering for
    ``torch.fft.rfft2`` ('Only 1D FFT on the last dimension'), so only an edit makes one."""
    ed = Editor(convert(m.probe(lambda y: y[:, :3], head_in=3)))
    k = ed.find("SLICE")
    x = ed.graph.operators[k].inputs[0]
    (out,) = ed.graph.operators[k].outputs
    n, h, w, c = ed.shape(x)
    if ed.shape(out) != (n, h, w, c // 2 + 1):
        raise AssertionError(f"the slice must keep {c // 2 + 1} of {c} channels")
    spectrum = ed.tensor("rfft2d_spectrum", ed.shape(out), np.complex64)
    length = ed.const("rfft2d_length", np.array([w, c], np.int32))
    ed.set_op(k, "RFFT2D", inputs=[x, length], outputs=[spectrum], options=options("Rfft2dOptionsT"))
    ed.insert(k + 1, "COMPLEX_ABS", inputs=[spectrum], outputs=[out])
    return ed.to_bytes()


# ================================================================================================ table B: forms
@fixture("RANK_ABOVE_4", "RESHAPE", control="shuffle_conv", same_function=True)
def rank_above_4():
    """A channel shuffle through a rank-5 reshape (einops-style head split; old PixelShuffle lowerings): rejected at
    compile time on a Pixel 8a (litert-samples PR #212 EDSR README; PR #226 dia2 README; toolkit README)."""
    return convert(m.probe(lambda y: y.reshape(1, 2, 2, *m.SIZE).transpose(1, 2).reshape(1, m.CHANNELS, *m.SIZE)))


@control("CONV_2D")
def shuffle_conv():
    """The same shuffle as a 1x1 CONV_2D with its permutation matrix (rank 4 throughout)."""
    return convert(m.probe(lambda y, conv: conv(y), conv=m.permutation_conv([0, 2, 1, 3])))


@fixture("DIV_SAME_INPUTS", "DIV", control="div_different")
def div_same_inputs():
    """``z / z`` (DIV with the same tensor twice; a softmax over a length-1 axis comes out so): 'No support of few
    identical inputs', graph split in 3 partitions on a Pixel 8a (google-ai-edge/LiteRT#9192)."""

    def ratio(y):
        z = y * y + 1
        return z / z

    return convert(m.probe(ratio))


@control("DIV", allow_unproven=True)
def div_different():
    """DIV of two different runtime tensors, ``z / (z + 1)``: the rule is about identical inputs, not DIV (DIV
    itself is unproven on phones, hence --allow-unproven)."""

    def ratio(y):
        z = y * y + 1
        return z / (z + 1)

    return convert(m.probe(ratio))


@fixture("REDUCE_MAX_CONST_INPUTS", "REDUCE_MAX", control="folded_max", same_function=True)
def reduce_max_const_inputs():
    """``y + amax_c(bank)`` where ``bank`` is a constant: litert-torch keeps the REDUCE_MAX of two constant inputs
    (data and axes) instead of folding it, and LITERT_CL declines it (google-ai-edge/LiteRT#9192, Pixel 8a,
    2.1.6)."""
    bank = torch.from_numpy(m.BANK)
    return convert(m.probe(lambda y: y + bank.amax(1, keepdim=True)))


@control("ADD")
def folded_max():
    """The same with the constant's max computed at build time (what LiteRT#9192's advice amounts to)."""
    folded = torch.from_numpy(m.BANK.max(axis=1, keepdims=True))
    return convert(m.probe(lambda y: y + folded))


@fixture("MEAN_MULTI_AXIS", "MEAN", control="two_means", same_function=True)
def mean_multi_axis():
    """Channel attention with ``y.mean((2, 3))`` (AdaptiveAvgPool2d(1), one MEAN over H and W): mis-computed or
    overflows on a Pixel 8a (litert-samples PR #168 build_nafnet.py; PR #169 build_lraspp.py)."""
    return convert(m.probe(lambda y: y * y.mean((2, 3), keepdim=True)))


@control("MEAN")
def two_means():
    """The same with two single-axis MEANs, W then H (NAFNet's export, PR #168)."""
    return convert(m.probe(lambda y: y * y.mean(3, keepdim=True).mean(2, keepdim=True)))


@fixture("RESIZE_NEAREST_OFF_GRID", "RESIZE_NEAREST_NEIGHBOR", control="zero_stuff")
def resize_nearest_off_grid():
    """Nearest 2x upsampling read at the odd columns ("nearest-upsample + mask at the in-block offset"): exact on
    desktop, corr 0.57 on a Pixel 8a (litert-samples PR #167 compiled_model_api/metric_depth/README.md)."""
    odd = m.column_parity(m.SIZE[1], odd=True)
    return convert(m.probe(lambda y: F.interpolate(y, scale_factor=2, mode="nearest") * odd, down=True))


@fixture("RESIZE_BILINEAR_ALIGN_HALF_PIXEL", "RESIZE_BILINEAR", control="bilinear_half_pixel", edited=True)
def resize_bilinear_align_half_pixel():
    """Bilinear 2x upsampling (``align_corners=True``) with ``half_pixel_centers`` also set in the flatbuffer (torch
    never sets both): the GPU delegate bans the pair (toolkit patch_interpolate; TF lite/tools/versioning
    gpu_compatibility.cc)."""
    ed = Editor(convert(m.probe(lambda y: F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True),
                                down=True)))  # fmt: skip
    k = ed.find("RESIZE_BILINEAR")
    opts = ed.graph.operators[k].builtinOptions
    if not opts.alignCorners:
        raise AssertionError("torch's align_corners=True must reach the flatbuffer")
    opts.halfPixelCenters = True
    return ed.to_bytes()


@control("RESIZE_BILINEAR")
def bilinear_half_pixel():
    """Bilinear 2x with ``align_corners=False`` (half-pixel centres): line detector 99/99 LITERT_CL on a Pixel 8a
    (litert-samples PR #173)."""
    return convert(m.probe(lambda y: F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False),
                           down=True))  # fmt: skip


@fixture("OUTPUT_ADD_CONSUMED", "ADD", control="sub_output", same_function=True, outputs=("restored", "aux"))
def output_add_consumed():
    """Two outputs (NHWC): ``out = x + conv(x)`` (an ADD of two runtime tensors) is a graph output and also the input
    of the conv that makes the second output. LITERT_CL returns an operand in place of the sum (litert-samples
    skills/gpu-clean-conversion, google-ai-edge/LiteRT#8599)."""
    return _two_outputs(negate=False)


@control("SUB", may_fail=("io",), outputs=("restored", "aux"))
def sub_output():
    """The same two outputs with ``out = x - conv'(x)`` (conv' = -conv): the skill reports SUB exact in this
    pattern. Two outputs fail the audit's one-image io contract, and only that."""
    return _two_outputs(negate=True)


def _two_outputs(negate: bool) -> bytes:
    import litert_torch

    class TwoOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branch = m.seeded_conv(3, 3, seed=5)
            self.aux = m.seeded_conv(3, 3, seed=6)
            if negate:
                with torch.no_grad():
                    self.branch.weight.neg_()
                    self.branch.bias.neg_()

        def forward(self, image):  # NHWC in and out: no layout TRANSPOSE between the ADD and the graph output
            x = image.permute(0, 3, 1, 2)
            out = x - self.branch(x) if negate else x + self.branch(x)
            return {"restored": out.permute(0, 2, 3, 1), "aux": self.aux(out).permute(0, 2, 3, 1)}

    sample = torch.rand(1, *m.SIZE, 3, generator=torch.Generator().manual_seed(0))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
        edge = litert_torch.convert(TwoOutputs().eval(), sample_args=(), sample_kwargs={"image": sample})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.tflite"
            edge.export(str(path))
            return path.read_bytes()


# ================================================================================================ fp16 (a run shows it)
@fixture("FP16_REDUCTION_OVERFLOW", "RSQRT", control="scaled_layernorm", caught_by="gpu_fp16", same_function=True)
def fp16_reduction_overflow():
    """A channel LayerNorm at trained magnitudes (channel deviations ~175, as trained GoPro-w32's bottleneck) with
    its statistics on ``x`` itself: every op is phone-proven, and on fp16 kernels ``sum_c (x - mu)^2`` passes 65504.
    Full residency, wrong numbers (NAFNet residual corr 0.016: litert-samples PR #168 READMEs; PR #219
    dehazeformer README; skills/gpu-clean-conversion)."""
    return convert(m.layernorm_probe(m.StraightLayerNorm()))


@control("RSQRT")
def scaled_layernorm():
    """The project's fp16-safe LayerNorm (:class:`ScaledLayerNorm2d`: statistics on ``x / 32``, never scaled back),
    the form the exporter emits (and the toolkit's patch_safe_layernorm)."""
    return convert(m.layernorm_probe(m.scaled_layernorm()))


def build_all(folder: str | Path, names=None) -> dict[str, Path]:
    """Build every fixture and control (or ``names``) into ``folder``: {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, case in {**FIXTURES, **CONTROLS}.items():
        if names is not None and name not in names:
            continue
        path = folder / f"{name}.tflite"
        path.write_bytes(case.build())
        out[name] = path
    return out


__all__ = ["CONTROLS", "FIXTURES", "Case", "build_all"]
