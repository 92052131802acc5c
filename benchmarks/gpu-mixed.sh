#!/usr/bin/env bash
# Issue 10 on a lent GPU: mixed-shape stacks, the planner and concurrent groups on CUDA.
# 1. the CUDA tests (mixed widths and optimizers against the reference, graphs vs eager);
# 2. benchmarks/mixed.py: width grid (today / one padded group / planner ×1, 2, 4 at once),
#    64 random widths (reference one by one / exact / planner / one group), the programme;
# 3. `tunebook run` on the whole programme, planner + 2 groups at once, timed end to end.
# Targets (H200): programme <= 15 s of training; width grid as one group >= 8x today's 16
# groups; 64 random widths >= 20x the reference loop one by one.
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along):
#   run(command="bash benchmarks/gpu-mixed.sh", carry=[".gpu-data", ".whl"], timeout_s=540)
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
mkdir -p /tmp/grid-studies && cp examples/fashion-mnist/0[1-7]-*.toml /tmp/grid-studies/  # the seven grid studies
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py 2>&1 | tail -8 | tee "$OUT/tests.txt"
timeout 200 python3 benchmarks/mixed.py --device cuda --only width,random,programme --concurrent 1,2,4 2>&1 \
  | tee "$OUT/mixed.txt"
start=$(date +%s.%N)
timeout 120 python3 -m tunebook run /tmp/grid-studies/ --out /tmp/mm --device cuda --concurrent 2 \
  --no-report --quiet 2>&1 | tee "$OUT/programme.txt"
end=$(date +%s.%N)
echo "programme wall seconds (tunebook run --concurrent 2): $(python3 -c "print(round($end - $start, 1))")" \
  | tee -a "$OUT/programme.txt"
cp /tmp/mm/.planner.toml "$OUT/planner.toml" 2>/dev/null
