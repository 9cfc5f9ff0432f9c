#!/bin/bash
# CPU of the worker processes (celery) and the sink every 0.5 s during one realistic run:
# how much the workers spend while the run waits for the end of Mozilla's hold.
# usage: cpu_timeline.sh LABEL [bench options]   (OUT from the environment)
OUT=${OUT:-/tmp/nf-bench}; mkdir -p "$OUT"
label=$1; shift
here=$(dirname "$0")
bash "$here/../../session-20261201f/scripts/run_report.sh" "$label" "$@" > "$OUT/$label.summary" &
run=$!
hz=$(getconf CLK_TCK)
while kill -0 $run 2>/dev/null; do
  now=$(date +%s.%N)
  w=0; for p in $(pgrep -f "newsflash.breaking,newsflash.routine"); do
    t=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null); w=$((w + ${t:-0})); done
  s=0; for p in $(pgrep -f "bench.sink --port"); do
    t=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null); s=$((s + ${t:-0})); done
  echo "$now $w $s $hz"
  sleep 0.5
done > "$OUT/$label.timeline"
cat "$OUT/$label.summary"
