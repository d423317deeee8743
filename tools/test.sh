#!/usr/bin/env bash
# The test command from the README: `tools/test.sh` from the repository root.
#
# On a fresh Debian machine it first installs, idempotently and quietly, what the
# end-to-end tests in tests/ need:
#   - Debian packages: kcat (Debian's, built on librdkafka 2.0.2, a second librdkafka
#     version next to the one bundled by the rdkafka crate), a C toolchain and
#     pkg-config for the bundled librdkafka build (./configure + make), python3-venv,
#     and prometheus (tests/metrics.rs runs its own Prometheus server against a broker;
#     the package's system service plays no part);
#   - a Python virtualenv in .venv with a pinned kafka-python.
# Then it runs the lints and the whole workspace test suite, in one `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"

# Pinned so that a new kafka-python release cannot change the result of a run.
kafka_python_version="3.0.12"
venv_dir="$repo_root/.venv"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

install_debian_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: install kcat, a C toolchain, pkg-config, python3-venv and prometheus yourself"
        return
    fi
    local wanted=(kcat build-essential pkg-config python3 python3-venv prometheus)
    local missing=()
    local package
    for package in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    # The package lists are only refreshed when something is actually missing.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

install_python_venv() {
    # A venv whose interpreter no longer runs (e.g. the base Python moved) is rebuilt.
    if [ -d "$venv_dir" ] && ! "$venv_dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "removing broken virtualenv $venv_dir"
        rm -rf "$venv_dir"
    fi
    if [ ! -x "$venv_dir/bin/python" ]; then
        log "creating virtualenv $venv_dir"
        python3 -m venv "$venv_dir"
    fi
    if ! "$venv_dir/bin/python" - "$kafka_python_version" >/dev/null 2>&1 <<'PY'
import sys
import kafka
sys.exit(0 if kafka.__version__ == sys.argv[1] else 1)
PY
    then
        log "installing kafka-python==$kafka_python_version into $venv_dir"
        "$venv_dir/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kafka-python==$kafka_python_version"
    fi
}

check_rust_toolchain() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found on PATH; install Rust (https://rustup.rs) first" >&2
        exit 1
    fi
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        log "installing rustfmt and clippy"
        rustup component add rustfmt clippy >/dev/null
    fi
}

install_debian_packages
install_python_venv
check_rust_toolchain

# The kafka-python tests run their scripts with this interpreter.
export STRATA_PYTHON="$venv_dir/bin/python"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo test"
cargo test --workspace --no-fail-fast
