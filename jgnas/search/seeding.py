"""Seeding the first generation with the published models (`search.seed_presets`).

A preset carries its published numbers (lr 1e-3, d 64, ...), which the screening grids need not
hold. A seed is the preset moved to the nearest point of the grids: the nearest dim, dropout and
negatives, and the nearest lr, L2 and temperature on a log scale (0 is nearest to the smallest
grid value). Its ops, combination, features, loss and sampler are kept, and must be in the space.
The seeds replace the first members of generation 0; every strategy then treats them as its own
samples (the evosax adapter and the RL controller invert the genome, see their `tell`).
"""

from __future__ import annotations

import numpy as np

from jgnas.space import Space


def _nearest(value: float, grid, log: bool) -> float:
    g = np.asarray(grid, np.float64)
    if log:
        pos = g[g > 0]
        if value <= 0 or not pos.size:
            return float(g[np.argmin(np.abs(g - value))])
        return float(pos[np.argmin(np.abs(np.log(pos) - np.log(value)))])
    return float(g[np.argmin(np.abs(g - value))])


def on_grid(space: Space, d: dict) -> dict:
    """An arch dict moved to the nearest point of the space's grids (see the module doc)."""
    out = dict(d)
    for key, grid, log in (
        ("dim", space.dims, False),
        ("dropout", space.dropouts, False),
        ("lr", space.lrs, True),
        ("l2", space.l2s, True),
        ("negatives", space.negatives, False),
        ("temperature", space.temperatures, True),
        ("ssl", space.ssl_weights, False),
    ):
        v = _nearest(float(d[key]), grid, log)
        out[key] = int(v) if key in ("dim", "negatives") else v
    return out


def preset_genomes(space: Space, names) -> np.ndarray:
    """The genomes [len(names), G] of the named presets on the space's grids. Raises ValueError
    (one line, naming the preset) for a preset the space cannot hold: an op outside space.ops,
    more layers than space.max_layers, inputs or an objective the space does not search."""
    out = []
    for name in names:
        try:
            arch = space.preset(name)
        except ValueError as e:
            raise ValueError(f"search.seed_presets: {e}") from None
        d = on_grid(space, space.to_dict(arch))
        for key, allowed in (("loss", space.losses), ("sampler", space.samplers)):
            if d[key] not in allowed:
                raise ValueError(
                    f"search.seed_presets: preset {name!r} has {key} {d[key]!r}, not in "
                    f"space.{key}s {list(allowed)}"
                )
        out.append(space.encode(space.from_dict(d, where=f"preset {name}")))
    return np.stack(out) if out else np.zeros((0, space.n_genes), np.float32)
