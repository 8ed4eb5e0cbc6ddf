#!/usr/bin/env bash
# Install Mesa 25's lavapipe (a software Vulkan driver with shaderFloat16) into a private prefix, so that LiteRT's
# GPU accelerator runs real fp16 kernels on a machine without a GPU. Idempotent.
#   bash scripts/install_lavapipe.sh                       # into ${NAFNET_LITERT_LAVAPIPE:-/opt/nafnet-litert/lavapipe}
#   NAFNET_LITERT_LAVAPIPE=~/lavapipe bash scripts/install_lavapipe.sh
# Debian 12's own lavapipe (Mesa 22.3) is refused by Dawn ("No adapters found"); bookworm-backports' (25.x) works.
# mesa-vulkan-drivers, libdrm2 and libdrm-amdgpu1 are downloaded from bookworm-backports with a private apt
# sources list, state and cache, and unpacked with `dpkg -x`: no system package is installed or upgraded, except
# libvulkan1 (the Vulkan loader) and, only when the driver cannot load without them, its missing runtime deps.
# nafnet_litert.litert.ensure_vulkan_icd() finds "$PREFIX/lvp_icd.json" (VK_ICD_FILENAMES=that file for others).
set -euo pipefail

PREFIX="${NAFNET_LITERT_LAVAPIPE:-/opt/nafnet-litert/lavapipe}"
SUITE="${NAFNET_LITERT_LAVAPIPE_SUITE:-bookworm-backports}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PACKAGES=(mesa-vulkan-drivers libdrm2 libdrm-amdgpu1)
LIBSUB=usr/lib/x86_64-linux-gnu
ICD="$PREFIX/lvp_icd.json"
say() { echo "install_lavapipe: $*"; }

if [[ "$(uname -m)" != "x86_64" ]]; then
  say "only x86_64 is supported (this machine is $(uname -m)); nothing installed"
  exit 0
fi
if [[ -f "$ICD" && -f "$PREFIX/$LIBSUB/libvulkan_lvp.so" ]]; then
  say "already installed ($ICD)"
  exit 0
fi
if [[ ! -r $KEYRING ]]; then
  say "$KEYRING is missing (apt-get install debian-archive-keyring)" >&2
  exit 1
fi

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
APT_UPDATED=0
system_apt_install() {
  [[ $APT_UPDATED -eq 1 ]] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Vulkan loader is a system library: LiteRT's Dawn dlopens libvulkan.so.1.
if [[ ! -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ]]; then
  say "installing libvulkan1 (the Vulkan loader)"
  system_apt_install libvulkan1
fi

# The Debian mirror the system already uses, read from its apt sources (no mirror is written here): the first
# deb822 stanza (sources.list.d/*.sources) or one-line entry (sources.list, sources.list.d/*.list) of type `deb`
# whose suites include this Debian release (so not -security, and not a third-party repository).
# NAFNET_LITERT_LAVAPIPE_MIRROR overrides it.
RELEASE=${SUITE%%-*}
mirror_uri() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    uri=$(awk -v rel="$RELEASE" 'BEGIN { RS = ""; FS = "\n" }
      { t = ""; u = ""; s = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) t = $i; if ($i ~ /^URIs:/) u = $i; if ($i ~ /^Suites:/) s = $i }
        sub(/^Suites:[ \t]*/, "", s); n = split(s, suites, /[ \t]+/); ok = 0
        for (k = 1; k <= n; k++) if (suites[k] == rel || suites[k] == rel "-updates") ok = 1
        if (t ~ /(^|[ \t])deb([ \t]|$)/ && u != "" && ok) {
          sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1]; exit } }' "$f")
    [[ -n $uri ]] && break
  done
  if [[ -z $uri ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -r $f ]] || continue
      uri=$(awk -v rel="$RELEASE" '$1 == "deb" {
          u = ""; for (i = 2; i <= NF; i++) {
            if (u == "" && $i ~ /^[a-z+]+:\/\//) { u = $i; if ($(i + 1) == rel || $(i + 1) == rel "-updates") {
              print u; exit } } } }' "$f")
      [[ -n $uri ]] && break
    done
  fi
  echo "$uri"
}
MIRROR=${NAFNET_LITERT_LAVAPIPE_MIRROR:-$(mirror_uri)}
if [[ -z $MIRROR ]]; then
  say "no Debian $RELEASE mirror in this machine's apt sources (/etc/apt/sources.list*); set" \
    "NAFNET_LITERT_LAVAPIPE_MIRROR to one (the URL of a Debian archive that has $SUITE)" >&2
  exit 1
