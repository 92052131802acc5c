#!/usr/bin/env bash
# Issue 11 on a lent GPU: examples/fashion-mnist/08-search.toml run to the end on CUDA —
# 48 TPE proposals × 2 seeds, 5 epochs, batches of 8 trained as padded stacks, then the best
# 3 confirmed on 10 seeds — and its report (the likely best) kept.
# Carry the dataset, tomli-w and Optuna with its pure-Python dependencies (built here with
#   pip download --no-deps -d .whl tomli-w optuna==5.0.0 alembic colorlog tqdm mako
#   pip download --no-deps -d .whl --python-version 3.X --only-binary=:all: sqlalchemy pyyaml greenlet
# for the device's Python 3.X):
#   run(command="bash benchmarks/gpu-search.sh", carry=[".gpu-data", ".whl"], timeout_s=540)
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
python3 -c "import optuna; print('optuna', optuna.__version__)" | tee -a "$OUT/device.txt"
start=$(date +%s.%N)
timeout 480 python3 -m tunebook run examples/fashion-mnist/08-search.toml --out /tmp/ms --device cuda \
  --concurrent 2 --quiet 2>&1 | tee "$OUT/search.txt"
end=$(date +%s.%N)
echo "search wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/search.txt"
cp -r /tmp/ms/08-search/report "$OUT/search-report" 2>/dev/null
python3 -m tunebook export /tmp/ms/08-search --optuna "$OUT/08-search.optuna.log" 2>&1 | tail -1
