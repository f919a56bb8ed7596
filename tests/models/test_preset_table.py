"""`xtjax presets` prints from a table (no JAX, no model built): the table must be every preset's true count."""

from xtjax.cli.preset_table import PRESETS


def test_preset_table_matches_abstract_counts():
  from xtjax.models import init, registry

  counted = tuple((name, fam.name, init.count_params(init.abstract(fam, cfg)[1]))
                  for name, (fam, cfg) in sorted(registry.presets().items()))
  table = "".join(f"    ({n!r}, {f!r}, {p}),\n" for n, f, p in counted)
  assert PRESETS == counted, f"xtjax/cli/preset_table.py is stale; PRESETS = (\n{table})"


def test_presets_prints_without_loading_jax():
  import subprocess
  import sys

  code = ("import sys; from xtjax.cli.main import main; main(['presets']); "
          "assert 'jax' not in sys.modules and 'flax' not in sys.modules, 'presets loaded JAX'")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert [line.split()[0] for line in out.splitlines()] == [name for name, _, _ in PRESETS]
