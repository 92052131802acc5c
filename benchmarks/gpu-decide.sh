#!/usr/bin/env bash
# Issue 9 on a lent GPU: the log's whole programme with --until-decided (up to 100 seeds
# per configuration, margin 0.003), timed, on CUDA; then a rerun that must train nothing.
# Target: >= 22 of the 26 hypotheses decided in <= 5 minutes of wall time.
# Expects the dataset in .gpu-data/ and tomli-w's wheel in .whl/ (both carried along):
#   run(command="bash benchmarks/gpu-decide.sh", carry=[".gpu-data", ".whl"], timeout_s=500)
set -uo pipefail
source "$(dirname "$0")/gpu-setup.sh"
start=$(date +%s.%N)
timeout 420 python3 -m tunebook run examples/fashion-mnist/ --out /tmp/md --device cuda --until-decided \
  --budget 6m --no-report --quiet 2>&1 | tee "$OUT/decide.txt"
end=$(date +%s.%N)
echo "decide wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/decide.txt"
python3 -m tunebook report /tmp/md > /dev/null 2>&1
cp /tmp/md/report/report.md "$OUT/combined-report.md" 2>/dev/null
python3 scripts/results_tables.py /tmp/md > "$OUT/tables.md" 2>&1
tar czf "$OUT/gpu-decide-runs.tgz" -C /tmp/md --exclude='events.out.tfevents.*' .
