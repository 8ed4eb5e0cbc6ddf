"""Measure the README's "device failures" table: our audit and Google's host GPU checker on every fixture.

    PYTHONPATH=src python scripts/toolkit_column.py --samples-git PATH/litert-samples.git \\
        [--out docs/device_failures_toolkit.json]

``--samples-git`` is a git directory of google-ai-edge/litert-samples (a bare clone or a ``.git``). The script:

1. builds every fixture and control of ``tests/device_failures`` into a temporary folder;
2. exports ``utilities/litert_gpu_toolkit`` from that git directory (``git archive``) into a throwaway folder under
   the system's temporary directory, outside this repository, and deletes it at the end: its code is run, never
   copied here;
3. runs, for each file in its own process, ``check_gpu_compatibility(path)`` as the toolkit's README documents it
   (random inputs, the GPU accelerator alone and then GPU|CPU, outputs against CPU at rtol/atol 1e-2), on the Vulkan
   device this project's GPU checks pick (``VK_ICD_FILENAMES``; Mesa 25 lavapipe here, real fp16 kernels);
4. runs ``nafnet-litert audit`` on the same file (static; fp16 fixtures also ``--image chelsea.png --gpu --fp16``);
5. writes both results as JSON and prints the README table.

The toolkit "catches" a fixture when ``compatible`` is False. A GPU-only compile failure that compiles with CPU
fallback is ``compatible`` True with a warning: the checker's own definition, recorded as is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLKIT = "utilities/litert_gpu_toolkit"

#: Runs in a child process: the toolkit's checker on one file, its result written as JSON.
_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from litert_gpu_toolkit import check_gpu_compatibility
result = check_gpu_compatibility(sys.argv[2])
open(sys.argv[3], "w").write(json.dumps(result, default=str))
"""


