"""Build the browser site: a static site that runs the exported model with LiteRT.js (WebGPU or WASM); it is served
by :mod:`.serve`.

``build_site(model, out)`` writes:

* ``model_fp32.tflite`` — the tile model for WASM (fp16-weight models are not fully accelerated on WASM: LiteRT.js
  runs their DEQUANTIZE ops outside XNNPACK, 2–5× slower);
* ``model_webgpu.tflite`` — the same tile model with fp16 weights for WebGPU (half the download; the GPU
  dequantizes at load and the result matches fp32 weights to ~1e-5);
  both come from the model cache that ``deblur`` uses (exported once per checkpoint, tile size and install);
* ``litert/core``, ``litert/wasm-utils`` — LiteRT.js at pinned versions (:data:`LITERTJS`), checked against the
  SHA-512 integrity pinned here, with their licence. The one bare import in ``core/dist/index.js``
  (``@litertjs/wasm-utils``) is rewritten to the relative path of the copy beside it, so no import map is needed;
* ``index.html``, ``nafnet.js`` (the embedding API: ``loadDeblurrer``, ``deblurrer.deblur``, ``info``) and
  ``nafnet-worker.js`` (the Web Worker in which each deblurrer runs its own LiteRT.js runtime).

How LiteRT.js reaches the site: the two npm tarballs are fetched once with npm's own client (``npm pack``, which
honours the user's npm configuration: mirrors, private registries, proxies) into the model cache
(``$NAFNET_LITERT_CACHE/npm``), verified against the integrity hashes pinned here, and unpacked into each site. Not
in the wheel (the WASM files are 38 MB, four builds for different browser features). A machine without npm or
network access passes the two ``.tgz`` files with ``--npm-dir``. Nothing is loaded from a CDN: the site works
offline from 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import WebError

#: npm package -> (version, integrity as the npm registry publishes it). Bump both together.
LITERTJS = {
    "core": (
        "2.5.3",
        "sha512-PlGmbMOq9WitX7FO0jhbdJw9GthatsyuCQXjTt/wJZo0FLaw48q4tz8IwqgqCIkviYGr9OFDL1kCnN4nzWoyJQ==",
    ),
    "wasm-utils": (
        "2.5.3",
        "sha512-4fJiw6tBQnIs+0jH/OQ16nYOiSl8/+zZnn5h2ul8aTKHi05sVqZW580Tmk78pC2kT39A9OYBVdFawteZ/sI1kQ==",
    ),
}
SITE_FILES = ("index.html", "nafnet.js", "nafnet-worker.js")
#: Written into every site: ``web -o`` replaces only a folder that holds it (or an empty or new one).
SITE_MARKER = ".nafnet-litert-site"
#: The one bare module specifier in ``@litertjs/core``'s ES module, and what the site writes instead (so that
#: ``nafnet.js`` needs no import map, in a page or in a worker).
CORE_IMPORT = 'from "@litertjs/wasm-utils"'
CORE_IMPORT_RELATIVE = 'from "../../wasm-utils/dist/index.js"'
#: How long ``npm pack`` may take for one tarball (the core one is 10 MB).
NPM_TIMEOUT_S = 600


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def npm_pack(name: str, version: str, dest: Path) -> Path:
    """``npm pack @litertjs/NAME@VERSION`` into ``dest`` with the user's npm (and so the user's registry, mirror and
    proxy settings); returns the tarball's path."""
    npm = shutil.which("npm")
    offline = f"on an offline machine pass --npm-dir with the two .tgz files (npm pack @litertjs/{name}@{version})"
    if npm is None:
        raise WebError(f"npm is not installed (apt-get install npm), and LiteRT.js is fetched with it; {offline}")
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false", "npm_config_loglevel": "error"}  # fmt: skip
    cmd = [npm, "pack", f"@litertjs/{name}@{version}", "--ignore-scripts", "--json", "--pack-destination", str(dest)]
    try:
        r = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
                           check=False)
    except subprocess.TimeoutExpired:
        raise WebError(f"npm pack @litertjs/{name}@{version} took more than {NPM_TIMEOUT_S} s; {offline}") from None
    except OSError as e:
        raise WebError(f"cannot run npm ({e.strerror}); {offline}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip() and "npm error" in ln.lower()]
        why = lines[0].split("npm error", 1)[-1].strip() if lines else f"exit {r.returncode}"
        raise WebError(f"npm pack @litertjs/{name}@{version} failed ({why}); {offline}")
    try:
        filename = json.loads(r.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        filename = f"litertjs-{name}-{version}.tgz"
    path = dest / Path(filename).name
    if not path.is_file():
        raise WebError(f"npm pack @litertjs/{name}@{version} wrote no {path.name}; {offline}")
    return path


def npm_tarball(name: str, npm_dir: Path | None = None) -> bytes:
    """The pinned LiteRT.js tarball ``name``: from ``npm_dir`` (offline), else the cache, else ``npm pack`` (the
    user's npm client and configuration); always checked against the pinned integrity."""
    from ..litert.cachedir import cache_dir

    version, integrity = LITERTJS[name]
    filename = f"litertjs-{name}-{version}.tgz"
    candidates = ([npm_dir / filename] if npm_dir else []) + [cache_dir() / "npm" / filename]
    for path in candidates:
        if path.is_file():
            data = path.read_bytes()
            if integrity_of(data) == integrity:
                return data
            if npm_dir and path.parent == npm_dir:
                raise WebError(f"{path}: not the pinned @litertjs/{name} {version} (integrity differs)")
    if npm_dir:
        raise WebError(f"{filename} is not in {npm_dir} (get it with: npm pack @litertjs/{name}@{version})")
    with tempfile.TemporaryDirectory(prefix="nafnet-litert-npm-") as tmp:
        data = npm_pack(name, version, Path(tmp)).read_bytes()
    if integrity_of(data) != integrity:
        raise WebError(f"@litertjs/{name} {version} from npm does not match its pinned integrity: refusing it")
    from ..io.files import atomic_write_bytes

    (cache_dir() / "npm").mkdir(exist_ok=True)
    atomic_write_bytes(cache_dir() / "npm" / filename, data)
    return data


def unpack(data: bytes, dest: Path) -> None:
    """An npm tarball's files (everything under ``package/``) into ``dest``. tarfile's ``data`` filter keeps every
    file inside ``dest`` (no absolute paths, no ``..`` out of it, no device files); links and other non-files are
    not part of a package and are skipped."""

    def package_file(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if not member.isfile():
            return None
        parts = Path(member.name).parts
        if parts[0] != "package" or len(parts) < 2:
            raise WebError(f"unexpected path in the LiteRT.js tarball: {member.name}")
        try:
            return tarfile.data_filter(member.replace(name="/".join(parts[1:]), deep=False), path)
        except tarfile.FilterError:
            raise WebError(f"unexpected path in the LiteRT.js tarball: {member.name}") from None

    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        tf.extractall(dest, filter=package_file)


def _relative_core_import(core: Path) -> None:
    """Rewrite ``@litertjs/core``'s one bare import of ``@litertjs/wasm-utils`` to the copy beside it."""
    index = core / "dist" / "index.js"
    text = index.read_text()
    if text.count(CORE_IMPORT) != 1:
        raise WebError(f"{index}: expected one `{CORE_IMPORT}` (pinned LiteRT.js {LITERTJS['core'][0]})")
    index.write_text(text.replace(CORE_IMPORT, CORE_IMPORT_RELATIVE))


@dataclass
class Site:
    folder: Path
    files: dict[str, int]  # relative path -> bytes (the main ones)
    tile: int


def build_site(model="default", out="nafnet-web", tile: int = 256, npm_dir: str | Path | None = None) -> Site:
    """Export ``model`` (anything ``convert`` accepts) as a ``tile``-px tile model in fp32 (WASM) and fp16 weights
    (WebGPU), and write the site around it into ``out`` (created; an existing site there is replaced)."""
    from ..io.files import check_writable
    from ..litert.convert import check_size
    from ..models.checkpoint import resolve_checkpoint

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WebError(f"{out} is a file: the site needs a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MARKER).is_file():
        raise WebError(
            f"{out} is not empty and is not a site written by this command (no {SITE_MARKER}): choose a new or "
            "empty folder"
        )
    models = [out / f"{stem}{ext}" for stem in ("model_fp32", "model_webgpu") for ext in (".tflite", ".json")]
    writes = (out / "litert", *(out / "litert" / name for name in LITERTJS), *(out / n for n in SITE_FILES), *models)
    for inside in (*writes, out / SITE_MARKER, out / "litert" / "LICENSE"):
        if inside.is_symlink():
            raise WebError(f"{inside} is a symbolic link: refusing to replace what it points to")
    check_writable(out)
    ckpt = resolve_checkpoint(model)
    check_size((tile, tile), ckpt.config.sizes)
    tarballs = {name: npm_tarball(name, Path(npm_dir) if npm_dir else None) for name in LITERTJS}
    out.parent.mkdir(parents=True, exist_ok=True)
    with _staged_folder(out) as stage:  # the whole site is written beside ``out``, then swapped in
        _write_site(stage, ckpt, tile, tarballs)
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.glob("*") if p.is_file()}
    return Site(out, files, tile)


def _write_site(stage: Path, ckpt, tile: int, tarballs: dict) -> None:
    from ..litert.convert import export
    from ..litert.cache import cached_export

    (stage / SITE_MARKER).write_text("written by nafnet-litert web: this folder is replaced by the next `web -o`\n")
    for precision, name in (("fp32", "model_fp32.tflite"), ("fp16", "model_webgpu.tflite")):
        if ckpt.sha256:  # the model cache that deblur uses: exported once per checkpoint, tile size and install
            cached = cached_export(ckpt, (tile, tile), precision)
            shutil.copyfile(cached, stage / name)
            sidecar = json.loads(cached.with_suffix(".json").read_text())
            (stage / name).with_suffix(".json").write_text(json.dumps({**sidecar, "model": name}, indent=2) + "\n")
        else:  # random:, stress: have no identity to cache by
            export(ckpt, stage / name, tile, precision)
    for name, data in tarballs.items():
        shutil.rmtree(stage / "litert" / name, ignore_errors=True)
        unpack(data, stage / "litert" / name)
    _relative_core_import(stage / "litert" / "core")
    assets = resources.files("nafnet_litert") / "assets" / "web"
    for name in SITE_FILES:
        (stage / name).write_bytes((assets / name).read_bytes())
    licence = Path("/usr/share/common-licenses/Apache-2.0")
    notice = (
        "LiteRT.js (@litertjs/core and @litertjs/wasm-utils "
        f"{LITERTJS['core'][0]}) is Copyright 2025 Google LLC, licensed under the Apache License, Version 2.0 "
        "(https://www.apache.org/licenses/LICENSE-2.0), as its package.json and file headers state.\n\n"
    )
    text = notice + (licence.read_text() if licence.is_file() else "")
    (stage / "litert" / "LICENSE").write_text(text)


@contextlib.contextmanager
def _staged_folder(out: Path):
    """Yield an empty private folder beside ``out``; when the block succeeds its files become ``out``'s (an old site
    there is moved aside and removed: renames only, so a full disk cannot strike half way), when it fails it is
    removed and ``out`` is left exactly as it was: a full disk during a build never costs the previous site.
    ``out`` itself (its permissions, a mount point, a shell's working folder) is kept."""
    import errno

    stage = aside = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.resolve().name}.", dir=out.resolve().parent))
        aside = Path(tempfile.mkdtemp(prefix=stage.name + ".old.", dir=stage.parent))
        yield stage
        out.mkdir(exist_ok=True)
        moved = []
        try:
            for child in list(out.iterdir()):
                os.rename(child, aside / child.name)
                moved.append(child.name)
            for child in list(stage.iterdir()):
                os.rename(child, out / child.name)
        except OSError:
            for child in list(out.iterdir()):  # undo: the old site back as it was
                if child.name not in moved:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            for name in moved:
                os.rename(aside / name, out / name)
            raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise WebError(f"disk full writing the site into {out}: the previous site is unchanged") from None
        raise
    finally:
        for folder in (stage, aside):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