fi
MIRROR=${MIRROR%/}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs" "$WORK/root"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$WORK/sources.list"
chmod -R a+rwX "$WORK"  # apt downloads as its sandbox user (_apt)
APT=(apt-get -q
  -o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o Dir::State::status=/dev/null)
[[ $(id -u) -ne 0 ]] && APT+=(-o Debug::NoLocking=1)

say "downloading ${PACKAGES[*]} from $MIRROR $SUITE"
"${APT[@]}" update -qq
(cd "$WORK/debs" && "${APT[@]}" download "${PACKAGES[@]/%//$SUITE}" >/dev/null)

STAGE="$WORK/root"
for deb in "$WORK"/debs/*.deb; do
  dpkg -x "$deb" "$STAGE"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$STAGE/PACKAGES"
done
SHIPPED=$(ls "$STAGE"/usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n1 || true)
if [[ -z $SHIPPED || ! -f "$STAGE/$LIBSUB/libvulkan_lvp.so" ]]; then
  say "mesa-vulkan-drivers from $SUITE has no lavapipe ($LIBSUB/libvulkan_lvp.so, lvp_icd*.json)" >&2
  exit 1
fi

# Runtime deps: the driver's libdrm comes from the prefix; the rest (libLLVM-15, xcb, wayland, zstd, ...) from the
# system. Install the Depends of mesa-vulkan-drivers that are absent only when the driver misses a library.
missing_libs() {
  LD_LIBRARY_PATH="$STAGE/$LIBSUB" ldd "$STAGE/$LIBSUB/libvulkan_lvp.so" | awk '/not found/ { print $1 }' | sort -u
}
MISSING=$(missing_libs)
if [[ -n $MISSING ]]; then
  NEED=()
  for dep in $(dpkg-deb -f "$WORK"/debs/mesa-vulkan-drivers_*.deb Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g'); do
    [[ $dep == libdrm* ]] && continue
    dpkg-query -W -f='${db:Status-Status}' "$dep" 2>/dev/null | grep -qx installed || NEED+=("$dep")
  done
  say "libvulkan_lvp.so needs $(echo $MISSING); installing ${NEED[*]:-(nothing found to install)}"
  [[ ${#NEED[@]} -gt 0 ]] && system_apt_install "${NEED[@]}"
  MISSING=$(missing_libs)
  if [[ -n $MISSING ]]; then
    say "libvulkan_lvp.so still misses $(echo $MISSING); install the packages that provide them and rerun" >&2
    exit 1
  fi
fi

API_VERSION=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ICD"]["api_version"])' "$SHIPPED")
python3 - "$STAGE/lvp_icd.json" "$PREFIX/$LIBSUB/libvulkan_lvp.so" "$API_VERSION" <<'PY'
import json, sys
out, lib, api = sys.argv[1:]
with open(out, "w") as f:
    json.dump({"file_format_version": "1.0.1", "ICD": {"library_path": lib, "api_version": api}}, f, indent=4)
    f.write("\n")
PY

# Move into place (the ICD last, so a half-finished install is never taken for a complete one); sudo only when
# the prefix is not writable (e.g. /opt for a normal user).
PSUDO=""
d="$PREFIX"; while [[ ! -e $d ]]; do d=$(dirname "$d"); done
[[ -w $d ]] || PSUDO=$SUDO
$PSUDO mkdir -p "$PREFIX"
$PSUDO rm -rf "$PREFIX/usr" "$ICD"
$PSUDO cp -a "$STAGE/usr" "$STAGE/PACKAGES" "$PREFIX/"
$PSUDO cp "$STAGE/lvp_icd.json" "$ICD"
say "installed $(paste -sd',' "$STAGE/PACKAGES" | sed 's/,/, /g') -> $ICD"
