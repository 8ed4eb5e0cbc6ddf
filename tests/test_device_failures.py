"""Every documented phone-GPU failure (``shared/DEVICE_OPS.md`` table B, and every other rule of
:mod:`nafnet_litert.litert.device_ops`) is caught by the audit on the file alone, and its proven form passes.

The fixtures and controls live in :mod:`tests.device_failures`; they are converted once per session (~1 s each).
Each fixture must fail ``nafnet-litert audit`` with exit 1 naming its rule and the rule's source, and no other rule;
each control must pass (with ``--allow-unproven`` where its form uses an op no published phone graph has). Where a
fixture and its control compute the same function, their CPU outputs must agree: the control is a rewrite, not a
different network that happens to pass.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nafnet_litert.cli import main
from nafnet_litert.litert import device_ops
from nafnet_litert.litert.graph import read_graph

from tests.conftest import skimage_photo
from tests.device_failures import CONTROLS, FIXTURES, build_all

STATIC = [n for n, c in FIXTURES.items() if c.caught_by == "static"]
NUMERIC = [n for n, c in FIXTURES.items() if c.caught_by == "gpu_fp16"]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """Every fixture and control, converted once: {name: path}."""
    return build_all(tmp_path_factory.mktemp("device-failures"))


def _audit_json(capsys, *args) -> tuple[int, dict]:
    code = main(["audit", *map(str, args), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _rules_fired(report: dict) -> dict[str, str]:
    """{rule: source} for every rule a JSON audit report names (rejected ops and forms, rank, fp16)."""
    checks = report["checks"]
    fired = {op: v["source"] for op, v in checks["ops"]["rejected"].items()}
    fired.update({f: v["source"] for f, v in checks["forms"]["rejected"].items()})
    for name in ("rank", "gpu_fp16", "fp16_headroom"):
        rule = checks.get(name, {}).get("rule")
        if rule:
            fired[rule["name"]] = rule["source"]
    return fired


# ------------------------------------------------------------------------------------------------ coverage
def test_every_rule_has_a_fixture_and_every_fixture_a_rule():
    """A new rule cannot land in device_ops without a fixture here (and a fixture cannot test a rule that is gone)."""
    rules = set(device_ops.REJECTED) | set(device_ops.FORM_REJECTIONS) | set(device_ops.NUMERIC_REJECTIONS)
    assert rules == set(device_ops.rules())
    covered = {c.rule for c in FIXTURES.values()}
    assert rules - covered == set(), f"rules without a fixture: {sorted(rules - covered)}"
    assert covered - rules == set(), f"fixtures for unknown rules: {sorted(covered - rules)}"
    assert len(covered) == len(FIXTURES)  # one fixture per rule


def test_every_rejected_op_is_a_tflite_op():
    """An entry that is no TFLite builtin could never match a graph (read_graph names ops by builtin code)."""
    from ai_edge_litert import schema_py_generated as schema

    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    assert set(device_ops.REJECTED) <= builtins, set(device_ops.REJECTED) - builtins
    assert not set(device_ops.rules()) & set(device_ops.PROVEN)


def test_every_fixture_names_its_source_and_has_a_control_or_says_why_not():
    citation = r"#\d+|\w+\.(?:py|md|cc)\b|patch_\w+"  # issue/PR numbers, files, toolkit patches
    for name, case in FIXTURES.items():
        rule = device_ops.rules()[case.rule]
        cited = set(re.findall(citation, rule.source))
        assert case.doc and cited, name
        assert cited & set(re.findall(citation, case.doc)), f"{name}: its docstring cites none of {sorted(cited)}"
        if case.control is None:
            assert case.no_control, name
        else:
            assert case.control in CONTROLS, (name, case.control)
    for name, case in CONTROLS.items():
        assert case.doc and case.rule is None, name
    used = {c.control for c in FIXTURES.values()}
    assert set(CONTROLS) <= used, f"controls no fixture uses: {sorted(set(CONTROLS) - used)}"


def test_explain_gives_reason_source_and_the_proven_form(capsys):
    for rule, r in device_ops.rules().items():
        assert r.reason and r.source and r.instead, rule
        text = device_ops.explain(rule.lower())
        assert text.startswith(rule) and r.reason in text and r.source in text and r.instead in text
    assert main(["audit", "--explain", "output_add_consumed"]) == 0
    out = capsys.readouterr().out
    assert "LiteRT#8599" in out and "instead" in out and "SUB" in out


def test_explain_an_unknown_rule_is_one_line_listing_the_rules():
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "audit", "--explain", "SPLITT"],
                       capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "unknown rule 'SPLITT'" in lines[0] and all(rule in lines[0] for rule in device_ops.rules())
    assert r.stdout == ""


# ------------------------------------------------------------------------------------------------ the files
@pytest.mark.slow
@pytest.mark.parametrize("name", [*FIXTURES, *CONTROLS])
def test_the_op_under_test_is_in_the_converted_graph(built, name):
    """A conversion that folded, fused or renamed the op would make the audit's verdict meaningless."""
    case = FIXTURES.get(name) or CONTROLS[name]
    g = read_graph(built[name])
    assert case.op in g.op_histogram(), (name, g.op_histogram())
    if case.rule in device_ops.REJECTED:
        assert case.op == case.rule
    assert len(g.outputs) == len(case.outputs), (name, g.io())


