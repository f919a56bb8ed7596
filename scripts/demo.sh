#!/usr/bin/env bash
# The main job, offline on CPU (a few minutes): set up .venv (idempotent); build a tiny random
# XLM-R checkpoint and tiny MNLI / XNLI / Tatoeba files in their upstream formats; convert, embed and
# export the model; then run the three-phase pipeline (pretrained -> intermediate MNLI -> target XNLI
# and Tatoeba) and print the zero-shot table; one text-to-text phase (tiny random mT5 on toy_cls,
# exact match against chance); then a tiny sweep (no intermediate task vs MNLI for 1
# or 3 epochs) and its paper-style report. Usage: scripts/demo.sh [OUT_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/_setup_env.sh" dev,bench
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
PY="$ROOT/.venv/bin/python"
XT="$ROOT/.venv/bin/xtjax"
OUT="$(mkdir -p "${1:-$ROOT/runs/demo}" && cd "${1:-$ROOT/runs/demo}" && pwd)"
cd "$ROOT"

echo "== 1. a tiny random XLM-R and tiny upstream-format data (offline)"
"$PY" -m xtjax.tiny --kind xlm-roberta --out "$OUT/hf-tiny-xlmr" --data "$OUT/data"

echo "== 2. import (strict mapping), embed, export back to Hugging Face"
"$XT" convert --model "$OUT/hf-tiny-xlmr" --out "$OUT/xtjax-tiny-xlmr"
printf '%s\n' "The quick brown fox jumps over the lazy dog." \
  "Der schnelle braune Fuchs springt über den faulen Hund." \
  "El rápido zorro marrón salta sobre el perro perezoso." > "$OUT/sentences.txt"
"$XT" embed --model "$OUT/xtjax-tiny-xlmr" --input "$OUT/sentences.txt" --layer 1 --pooling mean --out "$OUT/emb.npy"
"$XT" export --model "$OUT/xtjax-tiny-xlmr" --out "$OUT/hf-export"

echo "== 3. pipeline: pretrained -> intermediate MNLI -> target XNLI, Tatoeba -> zero-shot"
sed "s#runs/demo#$OUT#g" "$ROOT/configs/tiny/pipeline.yaml" > "$OUT/pipeline.yaml"
"$XT" pipeline "$OUT/pipeline.yaml" --workdir "$OUT/pipeline"

echo "== 3b. text-to-text: a tiny random mT5 learns toy_cls as text (Adafactor), scored by generation"
"$PY" -m xtjax.tiny --kind mt5 --out "$OUT/hf-tiny-mt5"
sed "s#runs/demo#$OUT#g" "$ROOT/configs/tiny/mt5_t2t.yaml" > "$OUT/mt5_t2t.yaml"
"$XT" train "$OUT/mt5_t2t.yaml" --workdir "$OUT/mt5-t2t"
"$PY" - "$OUT/mt5-t2t/summary.json" <<'PYEOF'
import json, math, sys
dev = json.load(open(sys.argv[1]))["best"]["dev"]["toy_cls_t2t"]
n = 64  # dev examples, half "yes" and half "no" (xtjax.tasks.synthetic.write_toy_data)
k = round(dev["accuracy"] * n / 100)
p = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n
print(f"text-to-text dev exact-match accuracy {dev['accuracy']:.1f}% ({k}/{n}; {dev['invalid_outputs']:.1f}% outputs "
      f"outside yes/no); chance 50% (guessing yes/no), P(>= {k}/{n} by chance) = {p:.1e}")
PYEOF

echo "== 4. sweep: no intermediate task vs MNLI for 1 or 3 epochs -> XNLI, Tatoeba; the paper-style report"
mkdir -p "$OUT/experiments"
sed "s#\.\./tiny/pipeline.yaml#../pipeline.yaml#" "$ROOT/configs/experiments/tiny.yaml" > "$OUT/experiments/tiny.yaml"
"$XT" sweep "$OUT/experiments/tiny.yaml" --workdir "$OUT/sweep" "defaults.cache_dir=$OUT/.feature_cache"
"$XT" report "$OUT/sweep"
