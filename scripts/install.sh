#!/usr/bin/env bash
# Install nafnet-litert and everything it needs on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/install.sh          # the package (CPU torch, litert-torch, ai-edge-litert, ...)
#   bash scripts/install.sh --test   # + test tools, the spandrel oracle, SwiftShader and Mesa 25 lavapipe (GPU tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install -q --disable-pip-version-check"

have_test_system_deps() {
  [[ -f /usr/lib/chromium/vk_swiftshader_icd.json && -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]] && command -v g++ >/dev/null \
    && command -v node >/dev/null && command -v npm >/dev/null
}
if [[ "${1:-}" == "--test" ]] && ! have_test_system_deps; then
  # chromium ships SwiftShader (a software Vulkan): LiteRT's GPU accelerator runs on it without a GPU.
  # g++: torch.compile (train --compile, tested) builds its CPU kernels with it.
  # nodejs: the browser page's tiling code is checked against the Python tiler in Node.js.
  # npm: `nafnet-litert web` fetches LiteRT.js with `npm pack` (Debian's npm; skipped when an npm is there).
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  NPM=(); command -v npm >/dev/null || NPM=(npm)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium libvulkan1 g++ nodejs "${NPM[@]}" >/dev/null
fi
if [[ "${1:-}" == "--test" ]]; then
  # Mesa 25 lavapipe (a software Vulkan with fp16) in a private prefix: the GPU tests run real fp16 kernels on it.
  bash scripts/install_lavapipe.sh
fi

# The pip steps are skipped when this checkout was installed with this pyproject.toml and this script by this
# Python, and the package still imports from here (pip alone takes ~12 s even when nothing changes).
STAMP="${XDG_CACHE_HOME:-$HOME/.cache}/nafnet-litert-install/$( (cat pyproject.toml "$0"; pwd; echo "${1:-}"; \
  python3 --version) | sha256sum | cut -c1-16)"
MODS="'nafnet_litert'"; [[ "${1:-}" == "--test" ]] && MODS="$MODS, 'spandrel', 'pytest', 'xdist', 'syrupy', 'hypothesis'"
if [[ -f "$STAMP" ]] && python3 -c "import importlib.util as u, os, sys; mods = [$MODS]; specs = [u.find_spec(m) for m in mods]
here = all(specs) and os.path.realpath(specs[0].origin).startswith(os.path.realpath('src') + os.sep)
sys.exit(0 if here else 1)" 2>/dev/null; then
  exit 0
fi
# A bare `torch` pulls a multi-GB CUDA build; 2.13.0 is the CPU build (and litert-torch 0.10 needs torch < 2.15).
python3 -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || $PIP "torch==2.13.0"
if [[ "${1:-}" == "--test" ]]; then
  $PIP -e ".[test,bench,cluster]"
  # spandrel (the test oracle) declares torchvision, whose PyPI build needs the CUDA torch: install it without
  # its dependencies. The tests load only its NAFNet files, which need torch alone.
  $PIP --no-deps "spandrel>=0.4,<0.5" "einops>=0.8"
else
  $PIP -e .
fi
mkdir -p "$(dirname "$STAMP")" && touch "$STAMP"