@pytest.mark.slow
@pytest.mark.parametrize("name", STATIC)
def test_the_audit_fails_each_fixture_naming_its_rule_and_source(built, name, capsys):
    case = FIXTURES[name]
    code, report = _audit_json(capsys, built[name])
    assert code == 1 and report["passed"] is False
    fired = _rules_fired(report)
    assert fired == {case.rule: device_ops.rules()[case.rule].source}, fired  # its rule, and no other
    failing = {k for k, c in report["checks"].items() if not c["passed"]}
    assert failing <= {"ops", "forms", "rank", "io"}
    if len(case.outputs) == 1:  # a two-output fixture fails the one-image io contract too
        assert report["checks"]["io"]["passed"], report["checks"]["io"]
    assert main(["audit", str(built[name])]) == 1
    text = capsys.readouterr().out
    assert case.rule in text and device_ops.rules()[case.rule].source in text and "verdict       FAIL" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONTROLS))
def test_each_control_passes(built, name, capsys):
    case = CONTROLS[name]
    flags = ["--allow-unproven"] if case.allow_unproven else []
    code, report = _audit_json(capsys, built[name], *flags)
    assert _rules_fired(report) == {}, _rules_fired(report)
    failing = {k for k, c in report["checks"].items() if not c["passed"]}
    assert failing == set(case.may_fail), {k: report["checks"][k] for k in failing}
    assert code == (1 if case.may_fail else 0)
    if case.allow_unproven:  # the flag is needed, and only for ops no published phone graph has
        code, report = _audit_json(capsys, built[name])
        assert code == 1 and report["checks"]["ops"]["unproven"] and _rules_fired(report) == {}


def _run_cpu(path, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    return {k: np.asarray(v) for k, v in runner(**x).items()}


def _random_inputs(path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path)).get_signature_runner().get_input_details()
    return {k: np.random.default_rng(0).random(d["shape"], np.float32) for k, d in sig.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", [*FIXTURES, *CONTROLS])
def test_every_file_runs_on_the_cpu(built, name):
    """Edited files too: each is a valid model (so the host checker measures the op, not a broken file)."""
    case = FIXTURES.get(name) or CONTROLS[name]
    out = _run_cpu(built[name], _random_inputs(built[name]))
    assert len(out) == len(case.outputs)
    assert all(np.isfinite(v).all() for v in out.values()), name


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, c in FIXTURES.items() if c.same_function])
def test_fixture_and_control_compute_the_same_function(built, name):
    """Each control is the fixture's computation in the proven form (LiteRT CPU on a random input, both files)."""
    case = FIXTURES[name]
    x = _random_inputs(built[name])
    a, b = _run_cpu(built[name], x), _run_cpu(built[case.control], x)
    assert a.keys() == b.keys() and len(a) == len(case.outputs)
    for key in a:
        assert np.isfinite(a[key]).all() and a[key].std() > 0, key
        assert np.abs(a[key] - b[key]).max() <= 1e-4 * max(1.0, np.abs(a[key]).max()), (name, key)


@pytest.mark.slow
def test_the_rank_rule_names_itself_only_when_it_fails(built):
    from nafnet_litert.litert.static_audit import RANK_RULE, static_audit

    check = static_audit(built["shuffle_conv"]).rank_check()
    assert check.passed and "rule" not in check.data
    check = static_audit(built["rank_above_4"]).rank_check()
    assert not check.passed and check.data["rule"]["name"] == RANK_RULE and check.data["max_rank"] == 5


# ------------------------------------------------------------------------------------------------ fp16 (GPU)
@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERIC)
def test_fp16_fixture_is_caught_by_the_gpu_and_fp16_checks_and_its_control_passes(built, name, fp16_vulkan, capsys):
    """Every op phone-proven and every static check passes; only fp16 shows it. ``audit --gpu --fp16`` (no
    --reference: the GPU is judged against the file's own CPU run) fails it in both fp16 checks, naming the rule."""
    case = FIXTURES[name]
    photo = skimage_photo("chelsea.png")
    code, report = _audit_json(capsys, built[name], "--image", photo, "--gpu", "--fp16")
    checks = report["checks"]
    assert code == 1
    assert all(checks[k]["passed"] for k in ("ops", "forms", "rank", "io", "gpu_fp32")), checks
    g16, head = checks["gpu_fp16"], checks["fp16_headroom"]
    assert not g16["passed"] and g16["fully_accelerated"] and g16["fp16_exercised"] and g16["truth"] == "its CPU run"
    assert g16["images"][0]["vs_reference"]["max_abs"] > 100 * g16["thresholds"]["max_abs"]  # far off, not rounding
    assert not head["passed"] and head["weights"]["overflow_count"] >= 1
    source = device_ops.NUMERIC_REJECTIONS[case.rule].source
    assert _rules_fired(report) == {case.rule: source}
    code, report = _audit_json(capsys, built[case.control], "--image", photo, "--gpu", "--fp16")
    assert code == 0 and report["passed"] and _rules_fired(report) == {}, report["checks"]
    assert report["checks"]["gpu_fp16"]["fp16_exercised"] is True


@pytest.mark.slow
def test_cli_exit_code_and_text_in_a_real_process(built):
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "audit", str(built["split"])],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1, r.stderr[-2000:]
    assert "SPLIT x1 (rejected on phones" in r.stdout and "tensorflow/tensorflow#56328" in r.stdout
