"""`xtjax plan`: slice names, the whole command on 8 fake CPU devices, golden shardings, libtpu AOT."""

import ast
import dataclasses
import importlib.util
import json

import jax
import numpy as np
import pytest

from xtjax.cli.main import main
from xtjax.errors import ConfigError
from xtjax.parallel import topology
from xtjax.parallel.mesh import MeshConfig, make_mesh

TINY = ["model.config_overrides={num_layers: 2, hidden_size: 32, num_heads: 4, intermediate_size: 64, "
        "vocab_size: 64, max_position_embeddings: 40}", "features.max_length=16", "batch_size=16",
        "eval_batch_size=8", "optim.grad_accum_steps=2"]


@pytest.mark.parametrize("name,grid", [("v4-8", (2, 2, 1)), ("v4-32", (2, 2, 4)), ("v4-128", (4, 4, 4)),
                                       ("v5p-64", (2, 4, 4)), ("v5e-16", (4, 4)), ("v5e-256", (16, 16)),
                                       ("v6e-64", (8, 8)), ("v4:2x2x2", (2, 2, 2)), ("cpu:8", (8,))])
def test_slice_names_give_cloud_tpu_grids(name, grid):
  assert topology.parse(name).grid == grid


@pytest.mark.parametrize("name", ["v4-12", "v5e-3", "v4:2x2", "tpu-8", "v4-7"])
def test_bad_slice_names_are_one_line_errors(name):
  with pytest.raises(ConfigError, match="--topology"):
    topology.parse(name)


def test_dcn_data_groups_consecutive_devices_into_slices():
  mesh = make_mesh(MeshConfig(data=2, fsdp=4, dcn_data=2), devices=jax.devices()[:8])
  ids = np.vectorize(lambda d: d.id)(mesh.devices)
  assert ids[0].ravel().tolist() == [0, 1, 2, 3] and ids[1].ravel().tolist() == [4, 5, 6, 7]
  with pytest.raises(ConfigError, match="mesh.dcn_data"):
    make_mesh(MeshConfig(data=1, fsdp=8, dcn_data=2), devices=jax.devices()[:8])


# Golden specs of the tiny encoder on data=1 x fsdp=4 x tensor=2 (DEFAULT_RULES): a change here is a
# change of how every real model is sharded.
GOLDEN = {
    "encoder/embeddings/word": ("('tensor', 'fsdp')", 8),
    "encoder/embeddings/position": ("(None, 'fsdp')", 4),
    "encoder/embeddings/norm/scale": ("()", 1),
    "encoder/layers/0/attention/query": ("('fsdp', 'tensor')", 8),
    "encoder/layers/0/attention/query_bias": ("('tensor',)", 2),
    "encoder/layers/0/attention/out": ("('tensor', None, 'fsdp')", 8),
    "encoder/layers/0/intermediate/kernel": ("('fsdp', 'tensor')", 8),
    "encoder/layers/0/output/kernel": ("('tensor', 'fsdp')", 8),
    "encoder/layers/1/output_norm/bias": ("()", 1),
    "heads/mnli/out/kernel": ("('fsdp',)", 4),
}


@pytest.fixture(scope="module")
def cpu_plan():
  import contextlib
  import io

  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    rc = main(["plan", "--preset", "xlmr-bench-small", "--topology", "cpu:8", "--json", *TINY,
               "mesh.fsdp=4", "mesh.tensor=2"])
  assert rc == 0
  return json.loads(out.getvalue())