def export_toolkit(samples_git: Path, dest: Path) -> str:
    """``git archive`` the toolkit folder of litert-samples' HEAD into ``dest``; returns the commit."""
    git = ["git", f"--git-dir={samples_git}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run([*git, "archive", "--format=tar", commit, TOOLKIT], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return commit


def run_toolkit(parent: Path, model: Path, vk_icd: str | None, timeout: int) -> dict:
    env = dict(os.environ)
    if vk_icd:
        env["VK_ICD_FILENAMES"] = vk_icd
    with tempfile.TemporaryDirectory(prefix="toolkit-result-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            r = subprocess.run([sys.executable, "-c", _CHILD, str(parent), str(model), str(out)], env=env,
                               capture_output=True, text=True, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"crashed": f"timed out after {timeout} s"}
        if not out.exists():  # a native abort: keep its fatal line (glog "F...": "Check failed: ...")
            lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            fatal = [ln for ln in lines if "Check failed" in ln or ln.startswith(("F0", "Fatal"))] or lines[-3:]
            return {"crashed": f"exit {r.returncode}", "message": " | ".join(fatal)[:300]}
        return json.loads(out.read_text())


def toolkit_verdict(r: dict) -> tuple[bool | None, str]:
    """(caught, what the checker said) for one result; caught is None when the checker crashed (no verdict)."""
    if "crashed" in r:
        msg = r.get("message", "")
        where = msg[msg.find("]") + 1 :].strip() if "]" in msg else msg
        return None, f"no verdict: the process aborted ({r['crashed']}; {where or 'no message'})"
    if r["compatible"]:
        if r["gpu_cpu_fallback"]:
            return False, "passes, with CPU fallback (a warning)"
        return False, f"passes, fully on GPU (max diff vs CPU {r['max_abs_diff']:.1e})"
    if not r["gpu_compile_ok"]:
        return True, "fails: GPU compile"
    if r["numerics_ok"] is False:
        return True, f"fails: outputs diverge from CPU (max diff {r['max_abs_diff']:.2g})"
    return True, "fails: " + "; ".join(r["errors"])[:120]


def run_audit(model: Path, extra: list[str]) -> dict:
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "audit", str(model), "--json", *extra],
                       capture_output=True, text=True)  # fmt: skip
    report = json.loads(r.stdout) if r.stdout.strip() else {}
    checks = report.get("checks", {})
    rules = sorted(
        [*checks.get("ops", {}).get("rejected", {}), *checks.get("forms", {}).get("rejected", {})]
        + [c["rule"]["name"] for c in checks.values() if isinstance(c, dict) and c.get("rule")]
    )
    failed = sorted(k for k, c in checks.items() if not c.get("passed"))
    return {"exit": r.returncode, "rules": rules, "failed_checks": failed, "flags": extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples-git", type=Path, help="git directory of google-ai-edge/litert-samples")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "device_failures_toolkit.json")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per toolkit check")
    ap.add_argument("--table", type=Path, help="print the README table from a JSON this script wrote, and exit")
    args = ap.parse_args()
    if args.table:
        sys.path.insert(0, str(ROOT))
        print(markdown(json.loads(args.table.read_text())))
        return 0

    if not args.samples_git:
        ap.error("--samples-git is required (a git directory of google-ai-edge/litert-samples)")
    sys.path.insert(0, str(ROOT))
    import skimage

    from nafnet_litert.litert import ensure_vulkan_icd
    from nafnet_litert.litert.convert import library_versions
    from tests.device_failures import CONTROLS, FIXTURES, build_all

    setup = ensure_vulkan_icd()
    photo = Path(skimage.__file__).parent / "data" / "chelsea.png"
    throwaway = Path(tempfile.mkdtemp(prefix="litert-samples-toolkit-"))
    if ROOT in throwaway.resolve().parents:
        raise SystemExit(f"the toolkit copy must live outside the repository, not in {throwaway}")
    rows = {}
    try:
        commit = export_toolkit(args.samples_git, throwaway)
        parent = throwaway / "utilities"
        models = build_all(throwaway / "fixtures")
        for name, path in models.items():
            case = FIXTURES.get(name) or CONTROLS[name]
            t0 = time.perf_counter()
            tk = run_toolkit(parent, path, setup.icd, args.timeout)
            caught, said = toolkit_verdict(tk)
            extra = ["--image", str(photo), "--gpu", "--fp16"] if case.caught_by == "gpu_fp16" else []
            if case.rule is None and case.allow_unproven:
                extra.append("--allow-unproven")
            ours = run_audit(path, extra)
            rows[name] = {
                "rule": case.rule, "control": case.control if case.rule else None, "edited": case.edited,
                "ours": ours, "toolkit": {"caught": caught, "verdict": said, "result": tk},
                "seconds": round(time.perf_counter() - t0, 1),
            }  # fmt: skip
            print(f"{name:34s} ours: exit {ours['exit']} {','.join(ours['rules']) or '-':34s} toolkit: {said}",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(throwaway, ignore_errors=True)
    record = {
        "litert_samples_commit": commit,
        "toolkit": TOOLKIT + "/checker.py check_gpu_compatibility (defaults: rtol = atol = 1e-2, seed 0)",
        "vulkan": {"kind": setup.kind, "icd": setup.icd},
        "versions": library_versions(),
        "command": "PYTHONPATH=src python scripts/toolkit_column.py --samples-git <litert-samples git dir>",
        "files": rows,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.out}\n")
    print(markdown(record))
    return 0


def markdown(record: dict) -> str:
    from nafnet_litert.litert import device_ops

    lines = ["| rule (fixture) | source | our audit | toolkit host check | control |", "|---|---|---|---|---|"]
    for name, row in record["files"].items():
        if not row["rule"]:
            continue
        ours = row["ours"]
        how = "GPU fp16 + `--fp16`" if "--gpu" in ours["flags"] else "static"
        caught = ours["exit"] == 1 and row["rule"] in ours["rules"]
        control = record["files"].get(row["control"]) if row["control"] else None
        ctrl = "—"
        if control:
            c = control["ours"]
            if c["exit"] == 0:
                verdict = "passes" + (" with `--allow-unproven`" if "--allow-unproven" in c["flags"] else "")
            elif not c["rules"] and c["failed_checks"] == ["io"]:
                verdict = "passes all but `io` (two outputs)"
            else:
                verdict = "FAILS"
            ctrl = f"`{row['control']}`: {verdict}"
        tk_caught, said = toolkit_verdict(row["toolkit"]["result"])
        lines.append(
            f"| `{row['rule']}` (`{name}`{', edited' if row['edited'] else ''}) | "
            f"{device_ops.rules()[row['rule']].source} | {'caught, ' + how if caught else 'MISSED'} | "
            f"{said if tk_caught is None else ('caught: ' if tk_caught else 'missed: ') + said} | {ctrl} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
