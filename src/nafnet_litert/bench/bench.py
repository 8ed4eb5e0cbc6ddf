"""Benchmark (not a test). Every figure comes from one run on one machine; ratios are the result.

    nafnet-litert bench [CKPT|default|random:GoPro-width32] [--size 256] [--runs 7] [--threads 1,2] [--json out.json]
    python -m nafnet_litert.cli bench ...   (the same)

Backends: PyTorch eager (reference and deploy), ONNX Runtime CPU (each ONNX graph of the network the benchmark can
make: ours, our deploy rewrite, spandrel's; same thread count), LiteRT XNNPACK fp32, fp16 and int8 weights; optionally (``--frame``) a 1280x720 frame tiled with the 256 model and
full-frame with TLC. Each backend is measured in a fresh process (spawned) so that its peak RSS is its own:
median of ``--runs`` timed runs after warm-up. The machine's fp32 GEMM speed is measured in the same run (a large
sgemm with the same thread count) and turned into the compute floor for the model's MACs at that size.

``--profile`` adds LiteRT's own per-op profile of the fp32 model at each thread count (:mod:`..litert.profile`):
time share by op type, by XNNPACK kernel and by NAFNet stage, and the convolutions' achieved GFLOP/s.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's peak across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def count_macs(net, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of every convolution for one input of ``shape`` (what the GEMM floor is for)."""
    import torch

    total = 0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.weight[0].numel()  # in/groups * kh * kw
        total += out.numel() * k

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(torch.zeros(shape))
    for h in hs:
        h.remove()
    return total


