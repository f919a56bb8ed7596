#!/usr/bin/env bash
# xtjax vs transformers' PyTorch XLMRobertaForSequenceClassification on CPU, same sizes, one process.
#
# Both frameworks run in ONE Python process, in alternating rounds (jax first, then torch first),
# at the same precision: f32 vs f32, and xtjax bf16 compute vs torch bf16 autocast. Reported:
# training examples/s and inference examples/s at batch 16, batch-1 p50 latency, and the ratios
# xtjax / torch. Results go to $OUT/<dtype>/compare_torch.json.
#
#   scripts/bench_vs_torch.sh                      # preset xlmr-bench-small, f32 and bf16
#   DTYPE=float32 ROUNDS=8 scripts/bench_vs_torch.sh --seq-len 256
#
# Environment: DTYPE (float32 | bfloat16 | both, default both), ROUNDS (default 5), OUT (default
# runs/bench_vs_torch). Extra arguments go to `xtjax bench compare-torch` (see its --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/_setup_env.sh" dev,bench
cd "$ROOT"
export JAX_PLATFORMS=cpu
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
# One process per dtype: XLA:CPU's flags are per process and differ by dtype (xtjax/infer/xla_setup.py).
DTYPES="${DTYPE:-both}"
[ "$DTYPES" = both ] && DTYPES="float32 bfloat16"
for dt in $DTYPES; do
  "$ROOT/.venv/bin/python" -m xtjax bench compare-torch --preset xlmr-bench-small --batch-size 16 --seq-len 128 \
    --dtype "$dt" --rounds "${ROUNDS:-5}" --out "${OUT:-runs/bench_vs_torch}/$dt" "$@"
done
