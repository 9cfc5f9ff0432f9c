#!/bin/bash
# interleaved: realistic without set-aside, realistic with, plain
S=/work/main/bench/results/session-20261201f/scripts/run_report.sh
export OUT=/tmp/nf-g/ab REPO=/work/main
for i in 1 2 3; do
  NF_X_NO_SET_ASIDE=1 bash $S off-$i --profile realistic
  bash $S on-$i --profile realistic
  bash $S plain-$i --profile plain
done
