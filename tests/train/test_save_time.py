"""`xtjax plan`'s checkpoint estimate (xtjax.train.save_time): the bytes a save writes per host and whether
they fit a spot VM's 30 s preemption notice at the stated bandwidths."""

import json

import pytest

from xtjax.cli.main import main
from xtjax.parallel import topology
from xtjax.train import save_time

GiB = 1024 ** 3


def test_hosts_of_a_slice():
  assert [topology.parse(t).hosts for t in ("cpu:8", "v4-8", "v4-16", "v4-32", "v5p-128", "v5e-256")] == [
      1, 1, 2, 4, 16, 64]
  assert topology.parse("v4-32", num_slices=2).hosts == 8


def test_a_state_spread_over_hosts_fits_the_notice_and_one_host_does_not():
  small = save_time.estimate(12 * GiB, 4)  # 3 GiB per host: 6.4 s to GCS at 500 MB/s, 16.1 s to disk at 200 MB/s
  assert small.fits_notice == {"local disk": True, "gcs": True}
  assert small.seconds["gcs"] == pytest.approx(3 * GiB / 500e6)
  assert not any("warning" in line for line in small.lines())
  big = save_time.estimate(12 * GiB, 1)
  assert big.fits_notice == {"local disk": False, "gcs": True}
  text = "\n".join(big.lines())
  assert "write to local disk at 200 MB/s per host: 64.4 s -> does NOT fit a 30 s preemption notice" in text
  assert "warning: a preemption save may not finish in the notice" in text


def test_plan_counts_parameters_and_adam_moments_and_warns_for_an_8b_decoder():
  """Llama-3.1-8B's MNLI classifier on v4-16 (2 hosts), f32 weights + AdamW: 12 bytes a parameter, ~45 GiB
  per host; at 500 MB/s that is ~96 s, three times a spot VM's notice. XLM-R large on v4-8 fits."""
  from xtjax.cli.plan_cmd import add_estimates, format_plan, load_plan_config, save_settings
  from xtjax.train.plan import plan

  llama = add_estimates(plan(load_plan_config(None, ["model.param_dtype=float32"], "llama-3.1-8b"),
                             topology.on_cpu(topology.parse("v4-16")), compile_train=False))
  ck = llama["checkpoint"]
  assert ck["hosts"] == 2
  # parameters + Adam's two moments (+ a step counter); gradients are not saved
  assert 12 * llama["num_params"] <= ck["checkpoint_bytes"] <= 12 * llama["num_params"] + 1024
  assert ck["fits_notice"] == {"local disk": False, "gcs": False}
  assert "does NOT fit a 30 s preemption notice" in format_plan(llama)
  slower = add_estimates(plan(load_plan_config(None, ["model.param_dtype=float32"], "llama-3.1-8b"),
                              topology.on_cpu(topology.parse("v4-16")), compile_train=False),
                         save_settings(200.0, None, 2000.0))  # a 200 s notice, 2 GB/s to the bucket
  assert slower["checkpoint"]["fits_notice"] == {"local disk": False, "gcs": True}

  xlmr = add_estimates(plan(load_plan_config(None, [], "xlmr-large"), topology.on_cpu(topology.parse("v4-8")),
                            compile_train=False))
  assert xlmr["checkpoint"]["fits_notice"]["gcs"] and xlmr["checkpoint"]["hosts"] == 1


@pytest.mark.parametrize("flag", ["--gcs-mb-s=0", "--disk-mb-s=-5", "--notice-s=0"])
def test_bad_bandwidth_is_one_line_before_anything_compiles(flag, capsys):
  rc = main(["plan", "--preset", "xlmr-large", "--topology", "v4-8", "--memory-only", flag])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc != 0 and len(err) == 1 and flag.split("=")[0] in err[0] and "must be > 0" in err[0], err


def test_json_carries_the_estimate(capsys):
  assert main(["plan", "--preset", "xlmr-base", "--topology", "v4-8", "--memory-only", "--json"]) == 0
  ck = json.loads(capsys.readouterr().out)["checkpoint"]
  assert set(ck) >= {"checkpoint_bytes", "hosts", "notice_s", "seconds", "bandwidth", "bytes_per_host", "fits_notice"}
