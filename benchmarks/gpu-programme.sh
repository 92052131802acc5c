#!/usr/bin/env bash
# Issue 5 on a lent GPU: the log's whole programme with 5 seeds, timed, on CUDA.
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site TUNEBOOK_DATA=$PWD/.gpu-data PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/device.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py 2>&1 | tail -6 | tee "$OUT/tests.txt"
start=$(date +%s.%N)
timeout 400 python3 -m tunebook run examples/fashion-mnist/ --out /tmp/ml --device cuda --no-report --quiet 2>&1 | tee "$OUT/programme.txt"
end=$(date +%s.%N)
echo "programme wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/programme.txt"
tar czf "$OUT/gpu-runs.tgz" -C /tmp/ml --exclude='events.out.tfevents.*' .
