#!/usr/bin/env bash
# Prepare a Debian 12 machine and this checkout for development and CI:
#   1. install the system packages vaora needs (only those missing; apt-get update once, only if needed),
#   2. create .venv with a Python >= 3.11 and `pip install -e '.[dev]'` (skipped while pyproject.toml
#      is unchanged since the last successful install: its sha256 is stamped in .venv).
# Idempotent, never reads standard input, uses sudo for apt when not root. It does not enable or start the
# system Mosquitto service: tests and the demo start their own brokers on free ports.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.vaora-installed-pyproject.sha256"
# stress-ng: the CPU burner of `make test-load` (scripts/test_under_load.sh). gcc, python3-dev and
# linux-libc-dev (the kernel's input headers): pip builds evdev, the HID scanner's library, from its source
# package, as it does on a Raspberry Pi gate.
SYSTEM_PACKAGES=(make python3 python3-venv python3-dev gcc linux-libc-dev openssl curl mosquitto mosquitto-clients redis-server
    libzbar0 chromium fonts-dejavu-core fonts-dejavu-extra poppler-utils stress-ng)

say() { printf 'bootstrap: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# --- 1. system packages -----------------------------------------------------------------------------
missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
    # dpkg -s also succeeds for removed packages that left config files; require "install ok installed".
    status="$(dpkg -s "$package" 2>/dev/null || true)"
    if [[ "$status" != *"Status: install ok installed"* ]]; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
else
    say "system packages present"
fi

# --- 2. Python >= 3.11 --------------------------------------------------------------------------------
python_ok() {
    command -v "$1" >/dev/null 2>&1 \
        && "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}
PYTHON=""
for candidate in python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
    if python_ok "$candidate"; then
        PYTHON="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    say "no Python >= 3.11 with the venv module found (tried python3, python3.13-3.11, /usr/bin/python3)" >&2
    exit 1
fi

# --- 3. virtualenv --------------------------------------------------------------------------------------
if [ -x "$VENV/bin/python" ] \
    && ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
    say "existing .venv is broken or too old; recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# --- 4. Python packages ---------------------------------------------------------------------------------
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    say "python packages up to date (pyproject.toml unchanged)"
else
    say "installing vaora in .venv: pip install -e '.[dev]' (every role's extra)"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -e '.[dev]' </dev/null
    printf '%s\n' "$wanted" >"$STAMP"
fi
say "ready: $VENV"
