#!/usr/bin/env bash
# Collect the splits of the given data sets into one run folder, for the leave-one-topic-out study
# (benchmarks/generalization.py). Resumable: rerun the same command and every question already stored
# is skipped; rerun with larger limits (or none) and the questions of the smaller ones are kept, since
# `--limit` picks by a hash of the id. Order: test (sample consistency on CONSISTENCY questions per data
# set), val, train, then calib when no limit is set.
#
#   [TEST_LIMIT=N] [VAL_LIMIT=N] [TRAIN_LIMIT=N] [CONSISTENCY=30] [THREADS=1] \
#     benchmarks/collect_topics.sh MODEL RUN_DIR DATASET...
#   e.g. nice -n 10 benchmarks/collect_topics.sh smollm2-135m /work/runs/smollm2-135m countries elements
set -euo pipefail
MODEL=$1 RUN=$2
shift 2
CONSISTENCY=${CONSISTENCY:-30}
THREADS=${THREADS:-1}
METALOOM=${METALOOM:-metaloom}
limit() { [ -n "$1" ] && echo "--limit $1" || true; }
for dataset in "$@"; do
  # shellcheck disable=SC2046
  $METALOOM collect --run "$RUN" --model "$MODEL" --dataset "$dataset" --split test $(limit "${TEST_LIMIT:-}") \
    --consistency "$CONSISTENCY" --threads "$THREADS"
  # shellcheck disable=SC2046
  $METALOOM collect --run "$RUN" --model "$MODEL" --dataset "$dataset" --split val $(limit "${VAL_LIMIT:-}") --threads "$THREADS"
done
for dataset in "$@"; do
  # shellcheck disable=SC2046
  $METALOOM collect --run "$RUN" --model "$MODEL" --dataset "$dataset" --split train $(limit "${TRAIN_LIMIT:-}") --threads "$THREADS"
done
if [ -z "${TEST_LIMIT:-}${VAL_LIMIT:-}${TRAIN_LIMIT:-}" ]; then
  for dataset in "$@"; do
    $METALOOM collect --run "$RUN" --model "$MODEL" --dataset "$dataset" --split calib --threads "$THREADS"
  done
fi
