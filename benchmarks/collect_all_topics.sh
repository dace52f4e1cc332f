#!/usr/bin/env bash
# The whole collect behind benchmarks/generalization.py for one model, in two passes over every topic:
# first a small hash-picked sample of each split (test 40 with consistency on 25, val 20, train 50), so
# that leave-one-topic-out can run early, then every question of every split. Resumable: rerun the same
# command after an interruption and every stored question is skipped.
#
#   nice -n 15 benchmarks/collect_all_topics.sh MODEL RUN_DIR      # e.g. qwen2.5-coder-1.5b /work/runs/qwen2.5-coder-1.5b
set -euo pipefail
MODEL=$1 RUN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
TOPICS=(countries elements us-states world-cities airports calling-codes country-codes currencies languages
        roman-numerals number-words arithmetic calendar provinces emoji open-ended conversations)
TEST_LIMIT=40 VAL_LIMIT=20 TRAIN_LIMIT=50 CONSISTENCY=25 "$HERE/collect_topics.sh" "$MODEL" "$RUN" "${TOPICS[@]}"
CONSISTENCY=25 "$HERE/collect_topics.sh" "$MODEL" "$RUN" "${TOPICS[@]}"
