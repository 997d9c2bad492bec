"""Extending jgnas from outside the package: one module registers an op, a strategy and a data
format; a config names it under `plugins:` and selects them; the CLI searches, describes and lists
them, and the registry-driven tests test them. This is README's "Extending jgnas", executed."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_data_registry import PLUGIN as PSV_PLUGIN

from jgnas.cli import main
from jgnas.data import readers
from jgnas.ops import OPS
from jgnas.search import STRATEGIES

PLUGIN = '''
"""my_lab: an op, a strategy and a data format, registered outside jgnas."""

import jax
import jax.numpy as jnp
import numpy as np

from jgnas.ops import register
from jgnas.search import Strategy, register_strategy


@register("sym2", reference=lambda m, h, p, t: t(m["sym"] @ (m["sym"] @ h)))
def sym2(ctx, h, p):
    """Two-hop symmetric aggregation, then the transform."""
    return ctx.transform(ctx.sym(ctx.sym(h)))


@register_strategy("coordinate")
def make_coordinate(spec, population_size, step=0.25):
    """Each child moves one random gene of the best genome so far by +-step."""

    def init(key):
        return {"best": jnp.full((spec.n_genes,), 0.5), "fit": jnp.asarray(-jnp.inf)}

    def ask(key, state):
        gene = jax.random.randint(key, (population_size,), 0, spec.n_genes)
        sign = jnp.where(jnp.arange(population_size) % 2 == 0, 1.0, -1.0)
        genomes = state["best"][None].repeat(population_size, 0)
        genomes = genomes.at[jnp.arange(population_size), gene].add(sign * step)
        return jnp.clip(genomes, 0.0, 1.0), state

    def tell(key, genomes, fitness, state):
        fitness = jnp.where(jnp.isfinite(fitness), fitness, -jnp.inf)
        i = jnp.argmax(fitness)
        better = fitness[i] > state["fit"]
        return {
            "best": jnp.where(better, genomes[i], state["best"]),
            "fit": jnp.where(better, fitness[i], state["fit"]),
        }

    return Strategy(init, ask, tell, population_size, "coordinate")
'''
# The same module also registers the .psv format of tests/test_data_registry.py.
PLUGIN += PSV_PLUGIN

CONFIG = """
# A lab's experiment. Run: jgnas search --config lab.yaml
name: lab
plugins: [my_lab]
data: {name: shop, path: shop, format: psv}
space: {ops: [lightgcn, sym2], max_layers: 2, dims: [8]}
train: {epochs: 1, batch_size: 128, eval_block: 32}
final: {top_k: 1, seeds: 1, epochs: 1, eval_every: 1, patience: 0, baselines: [mf]}
search: {strategy: coordinate, strategy_kwargs: {step: 0.3}, population_size: 4, generations: 2}
"""


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    """A lab folder: the plugin module, a .psv dataset, and the config; registries restored after."""
    (tmp_path / "my_lab.py").write_text(PLUGIN)
    rng = np.random.default_rng(0)
    shop = tmp_path / "shop"
    shop.mkdir()
    rows = {(f"u{rng.integers(40)}", f"i{rng.integers(50)}") for _ in range(700)}
    (shop / "orders.psv").write_text("".join(f"{u}|{i}|1\n" for u, i in sorted(rows)))
    (tmp_path / "lab.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)  # plugins are imported from the current folder, as with python -m
    before = dict(OPS), dict(STRATEGIES), dict(readers.FORMATS)
    yield tmp_path
    sys.modules.pop("my_lab", None)
    for registry, saved in zip((OPS, STRATEGIES, readers.FORMATS), before):
        registry.clear()
        registry.update(saved)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_plugin_op_strategy_and_format_are_searched_from_a_config(lab, capsys):
    out = lab / "run"
    assert main(["search", "--config", "lab.yaml", "--out", str(out), "-q"]) == 0
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 4 * 2
    ops = {layer["op"] for r in history for layer in r["arch"]["layers"]}
    assert "sym2" in ops  # the strategy's children include sym2 layers
    assert any("sym2" in r["describe"] for r in history)
    assert all(r["fitness"] is not None for r in history)
    config = (out / "config.yaml").read_text()
    assert "plugins:\n- my_lab\n" in config and "format: psv" in config
    # The run directory reloads with its plugins: recommend imports them from config.yaml.
    sys.modules.pop("my_lab", None)
    OPS.pop("sym2")
    STRATEGIES.pop("coordinate")
    readers.FORMATS.pop("psv")
    capsys.readouterr()
    user = next(iter((lab / "shop" / "orders.psv").read_text().split("|")))
    assert main(["recommend", str(out), "--user", user, "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_import_flag_lists_and_describes_plugins(lab, capsys):
    assert main(["list", "ops", "--import", "my_lab"]) == 0
    table = capsys.readouterr().out
    assert "| `sym2` | Two-hop symmetric aggregation, then the transform. |" in table
    assert main(["list", "strategies"]) == 0 and "coordinate" in capsys.readouterr().out
    assert main(["list", "formats"]) == 0 and "psv" in capsys.readouterr().out.split()
    assert main(["data", "info", "--config", "lab.yaml", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["users"] == 40 and info["items"] == 50


def test_bad_plugin_is_one_error_line(lab, capsys):
    (lab / "broken.py").write_text(
        "from jgnas.ops import register\nregister('gcn')(lambda c, h, p: h)\n"
    )
    for argv, message in [
        (
            ["list", "ops", "--import", "no_such_lab"],
            "cannot import 'no_such_lab' (ModuleNotFoundError",
        ),
        (["list", "ops", "--import", "broken"], "op 'gcn' is already registered"),
        (["search", "--config", "lab.yaml", "--set", "plugins=[nope]"], "plugins: cannot import"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.slow
def test_registry_driven_tests_cover_a_plugin(lab):
    # `pytest -p my_lab` imports the plugin before collection: the op and strategy contract tests
    # are parameterised over the registries, so they test sym2 and coordinate with no edit.
    tests = os.path.join(os.path.dirname(__file__))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "my_lab", "-p", "no:cacheprovider",
           os.path.join(tests, "test_ops.py"), os.path.join(tests, "test_strategies.py"),
           "-k", "sym2 or coordinate"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(lab)}
    res = subprocess.run(cmd, cwd=lab, env=env, capture_output=True, text=True, timeout=600)
    summary = res.stdout.strip().splitlines()[-1]
    assert res.returncode == 0, res.stdout[-3000:]
    # test_ops: dense formula (2 graphs x W/identity), mask (2 graphs), jit/isolated nodes, spec;
    # test_strategies: the 3 contract tests.
    assert summary.startswith("11 passed"), textwrap.shorten(res.stdout, 2000)
