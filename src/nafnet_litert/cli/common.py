"""Flags that several commands share, so the same flags mean the same thing (and the same network) everywhere."""

from __future__ import annotations

import argparse

from ..facts import BACKENDS, DEFAULT_OVERLAP, DEFAULT_TILE, PRECISIONS


def add_restore_arguments(p: argparse.ArgumentParser) -> None:
    """How images are run: the same flags, defaults and meaning as ``deblur``."""
    p.add_argument("--backend", choices=BACKENDS, default="litert")
    p.add_argument("--gpu", action="store_true", help="LiteRT GPU accelerator")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size (a multiple of the network's 2^levels: 16 for every preset)")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in pixels")
    p.add_argument("--full-frame", action="store_true", help="no tiles: whole image at once, with TLC")
    p.add_argument("--no-tlc", dest="tlc", action="store_false", help="with --full-frame: the plain network, no TLC")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="LiteRT weight precision")
    p.add_argument("--threads", type=int, default=2)


def restore_options(args: argparse.Namespace):
    """The :class:`~nafnet_litert.restore.RestoreOptions` of a deblur/eval command line (shared, so the two
    commands run the same network for the same flags)."""
    from ..restore.restorer import RestoreOptions

    return RestoreOptions(
        backend=args.backend, gpu=getattr(args, "gpu", False), tile=args.tile, overlap=args.overlap,
        full_frame=args.full_frame, tlc=args.tlc, precision=args.precision, threads=args.threads,
    )  # fmt: skip


def check_json_path(path: str | None) -> None:
    """``--json FILE``: its folder exists and is writable, checked before any work."""
    if not path:
        return
    from pathlib import Path

    from ..errors import NafnetLitertError
    from ..io.files import check_writable

    if not Path(path).parent.is_dir():
        raise NafnetLitertError(f"--json folder does not exist: {Path(path).parent}")
    check_writable(Path(path).parent, "--json folder")


def write_json(path: str | None, result: dict) -> None:
    """``--json FILE``: the result, written atomically."""
    if path:
        from ..io.files import atomic_write_text
        from ..jsonsafe import dumps

        atomic_write_text(path, dumps(result))
