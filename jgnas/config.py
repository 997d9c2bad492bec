"""Experiment configs: YAML files of sections, validated into frozen dataclasses, with overrides.

A config file has the sections `data`, `space`, `train` (the screening budget used during search),
`final` (retraining of the winners), `search`, `text` and `side`; each key maps to a field of that section's
dataclass. Two top-level keys: `name`, and `plugins`, a list of modules imported first, so that the
ops, strategies and data formats they register can be named in the sections. An empty file is
the default job. An unknown section or key, or a bad value, fails with one line naming it and listing the
valid ones. Overrides are `section.key=value` strings (the value is parsed as YAML), as given to
`--set` on the command line. Configs are data read at the edge: nothing mutates one, and none crosses
a jit boundary.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import types
import typing
from typing import Any

import yaml

from jgnas import plugins as plugins_lib
from jgnas.data import DataConfig
from jgnas.experiment import FinalConfig
from jgnas.features import TextConfig
from jgnas.search.config import SearchConfig
from jgnas.side import SideConfig
from jgnas.space import Space
from jgnas.train import TrainConfig


class ConfigError(ValueError):
    """A bad config file, key or value; the message is one line."""


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment. The defaults of every section are the default job (ml-100k on a CPU,
    `python scripts/search.py`): this is the one place they are set; `configs/ml100k.yaml` names it.

    plugins: modules imported before anything is built (ops, strategies, data formats they
    register); a name on sys.path (the current folder included) or a path to a .py file.
    """

    name: str = "ml100k"
    plugins: tuple[str, ...] = ()
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    space: Space = dataclasses.field(default_factory=Space)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    final: FinalConfig = dataclasses.field(default_factory=FinalConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    side: SideConfig = dataclasses.field(default_factory=SideConfig)


TOP_LEVEL = ("name", "plugins")
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "space": Space,
    "train": TrainConfig,
    "final": FinalConfig,
    "search": SearchConfig,
    "text": TextConfig,
    "side": SideConfig,
}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """YAML value -> the field's type (lists -> tuples, ints -> floats); refuses the wrong kind."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        elem = args[0] if args else Any
        return tuple(_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


#: Keys that moved: a config (or a run directory's config.yaml) written before gets one line
#: saying where they went.
MOVED = {
    "train.loss": "space.losses",
    "train.negatives": "space.negatives",
    "train.temperature": "space.temperatures",
}


def _section(cls: type, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if f"{where}.{key}" in MOVED:
            raise ConfigError(
                f"{where}.{key}: the training objective is now part of each searched model: use "
                f"{MOVED[where + '.' + key]} (a list of choices; a run made before this change "
                "cannot be reloaded)"
            )
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _set_path(d: dict, dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    if not key:
        if section in TOP_LEVEL:
            d[section] = value
            return
        raise ConfigError(
            f"--set {dotted}: expected section.key=value (sections: {sorted(SECTIONS)})"
        )
    if section not in SECTIONS:
        raise ConfigError(
            f"--set {dotted}: unknown section {section!r}; sections: {sorted(SECTIONS)}"
        )
    d.setdefault(section, {})
    d[section] = dict(d[section] or {})
    d[section][key] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`search.population_size=64` -> ("search.population_size", 64) (the value is YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def from_dict(
    d: dict,
    overrides: typing.Sequence[str] = (),
    where: str = "config",
    base: pathlib.Path | None = None,
) -> ExperimentConfig:
    """A mapping (a parsed YAML file) plus `section.key=value` overrides -> ExperimentConfig.

    `base`: the folder that relative plugin paths (`my_ops.py`) are resolved against (the config
    file's folder; default: the current folder)."""
    d = dict(d or {})
    for text in overrides:
        _set_path(d, *parse_override(text))
    unknown = sorted(set(d) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {unknown}; valid: {sorted([*SECTIONS, *TOP_LEVEL])}"
        )
    plugins = _coerce(d.get("plugins") or [], tuple[str, ...], "plugins")
    try:  # before any section is built: sections may name what the plugins register
        plugins = plugins_lib.import_all(plugins, base=base)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    kwargs: dict[str, Any] = {
        "name": _name(d.get("name", ExperimentConfig.name)),
        "plugins": plugins,
    }
    for name, cls in SECTIONS.items():
        values = d.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section {name!r} must be a mapping")
        kwargs[name] = _section(cls, values, name)
    # The space's text and side inputs are those the experiment builds.
    kwargs["space"] = dataclasses.replace(
        kwargs["space"], text=kwargs["text"].enabled, side=kwargs["side"].enabled
    )
    for preset in kwargs["final"].baselines:
        try:
            kwargs["space"].preset(preset)
        except ValueError as e:
            raise ConfigError(f"final.baselines: {e}") from None
    return ExperimentConfig(**kwargs)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _name(value: Any) -> str:
    """The `name` key: it names the run directory (runs/NAME-TIMESTAMP), so a plain file name."""
    name = str(value)
    if not _NAME.fullmatch(name) or len(name) > 100:
        raise ConfigError(
            f"name: {name!r} must be a plain file name (letters, digits, '.', '_', '+', '-', "
            "starting with a letter or digit); it names the run directory"
        )
    return name


def check_strategy(search: SearchConfig, space: Space) -> None:
    """Builds the search strategy and the seed genomes once, so that bad `search.strategy_kwargs`,
    a population size the algorithm refuses or a seed preset the space cannot hold fail before any
    work (`jgnas.job` calls it first; not at load time, as
    an evosax algorithm takes seconds to build the first time, which `jgnas config` need not pay)."""
    from jgnas.search.strategies import GenomeSpec, make_strategy

    try:
        make_strategy(
            search.strategy,
            GenomeSpec(space.gene_sizes),
            search.population_size,
            **search.strategy_kwargs,
        )
    except (ValueError, TypeError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"search.strategy_kwargs: {msg}") from None
    from jgnas.search.seeding import preset_genomes

    try:
        preset_genomes(space, search.seed_presets)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def load(path: str | pathlib.Path | None, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Reads a YAML experiment config (None: all defaults) and applies overrides."""
    if path is None:
        return from_dict({}, overrides)
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(
            f"{p}:{line}: not a UTF-8 text file (byte 0x{raw[e.start]:02x}); a config is YAML text"
        ) from None
    try:
        d = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e).strip().splitlines() or ["?"])[0]
        raise ConfigError(f"{p}{line}: not valid YAML ({problem})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return from_dict(d, overrides, where=str(p), base=p.parent)


def to_dict(cfg: ExperimentConfig) -> dict:
    """The resolved config as plain data (tuples become lists), for `config.yaml` in a run dir."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    out: dict[str, Any] = {"name": cfg.name, "plugins": list(cfg.plugins)}
    for name in SECTIONS:
        section = getattr(cfg, name)
        out[name] = {
            f.name: plain(getattr(section, f.name)) for f in dataclasses.fields(section) if f.init
        }
    return out
