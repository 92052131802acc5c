#!/usr/bin/env bash
# Issues 21-23 on a lent GPU, one prepared run (about 8 minutes):
#  - 21: the search against the peer's Optuna loop on CUDA, 30 proposals (goal ≤ 1/20), then
#    with successive halving in both (tunebook's pruner = "halving", the peer's Optuna SH);
#  - 22: the CUDA variants of the norm / residual / schedule cases against the reference;
#  - 23: a user's CNN stacked with torch.func against the one-by-one loop, members 1-64.
# Carry the dataset, tomli-w and Optuna with its pure-Python dependencies (see gpu-search.sh):
#   run(command="bash benchmarks/gpu-issues-21-23.sh", carry=[".gpu-data", ".whl"], timeout_s=540)
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py -k "norms_skips" 2>&1 | tail -5 \
  | tee "$OUT/cuda-deep.txt"
timeout 150 python3 benchmarks/modules.py --device cuda --subset 20000 --members 1 4 16 64 2>&1 | tee "$OUT/modules.txt"
timeout 150 python3 benchmarks/search_vs_peer.py --device cuda --trials 30 --seeds 0 \
  --tunebook-args "--executor local --concurrent 2" 2>&1 | tee "$OUT/search-vs-peer.txt"
timeout 120 python3 benchmarks/search_vs_peer.py --device cuda --trials 30 --seeds 0 --pruner halving \
  --tunebook-args "--executor local --concurrent 2" 2>&1 | tee "$OUT/search-vs-peer-halving.txt"
