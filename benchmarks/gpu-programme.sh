#!/usr/bin/env bash
# Issue 5 on a lent GPU: the log's whole programme with 5 seeds, timed, on CUDA.
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along).
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
mkdir -p /tmp/grid-studies && cp examples/fashion-mnist/0[1-7]-*.toml /tmp/grid-studies/  # the seven grid studies
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py 2>&1 | tail -6 | tee "$OUT/tests.txt"
start=$(date +%s.%N)
timeout 400 python3 -m tunebook run /tmp/grid-studies/ --out /tmp/ml --device cuda --no-report --quiet 2>&1 | tee "$OUT/programme.txt"
end=$(date +%s.%N)
echo "programme wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/programme.txt"
tar czf "$OUT/gpu-runs.tgz" -C /tmp/ml --exclude='events.out.tfevents.*' .