def test_plan_on_cpu_reports_memory_flops_and_shardings(cpu_plan):
  r = cpu_plan
  assert r["devices"] == 8 and r["mesh"] == {"data": 1, "fsdp": 4, "tensor": 2}
  assert [p["name"] for p in r["programs"]] == ["train_step", "eval_step"]
  train = r["programs"][0]
  assert train["argument_bytes"] > 0 and train["temp_bytes"] > 0 and train["flops"] > 0
  assert train["compile_cpu_seconds"] > train["lower_cpu_seconds"] > 0
  assert train["alias_bytes"] > 0  # the donated state is updated in place
  assert r["hbm_bytes"] is None and r["fits"] is None  # fake CPU devices have no HBM to check against
  per = r["per_device"]
  assert per["params"] > 0 and per["optimizer_state"] >= 2 * per["params"]  # Adam's two moments
  assert r["flops_per_device"]["analytic"] > 0 and r["step_seconds_at_mfu"] is None
  specs = {row["path"]: (row["spec"], row["shards"]) for row in r["shardings"]}
  assert {k: specs[k] for k in GOLDEN} == GOLDEN


def test_plan_rejects_a_batch_the_mesh_cannot_split():
  with pytest.raises(ConfigError, match="not divisible by the 8 data-parallel devices"):
    from xtjax.cli.plan_cmd import load_plan_config
    from xtjax.train.plan import plan

    plan(load_plan_config(None, TINY + ["batch_size=12", "optim.grad_accum_steps=1"], "xlmr-bench-small"),
         topology.parse("cpu:8"))


