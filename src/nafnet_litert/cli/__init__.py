"""``nafnet-litert``: a thin shell over the Python API. One module per subcommand (``*_command.py``): each parses its
arguments and calls the library."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import threading

from ..errors import NafnetLitertError, describe


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nafnet-litert")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    from . import (
        audit_command,
        bench_command,
        convert_command,
        deblur_command,
        demo_command,
        eval_command,
        tiling_study_command,
        train_command,
        web_command,
    )

    parser = argparse.ArgumentParser(
        prog="nafnet-litert",
        description="Exact, GPU-clean LiteRT exports of NAFNet checkpoints, and an audit that proves it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in (
        demo_command,
        deblur_command,
        convert_command,
        audit_command,
        eval_command,
        train_command,
        bench_command,
        tiling_study_command,
        web_command,
    ):
        mod.register(sub)
    return parser


@contextlib.contextmanager
def native_logs_to_file():
    """LiteRT, TF and the converter log INFO lines from C++ straight to file descriptors 2 and 1 (the GPU
    accelerator prints its OpenCL probe on stdout, which would corrupt ``--json``).

    Keep the CLI readable and its stdout parseable: point fds 1 and 2 at a private, already unlinked file while
    Python's own ``sys.stdout`` and ``sys.stderr`` keep writing to the real terminal. The file is made by
    ``mkstemp`` (a new name, created exclusively with mode 0600, so no symlink, directory or FIFO that someone
    planted in a shared temporary folder is ever opened) and unlinked at once: nothing is left behind, and LiteRT
    can still log from its atexit destructors. Used once per process, by :func:`main`; not when :func:`main` runs
    inside pytest's own process (which captures the fds itself). ``NAFNET_LITERT_VERBOSE=1`` keeps everything on
    the terminal.
    """
    if os.environ.get("NAFNET_LITERT_VERBOSE") or "pytest" in sys.modules:
        yield
        return
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        fd, log_path = tempfile.mkstemp(prefix="nafnet-litert-native-", suffix=".log")
        os.unlink(log_path)
    except OSError:  # no writable temporary folder: drop the native logs
        fd = os.open(os.devnull, os.O_WRONLY)
    out_fd, err_fd = os.dup(1), os.dup(2)
    # Not restored on exit: LiteRT also logs from its atexit destructors.
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = io.TextIOWrapper(os.fdopen(out_fd, "wb", buffering=0), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(err_fd, "wb", buffering=0), write_through=True)
    import atexit

    atexit.register(sys.stdout.close)  # closed, not collected: no ResourceWarning at exit
    atexit.register(sys.stderr.close)
    yield


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that every ``atomic_path`` removes its temporary file."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess
    raise Terminated()


def _import_torch_before_the_redirect() -> None:
    """Every subcommand runs PyTorch. Imported here, before :func:`native_logs_to_file`, its Python log handler
    binds to the stream that then goes to the private log file: library notices that torch and the libraries on it
    log on successful runs (torchao's "register_constant() on Enum subclasses is deprecated") stay out of the
    user's terminal. ``--version`` and ``--help`` never get here (argparse exits first) and stay fast."""
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - the package requires torch
        pass


def main(argv: list[str] | None = None) -> int:
    """The ``nafnet-litert`` command. Called without ``argv`` (the installed command, ``python -m``), it is the
    process: where a Ray connect it gave up on still blocks a thread, it leaves with ``os._exit`` after flushing, so
    that the exit code the user reads is the one printed for (see :func:`.restore.cluster.connect_left_hanging`)."""
    code = _run(argv)
    cluster = sys.modules.get("nafnet_litert.restore.cluster")
    if argv is None and cluster is not None and cluster.connect_left_hanging():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    return code


def _run(argv: list[str] | None) -> int:
    import signal
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not os.environ.get("NAFNET_LITERT_VERBOSE"):
        _import_torch_before_the_redirect()
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    else:  # pragma: no cover
        previous = None
    try:
        with native_logs_to_file(), warnings.catch_warnings():
            if not os.environ.get("NAFNET_LITERT_VERBOSE"):
                warnings.simplefilter("ignore")  # library warnings (torch, the converter): noise before one line
                import logging

                # library loggers that warn on successful runs (Ray's and Ray Data's notices)
                for name in ("ray", "ray.data"):
                    logging.getLogger(name).setLevel(logging.ERROR)
            try:
                return int(args.func(args) or 0)
            except NafnetLitertError as e:
                print(f"nafnet-litert {args.command}: error: {e}", file=sys.stderr)
                return e.exit_code
            except KeyboardInterrupt:
                print("nafnet-litert: interrupted", file=sys.stderr)
                return 130
            except Terminated:
                print("nafnet-litert: terminated", file=sys.stderr)
                return 143
            except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, like other tools
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return 141
            except Exception as e:  # noqa: BLE001 - anything else is still one line and exit 2, never a traceback
                print(f"nafnet-litert {args.command}: error: {describe(e)}", file=sys.stderr)
                if os.environ.get("NAFNET_LITERT_VERBOSE"):
                    import traceback

                    traceback.print_exc()
                return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
