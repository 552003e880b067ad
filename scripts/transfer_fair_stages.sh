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
#         4. the rest of the config's grid (age and sex at 1,000 / 6,500): only with STAGE4=1. Decided on
#            2026-12-06, before any fold-9 score was read, to fit the CPU budget (stage 4 is ~40 % of the grid's
#            CPU time); the source-size question is answered for age+sex pretraining (stage 3).
#
# Targets: MI only by default (TARGETS=MI,acute_mi adds acute MI; the protocol lists both). Decided on
# 2026-12-06, before any fold-9 score was read, from the training side alone: at 1.5 % prevalence the target
# draws of 100 / 500 ECGs held 0-5 acute-MI positives (and 0-1 in the inner validation split), too few to train
# or to select on; see docs/transfer.md. The acute-MI runs finished before that decision stay in results.csv.
#
# STAGES (default "1 2 3") picks stages: configs/transfer_fair_acute.yaml (acute MI, case-control draws, all
# source ECGs only) runs with CONFIG=configs/transfer_fair_acute.yaml OUT=runs/transfer_fair_acute
# STATE=docs/data/transfer_fair_acute TARGETS=acute_mi STAGES="1 2".
#
# The finished runs are carried between machines in $STATE (default docs/data/transfer_fair, committed: results,
# protocol and test predictions, no checkpoints; scripts/transfer_fair_state.py): a fresh checkout restores them
# into $OUT before it starts, and every stage packs the runs it finished. `bash scripts/transfer_fair_stages.sh
# pack` packs now (e.g. before a machine is given back in the middle of a stage).
set -euo pipefail
N=${N:-2}
CONFIG=${CONFIG:-configs/transfer_fair.yaml}
OUT=${OUT:-runs/transfer_fair}
STATE=${STATE:-docs/data/transfer_fair}
PY=${PY:-python}
pack() { "$PY" scripts/transfer_fair_state.py pack "$OUT" "$STATE"; }
if [ "${1:-}" = pack ]; then pack; exit 0; fi
if [ -f "$STATE/results.csv" ]; then "$PY" scripts/transfer_fair_state.py restore "$STATE" "$OUT"; fi
stage() {
  echo "== stage $1 ($(date -u +%FT%TZ)): ${*:2}"
  local pids=()
  for i in $(seq 1 "$N"); do
    ecglens experiment transfer "$CONFIG" --out "$OUT" --shard "$i/$N" --quiet --no-figures \
      --targets "${TARGETS:-MI}" "${@:2}" &
    pids+=($!)
  done
  # pack every PACK_EVERY seconds while the stage runs, so that a machine lost mid-stage loses little
  ( while sleep "${PACK_EVERY:-900}"; do pack || true; done ) &
  local packer=$!
  for p in "${pids[@]}"; do wait "$p"; done
  kill "$packer" 2>/dev/null || true
  pack
}
STAGES=" ${STAGES:-1 2 3} "
want() { [[ $STAGES == *" $1 "* ]]; }
if want 1; then stage 1 --set 'grid.pretrain_tasks=[none,age_sex]' --set 'source.sizes=[all]'; fi
if want 2; then stage 2 --set 'grid.pretrain_tasks=[age,sex]' --set 'source.sizes=[all]'; fi
if want 3; then stage 3 --set 'grid.pretrain_tasks=[age_sex]' --set 'source.sizes=[1000,6500]'; fi
if [ "${STAGE4:-0}" = 1 ]; then stage 4; fi
ecglens experiment transfer "$CONFIG" --out "$OUT" --figures-only
echo "== done ($(date -u +%FT%TZ))"
