#!/usr/bin/env bash
# Install Google Research Football (gfootball 2.10.2) into the active Python environment.
#
# gfootball has no binary wheel on PyPI: its sdist compiles a C++ engine (about 10 min on
# 2 cores). This script does it once and keeps the wheel, so every later run (a new venv, CI)
# only installs it:
#   1. Debian/Ubuntu build dependencies through apt-get (skipped when already installed);
#   2. `pip wheel --no-build-isolation` into the wheel cache (skipped when the wheel is there;
#      build isolation must be off because gfootball's build script imports psutil);
#   3. `pip install --no-deps` of the cached wheel, then its runtime dependencies plus the pins
#      gfootball leaves out: `six` (imported, undeclared) and `gym==0.25.2` (gfootball uses
#      the old reset/step API that gym 0.26 removed). Its `pygame` requirement (keyboard play
#      only) is installed only when no `pygame` module exists: pygame would overwrite the
#      files of pygame-ce, which mpe2 needs (both install the module `pygame`).
#
# Usage: activate the venv, then `bash scripts/install_football.sh`.
# Environment: HASAC_CACHE (default ~/.cache/hasac-bench) holds wheels/;
#              HASAC_SKIP_APT=1 skips step 1 (install the packages below yourself).
set -euo pipefail

GFOOTBALL_VERSION=2.10.2
WHEEL_DIR="${HASAC_CACHE:-$HOME/.cache/hasac-bench}/wheels"
PYTHON="${PYTHON:-python}"
APT_PACKAGES=(cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev
              libsdl2-gfx-dev libboost-all-dev libdirectfb-dev libst-dev python3-dev)

say() { echo "[install_football] $*"; }

# gfootball's build script calls `python3 -c "import psutil"`: make that this interpreter.
PATH="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')"):$PATH"

install_apt_packages() {
    if [ "${HASAC_SKIP_APT:-0}" = 1 ]; then
        say "HASAC_SKIP_APT=1: not checking apt packages"
        return
    fi
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt build dependencies already installed"
        return
    fi
    if ! command -v apt-get >/dev/null; then
        say "error: no apt-get here; install the equivalents of: ${missing[*]} (then rerun with HASAC_SKIP_APT=1)" >&2
        exit 1
    fi
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { say "error: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    say "apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

cached_wheel() {
    # The wheel is specific to the interpreter (cp311-cp311-...), so look for this Python's tag.
    local tag
    tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    compgen -G "$WHEEL_DIR/gfootball-$GFOOTBALL_VERSION-$tag-$tag-*.whl" | head -n 1 || true
}

build_wheel() {
    say "building gfootball $GFOOTBALL_VERSION (compiles the C++ engine, about 10 min) into $WHEEL_DIR"
    mkdir -p "$WHEEL_DIR"
    "$PYTHON" -m pip install -q psutil setuptools wheel
    local started=$SECONDS
    "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$WHEEL_DIR" "gfootball==$GFOOTBALL_VERSION"
    say "built in $((SECONDS - started)) s"
}

"$PYTHON" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' \
    || say "warning: no virtual environment is active; installing into $("$PYTHON" -c 'import sys; print(sys.prefix)')"

wheel=$(cached_wheel)
if [ -n "$wheel" ]; then
    say "using cached wheel $wheel"
else
    install_apt_packages
    build_wheel
    wheel=$(cached_wheel)
    [ -n "$wheel" ] || { say "error: the build left no wheel in $WHEEL_DIR" >&2; exit 1; }
fi
# The engine links the SDL/Boost shared libraries at run time, so a cached wheel still needs them.
install_apt_packages
runtime=(six "gym==0.25.2" absl-py scipy psutil opencv-python)  # gfootball's requirements + pins
"$PYTHON" -c 'import pygame' >/dev/null 2>&1 || runtime+=(pygame)
"$PYTHON" -m pip install -q --no-deps "$wheel"
"$PYTHON" -m pip install -q "${runtime[@]}"
"$PYTHON" -c 'import gfootball.env' && say "gfootball $GFOOTBALL_VERSION installed"
