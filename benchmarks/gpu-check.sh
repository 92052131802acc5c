#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see docs/performance.md).
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along).
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/engine/test_optim.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
timeout 330 python3 benchmarks/engine.py --device cuda --layers 128-128,256-256,64-64,1024-1024 \
    --rows ${ROWS:-a,b,c,d} ${BENCH_ARGS:-} --big 64-64=2048,128-128=2048,256-256=2048,1024-1024=256 --tf32 2>&1 | tee "$OUT/bench.txt"
