#!/bin/bash
# The GPU check (under 8 minutes on one GPU): the CUDA tests, then each family's paper preset trained
# for a few steps on synthetic data of its size, with images/s, peak GPU memory, the precision used
# and sampling times at batch 1/16/64 written to benchmarks/results/gpu_<family>.json.
#     bash scripts/gpu_check.sh [extra arguments for benchmarks/gpu_check.py]
set -u
cd "$(dirname "$0")/.."
status=0
timeout 240 python3 -m pytest -q tests/test_cuda.py -p no:cacheprovider || status=1
timeout 300 python3 benchmarks/gpu_check.py --device cuda --steps 10 --sample-seconds 20 "$@" || status=1
exit $status
