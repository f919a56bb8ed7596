#!/usr/bin/env bash
# Research sweep: intermediate-task epochs (1 vs 10) against zero-shot scores, then one table.
#   scripts/sweep_intermediate_epochs.sh [PIPELINE_CONFIG] [extra key=value overrides...]
# Default config: configs/phang2020/xlmr_large_mnli.yaml (needs a GPU/TPU host and the hub or a
# local data mirror). For an offline CPU smoke run: configs/tiny/pipeline.yaml after scripts/demo.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/_setup_env.sh"
CFG="${1:-$ROOT/configs/phang2020/xlmr_large_mnli.yaml}"
shift || true
NAME="$(basename "$CFG" .yaml)"
RUNS=()
for EPOCHS in 1 10; do
  W="$ROOT/runs/sweep-epochs/$NAME-e$EPOCHS"
  "$ROOT/.venv/bin/xtjax" pipeline "$CFG" --workdir "$W" "intermediate.train.epochs=$EPOCHS" "$@"
  RUNS+=("$W")
done
"$ROOT/.venv/bin/xtjax" report "${RUNS[@]}" --csv "$ROOT/runs/sweep-epochs/$NAME.csv"
