#!/usr/bin/env bash
# Run the fair transfer grid (configs/transfer_fair.yaml, issue #23) in an order that gives a complete answer to
# the main question first, on N parallel shards (default 2, one thread each). Resumable: rerun the same command
# and finished runs are skipped. Every stage writes into the same output folder with the same protocol hash
# (the --set overrides below change grid axes only, never the protocol).
#
#   nohup bash scripts/transfer_fair_stages.sh > runs/transfer_fair.log 2>&1 &
#
# Stages: 1. scratch, the two controls and age+sex pretraining on all source ECGs;
#         2. age and sex pretraining on all source ECGs;
#         3. age+sex pretraining on 1,000 and 6,500 source ECGs (the source-size axis);
#         4. the rest of the config's grid (age and sex at 1,000 / 6,500).
set -euo pipefail
N=${N:-2}
CONFIG=${CONFIG:-configs/transfer_fair.yaml}
stage() {
  echo "== stage $1 ($(date -u +%FT%TZ)): ${*:2}"
  local pids=()
  for i in $(seq 1 "$N"); do
    ecglens experiment transfer "$CONFIG" --shard "$i/$N" --quiet --no-figures "${@:2}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
stage 1 --set 'grid.pretrain_tasks=[none,age_sex]' --set 'source.sizes=[all]'
stage 2 --set 'grid.pretrain_tasks=[age,sex]' --set 'source.sizes=[all]'
stage 3 --set 'grid.pretrain_tasks=[age_sex]' --set 'source.sizes=[1000,6500]'
stage 4
ecglens experiment transfer "$CONFIG" --figures-only
echo "== done ($(date -u +%FT%TZ))"