def gemm_gflops(threads: int, n: int = 2048, runs: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate with ``threads`` torch threads (restored afterwards)."""
    import torch

    from ..threads import torch_threads

    with torch_threads(threads):
        a, b = torch.rand(n, n), torch.rand(n, n)
        ms = _median_ms(lambda: torch.mm(a, b), runs)
    return 2 * n**3 / (ms / 1e3) / 1e9


# ------------------------------------------------------------------ workers (each runs in a fresh process)
def _work(job: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    kind, n, runs = job["kind"], job["threads"], job["runs"]
    h, w = job["size"]
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    if kind.startswith("torch"):
        import torch

        from ..models.checkpoint import resolve_checkpoint
        from ..models.deploy import to_deploy

        torch.set_num_threads(n)
        net = resolve_checkpoint(job["model"]).build_reference()
        net = to_deploy(net) if kind == "torch-deploy" else net
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            ms = _median_ms(lambda: net(xt), runs)
    elif kind == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(job["path"], so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        ms = _median_ms(lambda: sess.run(None, {name: x}), runs)
    elif kind == "litert":
        from ..litert import LiteRTModel

        m = LiteRTModel(job["path"], "cpu", n)
        ms = _median_ms(lambda: m.run(x), runs)
    elif kind == "frame-tiled":
        from ..restore import Restorer

        with Restorer(job["path"], threads=n) as restorer:
            img = x[0].transpose(1, 2, 0)
            ms = _median_ms(lambda: restorer.restore(img), runs, warmup=1)
    elif kind == "frame-tlc":
        from ..litert import LiteRTModel

        m = LiteRTModel(job["path"], "cpu", n)
        ms = _median_ms(lambda: m.run(x), runs, warmup=1)
    else:  # pragma: no cover
        raise ValueError(kind)
    return {"ms": ms, "peak_rss_mb": _peak_rss_mb()}


def _export_onnx(net, size: tuple[int, int], path: Path) -> None:
    import torch

    x = torch.rand(1, 3, *size)
    net = net.eval()
    with torch.no_grad():
        try:
            torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["restored"], dynamo=False,
                              opset_version=17)  # fmt: skip
        except TypeError:  # pragma: no cover - exporters without the switch
            torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["restored"])


def onnx_graphs(ck, size: tuple[int, int], folder: Path) -> dict[str, Path]:
    """Every ONNX graph of the same network a fair comparison needs, so ONNX Runtime is judged by its best: our
    reference module, our deploy graph (the LiteRT rewrites), and spandrel's NAFNet (what other projects export)
    when spandrel is installed."""
    from ..models.deploy import to_deploy

    reference = ck.build_reference()
    graphs = {"reference": reference, "deploy": to_deploy(reference)}  # to_deploy copies: the reference is untouched
    try:
        from .spandrel_graph import spandrel_nafnet

        graphs["spandrel"] = spandrel_nafnet(ck.config, dict(ck.state_dict))
    except Exception:  # noqa: BLE001 - spandrel is optional (and an old one may not know NAFNet)
        pass
    out = {}
    for name, net in graphs.items():
        out[name] = folder / f"model_{name}.onnx"
        _export_onnx(net, size, out[name])
    return out


def run_bench(spec: str, size=(256, 256), runs: int = 7, threads=(1, 2), frame: bool = False, profile: bool = False,
              log=print) -> dict:  # fmt: skip
    from ..models.checkpoint import resolve_checkpoint
    from ..litert.convert import check_size, export, parse_size

    from ..errors import NafnetLitertError

    h, w = parse_size(size)
    ck = resolve_checkpoint(spec)
    check_size((h, w), ck.config.sizes)  # before any work: the size is one this network takes
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NafnetLitertError("bench compares against ONNX Runtime: pip install 'nafnet-litert[bench]'") from None
    ctx = mp.get_context("spawn")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        log("exporting models (ONNX graphs, LiteRT fp32/fp16/int8)...")
        onnx_paths = onnx_graphs(ck, (h, w), Path(tmp))
        lite = {p: str(export(ck, Path(tmp) / f"m_{p}.tflite", (h, w), p).model_path) for p in ("fp32", "fp16", "int8")}
        jobs = []
        for n in threads:
            base = {"threads": n, "runs": runs, "size": (h, w), "model": spec}
            jobs += [
                {**base, "kind": "torch-reference", "label": "PyTorch eager (reference)"},
                {**base, "kind": "torch-deploy", "label": "PyTorch eager (deploy)"},
                *[
                    {**base, "kind": "onnxruntime", "label": f"ONNX Runtime CPU ({g} graph)", "path": str(p)}
                    for g, p in onnx_paths.items()
                ],
                {**base, "kind": "litert", "label": "LiteRT XNNPACK fp32", "path": lite["fp32"]},
                {**base, "kind": "litert", "label": "LiteRT XNNPACK fp16", "path": lite["fp16"]},
                {**base, "kind": "litert", "label": "LiteRT XNNPACK int8 weights", "path": lite["int8"]},
            ]
        if frame:
            log("exporting the full-frame TLC model (720x1280)...")
            tlc = str(export(ck, Path(tmp) / "m_720x1280_tlc.tflite", (720, 1280), "fp16", tlc=True).model_path)
            for n in threads:
                base = {"threads": n, "runs": max(3, runs // 2), "size": (720, 1280), "model": spec}
                jobs += [
                    {**base, "kind": "frame-tiled", "label": "1280x720 tiled 256 fp16 (LiteRT)", "path": lite["fp16"]},
                    {**base, "kind": "frame-tlc", "label": "1280x720 full-frame TLC fp16 (LiteRT)", "path": tlc},
                ]
        for job in jobs:
            with ctx.Pool(1) as pool:
                res = pool.apply(_work, (job,))
            rows.append({"backend": job["label"], "threads": job["threads"], "size": f"{job['size'][0]}x{job['size'][1]}", **res})
            log(f"  {job['label']:40s} {job['threads']} thr  {res['ms']:9.1f} ms  peak RSS {res['peak_rss_mb']:.0f} MB")
        profiles = []
        if profile:
            for n in threads:
                log(f"profiling LiteRT fp32 at {n} thread(s)...")
                with ctx.Pool(1) as pool:
                    profiles.append(pool.apply(_profile_work, ({"path": lite["fp32"], "threads": n, "runs": runs},)))
    macs = count_macs(ck.build_reference(), (1, 3, h, w))
    floors = {}
    for n in threads:
        g = gemm_gflops(n)
        floors[n] = {"gemm_gflops": g, "floor_ms": 2 * macs / (g * 1e9) * 1e3}
    for r in rows:
        if r["size"] != f"{h}x{w}":
            continue
        n = r["threads"]
        same = [b for b in rows if b["threads"] == n and b["size"] == r["size"]]
        r["vs_torch_reference"] = r["ms"] / next(b["ms"] for b in same if b["backend"].endswith("(reference)"))
        r["vs_onnxruntime"] = r["ms"] / min(b["ms"] for b in same if b["backend"].startswith("ONNX Runtime"))
        r["vs_gemm_floor"] = r["ms"] / floors[n]["floor_ms"]
    return {"model": ck.config.describe(), "size": f"{h}x{w}", "macs": macs, "floors": floors, "rows": rows,
            "machine": cpu_name(), "runs": runs, "profiles": profiles}  # fmt: skip


def format_table(res: dict) -> str:
    out = [f"{res['model']} at {res['size']} ({res['macs'] / 1e9:.2f} GMAC), median of {res['runs']} runs; {res['machine']}"]
    for n, f in res["floors"].items():
        out.append(f"  {n} thread(s): sgemm {f['gemm_gflops']:.0f} GFLOP/s -> compute floor {f['floor_ms']:.1f} ms")
    out.append(f"{'backend':40s} {'thr':>3s} {'median ms':>10s} {'peak RSS MB':>11s} {'x torch':>8s} {'x ORT':>6s} {'x floor':>8s}"
               "   (x ORT: against the fastest ONNX Runtime graph at the same threads)")  # fmt: skip
    for r in res["rows"]:
        ratios = (
            f"{r['vs_torch_reference']:>8.2f} {r['vs_onnxruntime']:>6.2f} {r['vs_gemm_floor']:>8.2f}"
            if "vs_gemm_floor" in r else f"{'':>8s} {'':>6s} {'':>8s}"
        )  # fmt: skip
        out.append(f"{r['backend']:40s} {r['threads']:>3d} {r['ms']:>10.1f} {r['peak_rss_mb']:>11.0f} {ratios}")
    for p in res.get("profiles", []):
        out.append("")
        out.append(format_profile(p, res["floors"].get(p["threads"], {}).get("gemm_gflops")))
    return "\n".join(out)


# ------------------------------------------------------------------ per-op profile (bench --profile)
def node_stages(graph) -> list[str]:
    """The NAFNet stage of every graph node: ``encoder Lk`` / ``middle`` / ``decoder Lk``, where ``k`` is the
    level of its largest activation (input size / 2**k) and the side is whether it runs before or after the middle
    blocks (named ``middle_blks`` in the exported file). Pooled 1x1 nodes (the channel attention) take the stage
    of the node before them."""
    shape = graph.tensors[graph.inputs[0]].shape
    nchw = shape[1] in (1, 3) and shape[3] not in (1, 3)
    h0 = max(shape[2:4]) if nchw else max(shape[1:3])
    middle = [i for i, op in enumerate(graph.ops) if any("middle_blks" in graph.tensors[o].name for o in op.outputs)]
    first_mid, last_mid = (middle[0], middle[-1]) if middle else (len(graph.ops), len(graph.ops))
    weights = {o for op in graph.ops if op.name == "DEQUANTIZE" for o in op.outputs}  # fp16/int8 weights
    stages, prev, deepest = [], "encoder L0", 0
    for i, op in enumerate(graph.ops):
        if op.name == "DEQUANTIZE":
            stages.append(prev)
            continue
        if first_mid <= i <= last_mid:
            stages.append(prev := "middle")
            continue
        sizes = [max(graph.tensors[t].shape[1:3]) for t in list(op.inputs) + list(op.outputs)
                 if t >= 0 and not graph.tensors[t].buffer and t not in weights and len(graph.tensors[t].shape) == 4]  # fmt: skip
        big = max(sizes, default=1)
        if big <= 1:
            stages.append(prev)
            continue
        level = max(0, round(np.log2(h0 / big)))
        if i < first_mid:
            deepest = max(deepest, level)
        else:
            level = min(level, deepest)  # the first upsampler's conv still reads the bottleneck
        stages.append(prev := f"{'encoder' if i < first_mid else 'decoder'} L{level}")
    return stages


def node_macs(graph, node: int) -> int:
    """Multiply-accumulates of a CONV_2D / DEPTHWISE_CONV_2D node (0 for others)."""
    op = graph.ops[node]
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return 0
    out = int(np.prod(graph.tensors[op.outputs[0]].shape))
    w = graph.tensors[op.inputs[1]].shape  # [O, kh, kw, I] or [1, kh, kw, C]
    return out * w[1] * w[2] * (w[3] if op.name == "CONV_2D" else 1)


def profile_tables(model_path: str | Path, prof) -> dict:
    """Time share of a :class:`~nafnet_litert.litert.profile.Profile` by op type, by XNNPACK kernel and by stage,
    with the convolutions' achieved GFLOP/s."""
    from ..litert.graph import read_graph

    graph = read_graph(model_path)
    stages = node_stages(graph)
    total = sum(o.us for o in prof.ops)

    def table(key) -> list[dict]:
        acc: dict[str, dict] = {}
        for o in prof.ops:
            r = acc.setdefault(key(o), {"count": 0, "us": 0.0, "macs": 0})
            r["count"] += 1
            r["us"] += o.us
            r["macs"] += node_macs(graph, o.node)
        rows = [{"name": k, "count": v["count"], "ms": v["us"] / 1e3, "share": v["us"] / total,
                 "gflops": 2 * v["macs"] / (v["us"] * 1e3) if v["macs"] and v["us"] else None}
                for k, v in acc.items()]  # fmt: skip
        return sorted(rows, key=lambda r: -r["ms"])

    order = {s: i for i, s in enumerate(dict.fromkeys(stages))}
    by_stage = sorted(table(lambda o: stages[o.node]), key=lambda r: order[r["name"]])
    return {"threads": prof.threads, "wall_ms": prof.wall_ms, "ops_ms": total / 1e3, "partitions": prof.partitions,
            "by_op": table(lambda o: o.op), "by_kernel": table(lambda o: o.kernel), "by_stage": by_stage}  # fmt: skip


def _profile_work(job: dict) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..litert.profile import profile_model

    prof = profile_model(job["path"], job["threads"], runs=job["runs"])
    return profile_tables(job["path"], prof)


def format_profile(p: dict, floor_gflops: float | None = None, top: int = 8) -> str:
    out = [f"LiteRT XNNPACK fp32 profile, {p['threads']} thread(s): ops {p['ops_ms']:.1f} ms of {p['wall_ms']:.1f} ms "
           f"wall ({p['partitions']} XNNPACK partition(s))"]  # fmt: skip
    for title, rows, n in (("op type", p["by_op"], top), ("XNNPACK kernel", p["by_kernel"], top), ("stage", p["by_stage"], 99)):
        out.append(f"  {'by ' + title:40s} {'ops':>5s} {'ms':>8s} {'share':>6s} {'GFLOP/s':>8s}")
        for r in rows[:n]:
            g = f"{r['gflops']:8.0f}" if r["gflops"] else f"{'':8s}"
            out.append(f"    {r['name'][:38]:38s} {r['count']:>5d} {r['ms']:>8.1f} {100 * r['share']:>5.1f}% {g}")
    if floor_gflops:
        conv = [r for r in p["by_op"] if r["name"] == "CONV_2D"]
        if conv and conv[0]["gflops"]:
            out.append(f"  CONV_2D runs at {conv[0]['gflops']:.0f} GFLOP/s = {conv[0]['gflops'] / floor_gflops:.2f}x the "
                       f"sgemm rate ({floor_gflops:.0f} GFLOP/s)")  # fmt: skip
    return "\n".join(out)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
