"""Plugins: modules outside the package that register ops, strategies or data formats.

A plugin is imported before any config section is built, so the names it registers can be used in
the config: `plugins: [my_ops, my_lab.strategies, ./extra_reader.py]` in a config file, or
`--import MODULE` on any `jgnas` command. A name is imported as a module (the current folder is on
the import path, as with `python -m`); an entry ending in `.py` is loaded from that file.
Importing twice is a no-op (Python caches modules), so a registry is never written twice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Sequence


def resolve(entry: str, base: pathlib.Path | None = None) -> str:
    """A module name as is; a `.py` path made absolute (relative to `base`, default the cwd)."""
    if not entry.endswith(".py"):
        return entry
    p = pathlib.Path(entry).expanduser()
    return str((p if p.is_absolute() else (base or pathlib.Path.cwd()) / p).resolve())


def import_one(entry: str) -> None:
    """Imports one plugin; any failure becomes one ValueError line naming the plugin."""
    try:
        if entry.endswith(".py"):
            path = pathlib.Path(entry)
            name = f"jgnas_plugin_{path.stem}"
            if name in sys.modules:
                return
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            cwd = os.getcwd()
            if cwd not in sys.path:
                sys.path.append(cwd)
            importlib.import_module(entry)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"plugins: cannot import {entry!r} ({type(e).__name__}: {msg})") from None


def import_all(entries: Sequence[str], base: pathlib.Path | None = None) -> tuple[str, ...]:
    """Imports every plugin in order; returns the resolved entries (absolute .py paths)."""
    resolved = tuple(resolve(e, base) for e in entries)
    for entry in resolved:
        import_one(entry)
    return resolved
