#!/usr/bin/env bash
# Issue 12 on a lent GPU: the width grid (80 trials) end to end through each executor on
# one H200 — local, local --concurrent 2/4, process --workers 2/3/4 on the one GPU (all
# on cuda:0), and Ray --workers 2/4 (fractional GPUs) when Ray is importable there.
# Ray's wheel (~79 MB) does not fit the device tool's 64 MiB carry, so on this workplace's
# machines the Ray rows are skipped with a note; the rest needs only the dataset and tomli-w:
#   run(command="bash benchmarks/gpu-scale.sh", carry=[".gpu-data", ".whl"], timeout_s=540)
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
executors=local,process
if python3 -c "import ray" 2>/dev/null; then executors=local,process,ray; else
  echo "ray: not importable on this machine; Ray rows skipped" | tee -a "$OUT/scale.txt"; fi
timeout 500 python3 benchmarks/executors.py --device cuda:0 --executors "$executors" --workers 2,3,4 \
  --concurrent 2,4 --no-pad 2>&1 | tee -a "$OUT/scale.txt"
