"""Zero-shot QA evaluation time per language: xtjax's evaluation path against a plain PyTorch loop.

A random XLM-R of multilingual-e5-small's shape (12 layers, hidden 384; tiny vocabulary, which does
not change the compute that matters) is trained for one step, then evaluated on XQuAD
(real data from ../shared/data/xquad) in every language present. With features cached and programs
compiled (second pass), it times per language:
  - xtjax: the whole zero-shot evaluation (forward on bucketed compiled programs + host post-processing),
  - xtjax forward only (the same programs, no post-processing),
  - transformers' XLMRobertaForQuestionAnswering forward in a `torch.no_grad()` loop, same windows and batch.
Prints the ratios. Run:  .venv/bin/python scripts/bench_zero_shot_vs_torch.py [--languages de,es,...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--languages", default="de,es,ru,zh,ar")
  p.add_argument("--eval-batch-size", type=int, default=32)
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--out", default=None, help="JSON results file")
  args = p.parse_args(argv)
  if not (DATA / "xquad").is_dir():
    print(f"needs {DATA / 'xquad'} (real XQuAD files)", file=sys.stderr)
    return 2
  import numpy as np
  import torch
  import transformers as tf
  import yaml

  from xtjax.evaluation.zero_shot import load_run_for_eval, task_features
  from xtjax.tiny import make_tiny_hf
  from xtjax.train.loop import train
  from xtjax import config as config_lib
  from xtjax.runs.schema import TrainConfig

  torch.set_num_threads(os.cpu_count() or 1)
  langs = args.languages.split(",")
  work = Path(tempfile.mkdtemp(prefix="xtjax-zs-bench-"))
  hf = make_tiny_hf(work / "hf", "xlm-roberta", hidden_size=384, num_hidden_layers=args.layers, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=514)
  conf = {"model": {"pretrained": str(hf)}, "steps": 1, "batch_size": 8, "eval_batch_size": args.eval_batch_size,
          "features": {"max_length": 384, "doc_stride": 128, "max_query_length": 64}, "zero_shot": False,
          "cache_dir": str(work / "cache"),
          # Training data only to make a run directory (one step): XQuAD en, small to featurise.
          "tasks": [{"name": "xquad", "data": {"files": {"train": str(DATA / "xquad/xquad.en.json"),
                                                          "dev": str(DATA / "xquad/xquad.en.json")}},
                     "eval_data": {"path": str(DATA / "xquad/xquad.{lang}.json")}, "eval_languages": langs}]}
  cfg = config_lib.from_dict(TrainConfig, conf, "bench")
  train(cfg, work / "run")
  (work / "run" / "bench.yaml").write_text(yaml.safe_dump(conf))

  model, rcfg, params = load_run_for_eval(work / "run", "xquad", langs)
  from xtjax.tasks import registry

  task, tcfg = registry.get("xquad"), rcfg.tasks[0]
  data = {lang: task_features(task, tcfg, tcfg.eval_split, lang, model.tokenizer, rcfg.features, work / "cache",
                              source=tcfg.eval_data) for lang in langs}
  torch_model = tf.XLMRobertaForQuestionAnswering.from_pretrained(str(hf)).eval()
  rows = []
  for rep in range(2):  # the first pass compiles; the second is timed
    for lang in langs:
      share = data[lang]
      feats = share.features
      t0 = time.perf_counter()
      model.evaluate(task, share, params, lang)
      t_all = time.perf_counter() - t0
      t0 = time.perf_counter()
      model.programs.head_outputs(model.graphdef, params, task.name, task.head_type, feats.arrays)
      t_fwd = time.perf_counter() - t0
      ids, mask = feats.arrays["input_ids"], feats.arrays["attention_mask"]
      t0 = time.perf_counter()
      with torch.no_grad():
        for i in range(0, len(ids), args.eval_batch_size):
          torch_model(input_ids=torch.from_numpy(np.asarray(ids[i:i + args.eval_batch_size], np.int64)),
                      attention_mask=torch.from_numpy(np.asarray(mask[i:i + args.eval_batch_size], np.int64)))
      t_torch = time.perf_counter() - t0
      if rep == 1:
        rows.append({"language": lang, "windows": len(ids), "xtjax_eval_s": t_all, "xtjax_forward_s": t_fwd,
                     "torch_forward_s": t_torch})
  print(f"{'lang':<6}{'windows':>8}{'xtjax eval s':>14}{'xtjax fwd s':>13}{'torch fwd s':>13}{'eval/torch':>12}"
        f"{'fwd/torch':>11}")
  for r in rows:
    print(f"{r['language']:<6}{r['windows']:>8}{r['xtjax_eval_s']:>14.2f}{r['xtjax_forward_s']:>13.2f}"
          f"{r['torch_forward_s']:>13.2f}{r['xtjax_eval_s'] / r['torch_forward_s']:>12.2f}"
          f"{r['xtjax_forward_s'] / r['torch_forward_s']:>11.2f}")
  tot = {k: sum(r[k] for r in rows) for k in ("xtjax_eval_s", "xtjax_forward_s", "torch_forward_s")}
  print(f"all   {sum(r['windows'] for r in rows):>8}{tot['xtjax_eval_s']:>14.2f}{tot['xtjax_forward_s']:>13.2f}"
        f"{tot['torch_forward_s']:>13.2f}{tot['xtjax_eval_s'] / tot['torch_forward_s']:>12.2f}"
        f"{tot['xtjax_forward_s'] / tot['torch_forward_s']:>11.2f}")
  if args.out:
    Path(args.out).write_text(json.dumps({"rows": rows, "totals": tot}, indent=2) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
