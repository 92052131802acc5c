#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see docs/performance.md).
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site TUNEBOOK_DATA=$PWD/.gpu-data PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/device.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/engine/test_optim.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
timeout 330 python3 benchmarks/engine.py --device cuda --layers 128-128,256-256,64-64,1024-1024 \
    --rows ${ROWS:-a,b,c,d} ${BENCH_ARGS:-} --big 64-64=2048,128-128=2048,256-256=2048,1024-1024=256 --tf32 2>&1 | tee "$OUT/bench.txt"
