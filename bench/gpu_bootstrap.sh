#!/usr/bin/env bash
# Bootstrap and run `make gpu-check` on a lent GPU machine (docs/gpu.md).
#
#   bench/gpu_bootstrap.sh download     where there is a registry: the cp312 wheels of
#                                       bench/gpu_requirements.txt into wheels/
#   bench/gpu_bootstrap.sh plan         on the GPU machine: which wheels it lacks, and why
#   bench/gpu_bootstrap.sh install      on the GPU machine: those wheels into .switchyard/gpu-site
#   bench/gpu_bootstrap.sh run [ARGS]   python3 -m bench.gpu_check ARGS, that folder first on PYTHONPATH
#   bench/gpu_bootstrap.sh [ARGS]       install (when wheels/ exists and nothing is installed), then run
#
# The machine's own python3, with its torch, is used as it is and never changed. No venv is
# made: that python3 may itself live in a venv, whose packages a nested venv would not see.
# Only the wheels it lacks, or has in an older version, go into the folder (bench/gpu/carry.py).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${WHEELS:-wheels}
SITE=${GPU_SITE:-.switchyard/gpu-site}
PYTHON=${PYTHON:-python3}

need_wheels() {
    [ -d "$WHEELS" ] || { echo "no $WHEELS/ folder: run '$0 download' where there is a registry" >&2; exit 1; }
}

run() {
    local path=$PWD
    if [ -d "$SITE" ]; then path="$PWD/$SITE:$path"; fi
    PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m bench.gpu_check "$@"
}

case "${1:-}" in
download)
    "$PYTHON" -m bench.gpu.carry download "$WHEELS"
    du -sh "$WHEELS"
    ;;
plan) need_wheels; "$PYTHON" -m bench.gpu.carry plan "$WHEELS" ;;
install) need_wheels; "$PYTHON" -m bench.gpu.carry install "$WHEELS" "$SITE" ;;
run) shift; run "$@" ;;
*)
    if [ -d "$WHEELS" ] && [ ! -d "$SITE" ]; then "$PYTHON" -m bench.gpu.carry install "$WHEELS" "$SITE"; fi
    run "$@"
    ;;
esac
