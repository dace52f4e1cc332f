#!/usr/bin/env bash
# Collect the splits of the given data sets into one run folder, for the leave-one-topic-out study
# (benchmarks/generalization.py). Resumable: rerun the same command and every question already stored
# is skipped; rerun with larger limits (or none) and the questions of the smaller ones are kept, since
# `--limit` picks by a hash of the id. Data set by data set (so each finished one is usable): test (with
# sample consistency on CONSISTENCY of its questions), val, train, then calib when no limit is set.
#
#   [TEST_LIMIT=N] [VAL_LIMIT=N] [TRAIN_LIMIT=N] [CONSISTENCY=25] [THREADS=1] [METALOOM=metaloom] \
#     benchmarks/collect_topics.sh MODEL RUN_DIR DATASET...
#   e.g. nice -n 10 benchmarks/collect_topics.sh smollm2-135m /work/runs/smollm2-135m countries elements
set -euo pipefail
MODEL=$1 RUN=$2
shift 2
CONSISTENCY=${CONSISTENCY:-25}
THREADS=${THREADS:-1}
METALOOM=${METALOOM:-metaloom}
limit() { if [ -n "$1" ]; then echo "--limit $1"; fi; }
for dataset in "$@"; do
  common=(--run "$RUN" --model "$MODEL" --dataset "$dataset" --threads "$THREADS")
  # shellcheck disable=SC2046
  $METALOOM collect "${common[@]}" --split test $(limit "${TEST_LIMIT:-}") --consistency "$CONSISTENCY"
  # shellcheck disable=SC2046
  $METALOOM collect "${common[@]}" --split val $(limit "${VAL_LIMIT:-}")
  # shellcheck disable=SC2046
  $METALOOM collect "${common[@]}" --split train $(limit "${TRAIN_LIMIT:-}")
  if [ -z "${TEST_LIMIT:-}${VAL_LIMIT:-}${TRAIN_LIMIT:-}" ]; then
    $METALOOM collect "${common[@]}" --split calib
  fi
done
