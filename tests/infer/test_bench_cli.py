"""`xtjax bench infer|train|compare-torch` on tiny configs: valid JSON with every field, and the files."""

import csv
import dataclasses
import json

import pytest

from xtjax.cli.main import main
from xtjax.perf import flops as F
from xtjax.models import registry

TINY_ENCODER = ["--preset", "xlmr-bench-small", "--override", "num_layers=1", "--override", "hidden_size=32",
                "--override", "num_heads=2", "--override", "intermediate_size=64", "--override", "vocab_size=128"]
LATENCY = {"p50", "p90", "p99", "mean", "min"}


def _run_json(capsys, argv):
  assert main(argv) == 0
  return json.loads(capsys.readouterr().out)


def test_bench_infer_predict(tmp_path, capsys):
  r = _run_json(capsys, ["bench", "infer", *TINY_ENCODER, "--batch-sizes", "1,4", "--seq-lens", "16", "--iters", "3",
                         "--warmup", "1", "--devices", "1", "--json", "--out", str(tmp_path)])
  assert r["kind"] == "infer" and r["mode"] == "predict" and r["head_type"] == "classification"
  assert r["dtype"] == "float32" and r["device"]["platform"] == "cpu"
  assert r["compile"]["compilations"] == 2 and r["compile"]["seconds"] > 0
  assert [(x["batch_size"], x["seq_len"]) for x in r["compile"]["per_shape"]] == [(1, 16), (4, 16)]
  assert len(r["results"]) == 2
  for row in r["results"]:
    assert set(row["latency_ms"]) == LATENCY
    assert row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
    assert row["examples_per_s"] > 0 and row["tokens_per_s"] == pytest.approx(row["examples_per_s"] * 16)
    assert row["model_flops_per_step"] > 0 and row["achieved_flops_per_s"] > 0
  assert json.loads((tmp_path / "bench_infer.json").read_text()) == r
  with open(tmp_path / "bench_infer.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 and "latency_ms_p99" in rows[0]
  assert (tmp_path / "bench_infer.png").stat().st_size > 0


def test_bench_infer_generate(tmp_path, capsys):
  from t5_fixtures import make_tiny_t5

  # The shape of test_infer_engine's generate test, so that one of them reuses the other's program.
  folder = make_tiny_t5(tmp_path / "mt5", "mt5")
  r = _run_json(capsys, ["bench", "infer", "--model", str(folder), "--batch-sizes", "8", "--seq-lens", "64",
                         "--iters", "2", "--warmup", "1", "--max-new-tokens", "6", "--devices", "1", "--json"])
  assert r["mode"] == "generate" and r["max_new_tokens"] == 6 and r["family"] == "t5"
  (row,) = r["results"]
  assert set(row["time_to_first_token_ms"]) == LATENCY
  assert 8 <= row["new_tokens"] <= 8 * 6
  for k in ("generated_tokens_per_s", "decode_tokens_per_s", "examples_per_s", "tokens_per_s"):
    assert row[k] >= 0
  assert r["compile"]["compilations"] == 2  # max_new_tokens 6, and 1 for the time to first token


def test_bench_train(tmp_path, capsys, monkeypatch):
  import xtjax.train.program as train_program
  import xtjax.train.step as train_step

  built = []  # the trainer's own step (accumulation, NaN guard), not a benchmark-only one
  monkeypatch.setattr(train_program, "make_train_step",
                      lambda *a, **kw: built.append(kw) or train_step.make_train_step(*a, **kw))
  r = _run_json(capsys, ["bench", "train", *TINY_ENCODER, "--batch-size", "4", "--seq-len", "16", "--steps", "2",
                         "--warmup", "1", "--devices", "1", "--grad-accum-steps", "2", "--json",
                         "--out", str(tmp_path)])
  assert len(built) == 1 and built[0]["rng_impl"] == "threefry2x32"  # the trainer's default dropout PRNG
  assert r["grad_accum_steps"] == 2 and r["finite"] and r["rng_impl"] == "threefry2x32"
  for k in ("step_time_ms", "examples_per_s", "tokens_per_s", "model_flops_per_step", "achieved_flops_per_s",
            "peak_flops_per_s", "peak_source", "mfu", "compile_seconds", "final_loss", "rng_impl"):
    assert k in r, k
  assert set(r["step_time_ms"]) == LATENCY
  _, base = registry.preset("xlmr-bench-small")
  tiny = dataclasses.replace(base, num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64, vocab_size=128)
  assert r["model_flops_per_step"] == F.train_flops(tiny, 4, 16, "classification", 3)
  assert 0 < r["mfu"] < 1 and r["peak_source"].startswith("measured float32 matmul")
  assert r["tokens_per_s"] == pytest.approx(r["examples_per_s"] * 16)
  assert (tmp_path / "bench_train.json").exists() and (tmp_path / "bench_train.csv").exists()


def test_compare_torch(capsys):
  pytest.importorskip("torch")
  # The shapes of the two tests above, so that the jax side reuses their compiled programs (XLA cache).
  r = _run_json(capsys, ["bench", "compare-torch", *TINY_ENCODER[2:], "--batch-size", "4", "--seq-len", "16",
                         "--rounds", "2", "--train-steps", "1", "--infer-iters", "1", "--latency-iters", "2", "--json"])
  (res,) = r["results"]
  assert set(res["ratios"]) == {"train_examples_per_s", "infer_examples_per_s", "latency_batch1_p50"}
  for side in ("jax", "torch"):
    assert set(res[side]) == {"train_step_ms", "infer_ms", "latency_batch1_ms", "train_examples_per_s",
                              "infer_examples_per_s"}
  assert all(v > 0 for v in res["ratios"].values())


def test_flops_formula():
  _, cfg = registry.preset("xlmr-bench-small")
  L, D, F_, N = 128, 256, 1024, 4
  per_layer = 8 * L * D * D + 4 * L * L * D + 4 * L * D * F_
  assert F.encoder_forward_flops(cfg, L) == N * per_layer
  # Classification: the last layer computes the first token only (K, V over L; Q, O, scores, FFN over 1).
  first_only = 4 * L * D * D + 4 * D * D + 4 * L * D + 4 * D * F_
  assert F.forward_flops(cfg, 16, L, "classification", 3) == 16 * ((N - 1) * per_layer + first_only
                                                                   + 2 * D * D + 2 * D * 3)
  assert F.forward_flops(cfg, 16, L, "tagging", 3) == 16 * (N * per_layer + 2 * L * D * 3)
  assert F.train_flops(cfg, 16, L, "classification", 3) == 3 * F.forward_flops(cfg, 16, L, "classification", 3)
  _, t5 = registry.preset("mt5-small")
  assert F.encoder_forward_flops(t5, 64) > 0 and F.generate_flops(t5, 64, 16) > F.encoder_forward_flops(t5, 64)


def test_peak_table():
  class Dev:
    platform, device_kind = "tpu", "TPU v5 lite"

  assert F.peak_flops(Dev())[0] == 197e12
  Dev.platform, Dev.device_kind = "gpu", "NVIDIA H100 80GB HBM3"
  assert F.peak_flops(Dev())[0] == 989e12


def test_bench_infer_decoder_reports_tokens_per_second_and_time_to_first_token(tmp_path_factory, capsys):
  from decoder_fixtures import tiny_decoder_folder

  folder = tiny_decoder_folder(tmp_path_factory, "llama")
  r = _run_json(capsys, ["bench", "infer", "--model", str(folder), "--batch-sizes", "4", "--seq-lens", "32",
                         "--iters", "2", "--warmup", "1", "--max-new-tokens", "5", "--devices", "1", "--json"])
  assert r["mode"] == "generate" and r["family"] == "decoder" and r["max_new_tokens"] == 5
  (row,) = r["results"]
  assert set(row["time_to_first_token_ms"]) == LATENCY and 4 <= row["new_tokens"] <= 4 * 5
  assert row["generated_tokens_per_s"] > 0 and row["decode_tokens_per_s"] >= 0


def test_decoder_flops_formula():
  """Matmul FLOPs are 2 x (layer parameters) per token (no biases), plus 4*T*S*Q for attention."""
  from xtjax.models.init import abstract, count_params

  fam, cfg = registry.preset("llama-3.1-8b")
  _, state = abstract(fam, cfg)  # 32 layers: stored stacked, [32, ...] per layer parameter
  layer = count_params(state["layers"]["stacked"]) // cfg.num_layers - 2 * cfg.hidden_size  # minus the two RMSNorm scales
  T, S, Q = 16, 48, cfg.num_heads * cfg.head_dim
  assert cfg.layer_flops(T, S) == 2 * layer * T + 4 * T * S * Q
  head = 2 * cfg.hidden_size * cfg.vocab_size
  assert F.generate_flops(cfg, T, 4) == (cfg.num_layers * (cfg.layer_flops(T, T + 4)
                                                           + 3 * cfg.layer_flops(1, T + 4)) + 4 * head)