def test_plan_text_names_replicated_parameters(capsys):
  from xtjax.cli.plan_cmd import format_plan

  row = {"path": "encoder/x/bias", "shape": [4], "dtype": "float32", "spec": "()", "shards": 1, "bytes_per_device": 16}
  r = {"model": "encoder", "num_params": 4, "trained_params": 4, "task": "mnli", "head_type": "classification",
       "batch_size": 8, "max_length": 16, "grad_accum_steps": 1, "dtype": "float32", "param_dtype": "float32", "topology": "v4-8",
       "devices": 4, "num_slices": 1, "mesh": {}, "per_device": {"total": 2 ** 30}, "hbm_bytes": 32 * 2 ** 30,
       "fits": False, "headroom": 0.9, "chip_source": "src", "programs": [],
       "flops_per_device": {"analytic": 1.0, "compiled": 2.0}, "step_seconds_at_mfu": None, "shardings": [row]}
  text = format_plan(r)
  assert "does NOT fit" in text and "REPLICATED" in text


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_plan_compiles_for_a_described_tpu_slice(monkeypatch):
  """Real TPU programs from this CPU machine: one v4 slice of 4 chips, and two of them over DCN."""
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another plan may hold libtpu's lock file
  from xtjax.cli.plan_cmd import add_estimates, load_plan_config
  from xtjax.train.plan import plan

  cfg = load_plan_config(None, TINY, "xlmr-bench-small")
  r = add_estimates(plan(cfg, topology.parse("v4-8"), compile_eval=False))
  assert r["devices"] == 4 and r["fits"] is True and r["hbm_bytes"] == 32 * 2 ** 30
  assert r["programs"][0]["temp_bytes"] > 0 and r["step_seconds_at_mfu"]["50%"] > 0
  cfg = load_plan_config(None, TINY + ["mesh.data=2", "mesh.fsdp=-1"], "xlmr-bench-small")
  r = plan(cfg, topology.parse("v4-8", num_slices=2), compile_eval=False)
  assert r["devices"] == 8 and r["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1} and r["num_slices"] == 2
  # mT5-XXL's weights, Adam moments and gradients alone (16 bytes a parameter) overflow 4 v4 chips (the whole
  # model: a text-to-text task; a classifier leaves the decoder out, tests/train/test_unused_parts.py).
  r = plan(load_plan_config(None, ["tasks=[{name: mnli_t2t}]"], "mt5-xxl"), topology.parse("v4-8"),
           compile_train=False)
  assert r["fits"] is False and r["per_device"]["total"] > 32 * 2 ** 30


def test_plan_reads_a_pipeline_phase():
  from pathlib import Path

  from xtjax.cli.plan_cmd import load_plan_config

  path = str(Path(__file__).resolve().parents[2] / "configs" / "phang2020" / "xlmr_large_mnli.yaml")
  cfg = load_plan_config(path, ["mesh.fsdp=-1", "mesh.data=1"], "xlmr-large", "intermediate-mnli")
  assert [t.name for t in cfg.tasks] == ["mnli"] and cfg.optim.grad_accum_steps == 4
  assert cfg.model.preset == "xlmr-large" and cfg.model.pretrained is None and cfg.init_from is None
  with pytest.raises(ConfigError, match="--phase"):
    load_plan_config(path, [], "xlmr-large")
  with pytest.raises(ConfigError, match="no phase 'nope'"):
    load_plan_config(path, [], "xlmr-large", "nope")


def test_plan_reports_stacked_layers_sharded_like_per_layer_ones():
  """With `scan_layers` the report lists one [N, ...] tensor per layer parameter, its leading `layers` axis
  unsharded and the rest split over as many devices as the per-layer tensor (GOLDEN)."""
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.train.plan import plan

  tiny = [TINY[0].replace("num_layers: 2,", "num_layers: 2, scan_layers: true,")] + TINY[1:]
  r = plan(load_plan_config(None, tiny + ["mesh.fsdp=4", "mesh.tensor=2"], "xlmr-bench-small"),
           topology.parse("cpu:8"), compile_train=False)
  specs = {row["path"]: (row["spec"], row["shards"], row["shape"][0]) for row in r["shardings"]}
  for path, (spec, shards) in GOLDEN.items():
    if "/layers/" in path:
      stacked = path.replace("/layers/0/", "/layers/stacked/").replace("/layers/1/", "/layers/stacked/")
      per_layer = ast.literal_eval(spec)
      assert specs[stacked] == (str((None,) + per_layer) if per_layer else "()", shards, 2), stacked


def test_memory_only_plan_compiles_nothing():
  from xtjax.cli.plan_cmd import add_estimates, load_plan_config
  from xtjax.train.plan import plan

  r = add_estimates(plan(load_plan_config(None, TINY, "xlmr-bench-small"), topology.parse("cpu:8"), compile_train=False))
  per = r["per_device"]
  assert r["programs"] == [] and per["activations_and_temporaries"] is None and r["fits"] is None
  assert per["total"] == 2 * per["params"] + per["optimizer_state"] and r["flops_per_device"]["compiled"] is None


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_plan_of_the_mt5_xxl_text_to_text_phase_memory_only(monkeypatch):
  """`xtjax plan configs/mt5/mt5_xxl_mnli.yaml --phase intermediate-mnli --preset mt5-xxl --memory-only`:
  the teacher-forced train step counts encoder and decoder FLOPs; the state shrinks with the slice."""
  from pathlib import Path

  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # another plan may hold libtpu's lock file

  from xtjax.cli.plan_cmd import add_estimates, format_plan, load_plan_config
  from xtjax.perf import flops
  from xtjax.train.plan import plan

  path = str(Path(__file__).resolve().parents[2] / "configs" / "mt5" / "mt5_xxl_mnli.yaml")
  cfg = load_plan_config(path, [], "mt5-xxl", "intermediate-mnli")
  assert cfg.optim.optimizer == "adafactor" and [t.name for t in cfg.tasks] == ["mnli_t2t"]
  small, large = (add_estimates(plan(cfg, topology.parse(t), compile_train=False)) for t in ("v4-8", "v4-32"))
  assert small["head_type"] == "text_to_text" and small["max_target_length"] == 8 and 12e9 < small["num_params"] < 14e9
  assert small["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and large["devices"] == 16
  enc = small["encoder_config"]
  per_example = flops.encoder_forward_flops(enc, 256) + enc.target_flops(8, 256)
  assert small["flops_per_device"]["analytic"] == 3 * 4096 * per_example / 4
  assert enc.target_flops(8, 256) > 0.05 * flops.encoder_forward_flops(enc, 256)
  # f32 weights and gradients (8 bytes a parameter) over 4 chips are ~24 GiB before activations;
  # Adafactor's factored statistics (attention kernels included, as mT5's matrices) are ~20 MiB.
  assert small["per_device"]["total"] > 24 * 2 ** 30 and small["per_device"]["optimizer_state"] < 0.1 * 2 ** 30
  np.testing.assert_allclose(large["per_device"]["total"], small["per_device"]["total"] / 4, rtol=0.01)
  assert "-> 8 target tokens" in format_plan(small)


@pytest.mark.slow
def test_search_picks_a_fitting_mesh_per_remat_policy_and_the_largest_batch():
  """On 8 fake CPU devices with an HBM budget between the tiny model's peaks at batch 16 and 32."""
  from xtjax.cli.plan_cmd import format_search, load_plan_config
  from xtjax.train import plan_search
  from xtjax.train.plan import plan

  cfg = load_plan_config(None, TINY + ["optim.grad_accum_steps=1"], "xlmr-bench-small")
  cpu = topology.parse("cpu:8")
  peaks = {b: plan(dataclasses.replace(cfg, batch_size=b), cpu, compile_eval=False)["per_device"]["total"]
           for b in (16, 32)}
  assert peaks[32] > peaks[16]
  hbm = (peaks[16] + peaks[32]) / 2 / 0.9  # per-device batch 2 fits on fsdp=8, 4 does not
  found = plan_search.search(cfg, cpu, remats=("none", "full"), meshes=[(1, 8, 1), (2, 4, 1)], hbm_bytes=hbm,
                             bandwidth=1e11, peak=1e12)
  rows = {row["remat"]: row for row in found["policies"]}
  for row in rows.values():  # (XLA:CPU's peaks for so tiny a model barely depend on the policy)
    fitting = [c for c in row["candidates"] if c["fits"]]
    assert row["best"]["examples_per_second"] == max(c["examples_per_second"] for c in fitting)
  assert rows["full"]["best"]["step_seconds"] > rows["none"]["best"]["step_seconds"]  # recomputation costs time
  best = found["best"]
  assert best["fits"] and best["peak_bytes"] <= 0.9 * hbm
  assert best["examples_per_second"] == max(r["best"]["examples_per_second"] for r in rows.values() if r["best"]["fits"])
  lb = found["largest_batch"]
  n_data = best["mesh"]["data"] * best["mesh"]["fsdp"]
  assert lb["per_device"] >= 2 and lb["global"] == lb["per_device"] * n_data and lb["peak_bytes"] <= 0.9 * hbm
  m = best["mesh"]
  over = plan_search._with(cfg, (m["data"], m["fsdp"], m["tensor"]), best["remat"], (lb["per_device"] + 1) * n_data)
  assert plan(over, cpu, compile_eval=False)["per_device"]["total"] > 0.9 * hbm
  assert "largest per-device batch that fits" in format_search(found)


def test_mesh_shapes_and_communication_estimate():
  from xtjax.train import plan_search

  assert sorted(plan_search.mesh_shapes(4)) == [(1, 1, 4), (1, 2, 2), (1, 4, 1), (2, 1, 2), (2, 2, 1), (4, 1, 1)]
  from xtjax.models.registry import preset

  enc = preset("xlmr-large")[1]
  # FSDP alone over 8 devices: two bf16 gathers and one f32 reduce-scatter of 7/8 of the weights.
  assert plan_search.comm_seconds(enc, 1000, (1, 8, 1), 32, 128, 1.0, 24) == pytest.approx((2 * 2000 + 4000) * 7 / 8)
  assert plan_search.comm_seconds(enc, 1000, (1, 1, 1), 32, 128, 1.0, 24) == 0.0
  # Tensor parallelism: two bf16 all-reduces of [B, L, D] a layer forward and two backward (ring: 2 (t-1)/t).
  assert plan_search.comm_seconds(enc, 1000, (1, 1, 2), 32, 128, 1.0, 24) == pytest.approx(
      4 * 24 * 2 * (2 * 32 * 128 * 1024) / 2 + 0)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="libtpu is not installed (the `tpu` extra)")
def test_remat_table_shows_what_each_policy_saves(monkeypatch):
  """`xtjax plan --remat-table` on a described v4-8: recomputing each layer (`full`) keeps fewer temporaries
  than keeping every activation (`none`), and the table says by how much."""
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
  monkeypatch.setenv("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from xtjax.cli.plan_cmd import format_remat_table, load_plan_config
  from xtjax.train.plan_search import remat_table

  tiny = [TINY[0].replace("num_layers: 2,", "num_layers: 4, scan_layers: true,")] + TINY[1:]
  r = remat_table(load_plan_config(None, tiny + ["optim.grad_accum_steps=1"], "xlmr-bench-small"),
                  topology.parse("v4-8"), remats=("none", "full"))
  rows = {row["remat"]: row for row in r["policies"]}
  assert rows["none"]["saved_bytes"] == 0 and rows["full"]["temp_bytes"] < rows["none"]["temp_bytes"]
  assert rows["full"]["saved_bytes"] == rows["none"]["peak_bytes"] - rows["full"]["peak_bytes"] > 0
  assert r["devices"] == 4 and rows["full"]["fits"] is True
  assert "saved vs none" in format_remat_table(r)


_LOWER_T5 = """
import sys
from xtjax.cli.plan_cmd import load_plan_config
from xtjax.parallel import topology
from xtjax.train.plan import train_program_hash
cfg = load_plan_config(sys.argv[1], sys.argv[2:], "mt5-small", "intermediate-mnli")
assert cfg.optim.optimizer == "adafactor"
print(train_program_hash(cfg, topology.parse("cpu:8")))
"""


@pytest.mark.slow
def test_the_train_step_lowers_to_one_program_whatever_the_hash_seed(tmp_path):
  """Processes with other PYTHONHASHSEEDs lower a stacked mT5 + Adafactor train step (per-layer optimizer
  groups: one per stack depth and the rest) to the same StableHLO: else the persistent compilation cache
  misses across restarts and scale_table's compiled cells go stale at random."""
  import os
  import subprocess
  import sys
  from pathlib import Path

  root = Path(__file__).resolve().parents[2]
  overrides = ["model.config_overrides={num_layers: 3, num_decoder_layers: 2, d_model: 32, d_kv: 8, d_ff: 64, "
               "num_heads: 4, vocab_size: 64, scan_layers: true}", "features.max_length=16",
               "features.max_target_length=8", "batch_size=8", "eval_batch_size=8", "optim.grad_accum_steps=1"]
  hashes = set()
  for seed in ("1", "2", "3", "4"):  # set orders of 3 labels differ between most of these seeds
    env = {**os.environ, "PYTHONHASHSEED": seed, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", _LOWER_T5, str(root / "configs" / "mt5" / "mt5_xxl_mnli.yaml"),
                          *overrides], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    hashes.add(out.stdout.split()[-1])
  assert len(hashes) == 1, hashes


OOM = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO temporaries (51.23G) "
       "exceeds available HBM (30.75G).\nmore detail")


def _refuse_train_step(monkeypatch, message=OOM):
  """The compiler refuses the train step as libtpu refuses a program larger than HBM; eval compiles."""
  from jax.errors import JaxRuntimeError

  compile_ = jax.stages.Lowered.compile

  def refuse(self, *a, **k):
    if not refuse.done:  # the first program `plan` compiles is the train step
      refuse.done = True
      raise JaxRuntimeError(message)
    return compile_(self, *a, **k)

  refuse.done = False
  monkeypatch.setattr(jax.stages.Lowered, "compile", refuse)


def test_a_plan_the_compiler_refuses_answers_does_not_fit(monkeypatch, capsys):
  """`xtjax plan` of a step larger than HBM: exit 0, `fits: false` and the refusal's figures, never a crash."""
  _refuse_train_step(monkeypatch)
  assert main(["plan", "--preset", "xlmr-bench-small", "--topology", "cpu:8", "--json", *TINY]) == 0
  r = json.loads(capsys.readouterr().out)
  assert r["fits"] is False and r["programs"] == []
  assert r["overflow"] == {"name": "train_step", "needed": "temporaries", "needed_bytes": 51.23 * 2 ** 30,
                           "available_bytes": 30.75 * 2 ** 30, "message": OOM.splitlines()[0]}
  per = r["per_device"]
  assert per["activations_and_temporaries"] == 51.23 * 2 ** 30
  assert per["total"] == per["params"] + per["optimizer_state"] + 51.23 * 2 ** 30

  _refuse_train_step(monkeypatch)
  assert main(["plan", "--preset", "xlmr-bench-small", "--topology", "cpu:8", *TINY]) == 0
  out = capsys.readouterr()
  assert ("does not fit: train_step needs 51.23 GiB of temporaries against 30.75 GiB HBM per device\n" in out.out
          and "error" not in out.err)


def test_other_compile_errors_still_raise(monkeypatch):
  from jax.errors import JaxRuntimeError

  from xtjax.parallel import plan as aot

  o = aot.hbm_overflow("train_step", "RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in "
                                     "memory space hbm. Used 40.12G of 30.75G hbm. Exceeded hbm capacity by 9.37G.")
  assert (o.needed, o.needed_bytes, o.available_bytes) == ("peak", 40.12 * 2 ** 30, 30.75 * 2 ** 30)
  assert o.text() == "does not fit: train_step needs 40.12 GiB at its peak against 30.75 GiB HBM per device"
  assert aot.hbm_overflow("train_step", "INTERNAL: something else") is None
  _refuse_train_step(monkeypatch, "INTERNAL: something else")
  from xtjax.cli.plan_cmd import load_plan_config
  from xtjax.train.plan import plan

  with pytest.raises(JaxRuntimeError, match="INTERNAL"):
    plan(load_plan_config(None, TINY, "xlmr-bench-small"), topology.parse("cpu:8"))


def test_remat_table_lists_a_refused_policy(monkeypatch):
  """A policy whose step the compiler refuses is a row that does not fit, with the refusal's temporaries."""
  from xtjax.cli.plan_cmd import format_remat_table, load_plan_config
  from xtjax.train.plan_search import remat_table

  _refuse_train_step(monkeypatch)
  r = remat_table(load_plan_config(None, TINY + ["optim.grad_accum_steps=1"], "xlmr-bench-small"),
                  topology.parse("cpu:8"), remats=("none", "full"))
  rows = {row["remat"]: row for row in r["policies"]}
  assert rows["none"]["fits"] is False and rows["none"]["temp_bytes"] == 51.23 * 2 ** 30
  assert rows["none"]["compile_cpu_seconds"] is None and rows["full"]["fits"] is None
  assert "refused" in format_remat_table(r).splitlines()[2]


def test_search_meshes_are_parsed_and_checked_against_the_slice(capsys):
  from xtjax.cli.plan_cmd import _meshes

  v4_32 = topology.parse("v4-32")
  assert _meshes("1x16x1, 1x4x4,2x2x4", v4_32) == [(1, 16, 1), (1, 4, 4), (2, 2, 4)]
  for spec, message in [("1x8x1", "has 8 devices; v4-32 has 16"), ("1x4", "is not DATAxFSDPxTENSOR"),
                        ("0x16x1", "is not DATAxFSDPxTENSOR"), (",", "no mesh given")]:
    assert main(["plan", "--preset", "xlmr-bench-small", "--topology", "v4-32", "--search", "--meshes", spec,
                 *TINY]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
