"""Dev + zero-shot evaluation split over processes, measured on CPU: featurising time and host memory
of 1 vs 2 localhost processes (4 CPU devices in all), tiny random XLM-R, toy_cls and XQuAD-format QA in
en and de, with a cold feature cache. Runs tests/train/multihost_worker.py --evaluate (the two-process
test's worker) and prints one JSON object.

  PYTHONPATH=. python scripts/bench_eval_shares.py [--cls N] [--qa N] [--eval-batch-size 64] [--mesh data=4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "train"))


def main() -> int:
  p = argparse.ArgumentParser()
  p.add_argument("--cls", type=int, default=8000, help="toy_cls examples per dev / test split")
  p.add_argument("--qa", type=int, default=1500, help="QA questions per dev / test split")
  p.add_argument("--eval-batch-size", type=int, default=64)
  # Replicated parameters: no cross-process collective inside the forward pass, only the evaluation's own.
  p.add_argument("--mesh", default="data=4")
  args = p.parse_args()

  import test_multihost as mh

  from xtjax.tasks.synthetic import write_toy_data
  from xtjax.tiny import make_tiny_hf

  root = Path(tempfile.mkdtemp(prefix="xtjax-evalshares-"))
  make_tiny_hf(root / "hf", "xlm-roberta")
  write_toy_data(root / "data", n_train=20, n_eval=args.cls, languages=("en", "de"))
  mh._write_toy_squad(root / "data" / "qa", {("train", "en"): 8, ("dev", "en"): args.qa, ("test", "en"): args.qa,
                                             ("test", "de"): args.qa})
  report = {}
  for processes in (1, 2):
    results = mh._launch(root, root / f"p{processes}", f"eval{processes}", args.mesh, "--evaluate",
                         "--eval-batch-size", str(args.eval_batch_size), processes=processes)
    report[f"{processes}_process"] = [{
        "featurise_seconds": round(sum(s["seconds"] for s in r["shares"].values()), 2),
        "featurise_cpu_seconds": round(sum(s["cpu_seconds"] for s in r["shares"].values()), 2),
        "features_held_mb": round(sum(s["feature_mb"] for s in r["shares"].values()), 2),
        "examples_featurised": sum(len(s["examples"]) for s in r["shares"].values()),
        "eval_seconds": round(r["eval_seconds"], 2),
        "rss_growth_during_eval_mb": round(r["rss_after_eval_mb"] - r["rss_before_eval_mb"], 1),
        "max_rss_mb": round(r["max_rss_mb"], 1)} for r in results]
    report[f"{processes}_process_scores"] = results[0]["zero_shot"]
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
