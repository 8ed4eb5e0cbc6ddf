"""``deblur --ray ADDRESS`` on a real two-node cluster (`ray start --head` plus `ray start --address`, loopback, one
CPU each) with token authentication on: both nodes work, an auth-less client is told the fix, and losing a node
loses no photo."""

from __future__ import annotations

import pytest

from nafnet_litert.cli import main

from .test_cluster import _done, _many

pytest.importorskip("ray")

HEAD_PORT, SECOND_NODE_PORT = 6391, 6395


@pytest.fixture(scope="module")
def token_cluster():
    """`ray start --head` plus a second `ray start --address` on this machine (loopback, one CPU each), with token
    authentication on, as Ray 2.60's `ray start` sets it up by default. Yields the environment a client needs."""
    import os
    import secrets
    import shutil
    import subprocess

    ray_bin = shutil.which("ray")
    if ray_bin is None:
        pytest.skip("no ray command")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    head = [ray_bin, "start", "--head", f"--port={HEAD_PORT}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    second = [ray_bin, "start", f"--address=127.0.0.1:{HEAD_PORT}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              f"--node-manager-port={SECOND_NODE_PORT}", "--disable-usage-stats"]  # fmt: skip
    try:
        subprocess.run(head, check=True, capture_output=True, env=env, timeout=120)
        subprocess.run(second, check=True, capture_output=True, env=env, timeout=120)
        yield env
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120)


def _second_raylet() -> int:
    """The PID of the second node's raylet (the one started with its --node-manager-port)."""
    from pathlib import Path

    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"raylet") and f"--node_manager_port={SECOND_NODE_PORT}".encode() in argv:
            return int(proc.name)
    raise AssertionError("the second node's raylet is not running")


def _cli_on_cluster(src, out, ckpt, env):
    import subprocess
    import sys

    return subprocess.Popen(  # a fresh process: the real CLI, joining the running cluster
        [sys.executable, "-m", "nafnet_litert.cli", "deblur", str(src), "-o", str(out), "--model", str(ckpt),
         "--tile", "32", "--overlap", "8", "--precision", "fp32", "--quiet", "--ray", f"127.0.0.1:{HEAD_PORT}",
         "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_a_client_without_the_token_is_told_to_set_ray_auth_mode(tmp_path, small_checkpoint_file, token_cluster):
    env = {k: v for k, v in token_cluster.items() if not k.startswith("RAY_AUTH")}  # as a new user's shell
    src = tmp_path / "in"
    _many(src, n=1, size=64)
    p = _cli_on_cluster(src, tmp_path / "out", small_checkpoint_file, env)
    out, err = p.communicate(timeout=300)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, err
    assert "token authentication" in lines[0] and "RAY_AUTH_MODE=token" in lines[0], lines[0]


@pytest.mark.slow
def test_two_nodes_with_token_auth_share_the_photos(tmp_path, small_checkpoint_file, token_cluster):
    src = tmp_path / "in"
    _many(src, n=8, size=160)
    p = _cli_on_cluster(src, tmp_path / "out", small_checkpoint_file, token_cluster)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert "on 2 Ray node(s)" in out, out
    assert len(list((tmp_path / "out").glob("*.png"))) == 8


@pytest.mark.slow
def test_losing_a_node_mid_run_loses_no_photo(tmp_path, small_checkpoint_file, token_cluster):
    """SIGKILL the second node's raylet once the first photo is written: its photos are redone on the head node; the
    run exits 0 with every output byte-identical to the single-machine run, and no hidden file is left. (Runs last
    in this module: the cluster has one node afterwards.)"""
    import os
    import signal
    import time

    src = tmp_path / "in"
    _many(src, n=16, size=160)
    flags = ["--tile", "32", "--overlap", "8", "--precision", "fp32", "--quiet"]
    assert main(["deblur", str(src), "-o", str(tmp_path / "one"), "--model", str(small_checkpoint_file), *flags]) == 0
    out = tmp_path / "ray"
    p = _cli_on_cluster(src, out, small_checkpoint_file, token_cluster)
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline and not _done(out):
        time.sleep(0.05)
    written_before_kill = len(_done(out))
    os.kill(_second_raylet(), signal.SIGKILL)
    stdout, err = p.communicate(timeout=600)
    assert 0 < written_before_kill < 16, "the run was not in flight when the node died"
    assert p.returncode == 0, err[-3000:]
    one = {q.name: q.read_bytes() for q in (tmp_path / "one").iterdir()}
    two = {q.name: q.read_bytes() for q in out.iterdir()}
    assert one.keys() == two.keys() and all(one[k] == two[k] for k in one)  # every photo, and the same bytes
    assert not [q for q in out.rglob(".*")]
