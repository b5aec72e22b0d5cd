#!/usr/bin/env bash
# Bootstrap and run `make gpu-check` on a lent GPU machine (docs/gpu.md).
#
#   bench/gpu_bootstrap.sh download   on a machine with network: fetch cp312 wheels into wheels/
#   bench/gpu_bootstrap.sh install    on the GPU machine: a venv over the system's torch, from wheels/
#   bench/gpu_bootstrap.sh run [ARGS] on the GPU machine: python -m bench.gpu_check ARGS
#   bench/gpu_bootstrap.sh [ARGS]     install (when wheels/ exists), then run
#
# The GPU machine's own python3 (torch, grpcio, protobuf, nvidia-ml-py) is never changed:
# the venv sees its packages (--system-site-packages) and adds only what is missing,
# installed with --no-index from the carried folder.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${WHEELS:-wheels}
REQS=bench/gpu_requirements.txt
VENV=${GPU_VENV:-.switchyard/gpu-venv}
SITE=.switchyard/gpu-site
PYTHON=${PYTHON:-python3}

download() {
    mkdir -p "$WHEELS"
    # Exact versions for the download (">=" lines become "=="): cp312 manylinux wheels only.
    sed -e 's/>=/==/' "$REQS" >"$WHEELS/requirements.txt"
    "$PYTHON" -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$WHEELS" -r "$WHEELS/requirements.txt"
    du -sh "$WHEELS"
}

install() {
    [ -d "$WHEELS" ] || { echo "no $WHEELS/ folder: run '$0 download' where there is network" >&2; exit 1; }
    if "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null; then
        "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" -r "$REQS"
    elif "$PYTHON" -m venv --without-pip --system-site-packages "$VENV" && "$PYTHON" -m pip --version >/dev/null 2>&1; then
        # No ensurepip here: the system's pip installs into the venv.
        "$PYTHON" -m pip --python "$VENV/bin/python" install -q --no-index --find-links "$WHEELS" -r "$REQS"
    else
        # No venv and no pip: unpack the wheels onto a PYTHONPATH folder, leaving out what
        # the system already has in a version the generated code accepts.
        rm -rf "$VENV"
        mkdir -p "$SITE"
        for wheel in "$WHEELS"/*.whl; do
            name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z_' 'a-z-')
            if "$PYTHON" - "$name" <<'PY'
import sys
from importlib.metadata import version
need = {"grpcio": (1, 85, 1), "protobuf": (7, 35, 1), "torch": (0,), "nvidia-ml-py": (0,)}
name = sys.argv[1]
try:
    have = tuple(int(p) for p in version(name).split("+")[0].split(".")[:3])
except Exception:
    sys.exit(1)
sys.exit(0 if name in need and have >= need[name] else 1)
PY
            then continue; fi
            "$PYTHON" -m zipfile -e "$wheel" "$SITE"
        done
    fi
    echo "installed; run: $0 run"
}

run() {
    if [ -x "$VENV/bin/python" ]; then
        exec "$VENV/bin/python" -m bench.gpu_check "$@"
    elif [ -d "$SITE" ]; then
        PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m bench.gpu_check "$@"
    else
        exec "$PYTHON" -m bench.gpu_check "$@"
    fi
}

case "${1:-}" in
download) download ;;
install) install ;;
run) shift; run "$@" ;;
*)
    if [ -d "$WHEELS" ] && [ ! -x "$VENV/bin/python" ] && [ ! -d "$SITE" ]; then install; fi
    run "$@"
    ;;
esac
