"""`jgnas config` (print a resolved config) and `jgnas list` (the registries)."""

from __future__ import annotations

import argparse


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from jgnas import config as config_lib

    cfg = config_lib.load(args.config, args.set or ())
    print(yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False), end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from jgnas.data.readers import FORMATS
    from jgnas.ops import OPS
    from jgnas.search import ALIASES, STRATEGIES
    from jgnas.space import Space

    default_ops = Space().ops
    if args.what == "ops":
        print("| op | formula | own weights at d | uses the transform W | default space |")
        print("|---|---|---|---|---|")
        for name, spec in OPS.items():
            own = spec.own_params(64)
            print(f"| `{name}` | {spec.formula} | {own} (d=64) | "
                  f"{'yes' if spec.uses_transform else 'no'} | "
                  f"{'yes' if name in default_ops else 'no'} |")  # fmt: skip
    elif args.what == "strategies":
        for name in STRATEGIES:
            print(f"{name} (alias of {ALIASES[name]})" if name in ALIASES else name)
    else:
        for name in FORMATS:
            print(name)
    return 0


def _config_parser(subparsers) -> None:
    """Adds `jgnas config` (print a resolved config) and `jgnas list` (the registries)."""
    p = subparsers.add_parser("config", help="print the resolved experiment config as YAML")
    p.add_argument("--config", help="experiment YAML (default: the default job)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override")
    p.set_defaults(fn=_cmd_config)
    q = subparsers.add_parser("list", help="list registered ops, strategies or data formats")
    q.add_argument("what", choices=("ops", "strategies", "formats"))
    q.set_defaults(fn=_cmd_list)
