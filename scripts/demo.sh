#!/usr/bin/env bash
# The main job, offline on CPU: set up .venv (idempotent), build a tiny random XLM-R checkpoint,
# convert it to xtjax, embed sentences with it, and export it back to a Hugging Face folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/_setup_env.sh" dev
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="$ROOT/.venv/bin/python"
XT="$ROOT/.venv/bin/xtjax"
OUT="${1:-$ROOT/runs/demo}"
mkdir -p "$OUT"
"$PY" -m xtjax.tiny --kind xlm-roberta --out "$OUT/hf-tiny-xlmr"
"$XT" convert --model "$OUT/hf-tiny-xlmr" --out "$OUT/xtjax-tiny-xlmr"
printf '%s\n' "The quick brown fox jumps over the lazy dog." \
  "Der schnelle braune Fuchs springt über den faulen Hund." \
  "El rápido zorro marrón salta sobre el perro perezoso." \
  "敏捷的棕色狐狸跳过了懒狗。" > "$OUT/sentences.txt"
"$XT" embed --model "$OUT/xtjax-tiny-xlmr" --input "$OUT/sentences.txt" --layer 1 --pooling mean --out "$OUT/emb.npy"
"$XT" export --model "$OUT/xtjax-tiny-xlmr" --out "$OUT/hf-export"
"$PY" - "$OUT" <<'PYEOF'
import sys
import numpy as np
e = np.load(sys.argv[1] + "/emb.npy")
e = e / np.linalg.norm(e, axis=1, keepdims=True)
print("embeddings", e.shape, "cosine similarity to the English sentence:", np.round(e @ e[0], 3).tolist())
PYEOF
