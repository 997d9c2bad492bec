"""Experiment configs: files, overrides and one-line errors."""

import dataclasses
import pathlib

import pytest
from conftest import CONFIGS

from jgnas import config as config_lib
from jgnas.cli import build_parser
from jgnas.config import ConfigError


def _header(path):
    """The leading comment block of a config file, without the '# ' prefixes."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_says_how_to_run(path):
    cfg = config_lib.load(path)
    assert cfg.name
    head = _header(path)
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in head if ":" in line}
    assert {"Run", "Takes", "Expect"} <= set(fields), f"{path.name}: header lacks Run/Takes/Expect"
    # The Run line is a real command for this very file: it parses, and its --config is this file.
    argv = fields["Run"].split("(")[0].split()
    assert argv[0] == "jgnas", fields["Run"]
    args = build_parser().parse_args(argv[1:])
    assert args.cmd == "search" and pathlib.Path(args.config).resolve() == path.resolve()


def test_default_job_is_the_defaults_plus_ml100k_inputs():
    # configs/ml100k.yaml (the default job, `python scripts/search.py`) is the dataclass defaults
    # plus the node inputs ml-100k has (text and side features), the text baseline and the
    # search protocol of issue 9 (seeded, successive halving to 80 epochs, 2 tuned finalists,
    # 5 retraining seeds);
    # nothing else. `jgnas search` without --config runs the defaults: ID features only, since
    # not every dataset has feature columns.
    default = config_lib.load(None)
    job = config_lib.load(CONFIGS / "ml100k.yaml")
    assert job.text.enabled and job.side.enabled and job.space.text and job.space.side
    assert job.final.baselines == ("lightgcn", "lightgcn+text") and job.final.top_k == 2
    assert job.final.seeds == 5  # the protocol: the mean over 5 retraining seeds
    s = job.search
    assert (s.population_size, s.generations, s.halving_rungs, s.halving_eta) == (12, 3, 2, 4)
    assert s.seed_presets == ("lightgcn", "lightgcn+text")
    same = dataclasses.replace(
        job,
        text=default.text,
        side=default.side,
        space=dataclasses.replace(job.space, text=False, side=False),
        final=dataclasses.replace(
            job.final, baselines=default.final.baselines, top_k=1, seeds=default.final.seeds
        ),
        search=dataclasses.replace(
            s, population_size=32, generations=8, halving_rungs=0, halving_eta=2, seed_presets=()
        ),
    )
    assert same == default
    from jgnas.ops import FAST_OPS

    assert default.space.ops == FAST_OPS and default.search.population_size == 32
    assert default.final.baselines == ("lightgcn",) and default.train.epochs == 5
    assert default.space.lrs == (1e-2,) and default.final.lrs == (3e-3, 1e-2)


def test_overrides_are_typed():
    cfg = config_lib.load(CONFIGS / "tiny.yaml", ["search.population_size=7", "space.dims=[4, 8]"])
    assert cfg.search.population_size == 7
    assert cfg.space.dims == (4, 8)


def test_round_trip_through_dict():
    cfg = config_lib.load(CONFIGS / "ml100k.yaml")
    assert config_lib.from_dict(config_lib.to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["search.populaton_size=3"], "search: unknown key(s) ['populaton_size']; valid keys:"),
        (["serch.population_size=3"], "unknown section 'serch'"),
        (["search.population_size=abc"], "search.population_size: expected an integer"),
        (["search.strategy=NoSuchES"], "search.strategy: 'NoSuchES' is not one of"),
        (["train.metric=auc"], "train.metric: 'auc' is not one of"),
        (["train.eval_every=3"], "train.eval_every: must divide train.epochs"),
        (["space.ops=[gcn, nope]"], "space.ops: unknown op(s) ['nope']"),
        (["data.split=weird"], "data.split"),
        (["final.baselines=[nope]"], "final.baselines: unknown preset 'nope'"),
        (["space.dims=16"], "space.dims: expected a list"),
        (["population_size=3"], "expected section.key=value"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        config_lib.load(CONFIGS / "tiny.yaml", overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("search:\n  population_size: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        config_lib.load(p)
    with pytest.raises(ConfigError, match="no such config file"):
        config_lib.load(tmp_path / "missing.yaml")
