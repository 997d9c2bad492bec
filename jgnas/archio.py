"""Architectures for people: names in, names out (dicts, JSON files, one-line descriptions).

`from_dict` checks a hand-written or saved arch with one-line errors that name the key: the named
genes (depth, ops, transforms, activations, norms, combine, features, loss, sampler) must be
choices of the space or of the library; the numbers may lie off its grids (the grids bind only the
search): dim an integer in 1..max(dims) (a mask inside the supernet's width), dropout in [0, 1),
lr finite and > 0, l2 finite and >= 0, negatives an integer in 1..max(space.negatives) (the
negatives drawn per positive), temperature finite and > 0, ssl finite and >= 0. The objective keys
and a layer's norm may be left out (an arch file written before they existed): they default to the
published objective (`jgnas.presets.BPR`) and no norm.
`Space.to_dict`, `from_dict` and `describe` call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jgnas.ops import OPS

if TYPE_CHECKING:
    from jgnas.space import Arch, Space

OBJECTIVE_KEYS = ("loss", "negatives", "temperature", "sampler", "ssl")
KEYS = ("depth", "layers", "combine", "dim", "dropout", "lr", "l2", "features", *OBJECTIVE_KEYS)
LAYER_KEYS = ("op", "transform", "act", "residual", "norm")


def to_dict(space: Space, arch: Arch) -> dict:
    """One (unbatched) arch -> a JSON-ready dict with names (inactive layers left out)."""
    from jgnas import space as sp

    if sp._is_batched(arch):
        raise ValueError("to_dict takes one arch; index the population first")
    a = jax.tree.map(lambda x: np.asarray(x).item() if np.ndim(x) == 0 else np.asarray(x), arch)
    layers = [
        {
            "op": space.ops[int(a.op[l])],
            "transform": sp.TRANSFORMS[int(a.transform[l])],
            "act": sp.ACTIVATIONS[int(a.act[l])],
            "residual": bool(a.residual[l]),
            "norm": sp.NORMS[int(a.norm[l])],
        }
        for l in range(int(a.depth))
    ]
    return {
        "depth": int(a.depth),
        "layers": layers,
        "combine": sp.COMBINES[int(a.combine)],
        "dim": int(a.dim),
        "dropout": sp._short(a.dropout),
        "lr": sp._short(a.lr),
        "l2": sp._short(a.l2),
        "features": sp.FEATURES[int(a.features)],
        "loss": sp.LOSSES[int(a.loss)],
        "negatives": int(a.negatives),
        "temperature": sp._short(a.temperature),
        "sampler": sp.SAMPLERS[int(a.sampler)],
        "ssl": sp._short(a.ssl),
    }


def clip(value: Any, n: int = 40) -> str:
    """A value for an error message: its repr, cut to n characters."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def finite32(x: float) -> bool:
    """Finite, and still finite as the float32 the model trains with."""
    return bool(np.isfinite(x)) and abs(float(x)) <= float(np.finfo(np.float32).max)


class _Reader:
    """The checks of one dict, each failing with one line that starts with `where`."""

    def __init__(self, d: dict, where: str):
        self.d, self.where = d, where

    def fail(self, msg: str):
        raise ValueError(f"{self.where}: {msg}")

    def choice(self, value, options, key: str) -> int:
        if not isinstance(value, str) or value not in options:
            self.fail(f"{key}={clip(value)} is not one of {list(options)}")
        return options.index(value)

    def number(self, key: str, ok, rule: str, integer: bool = False):
        value = self.d[key]
        good = not isinstance(value, bool) and isinstance(value, (int, float))
        good = good and (not integer or float(value).is_integer()) and ok(value)
        if not good:
            self.fail(f"{key}={clip(value)} must be {rule}")
        return int(value) if integer else value


def _check_keys(d, where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(
            f"{where}: an arch is a JSON object with keys {sorted(KEYS)}, got "
            f"{type(d).__name__} {clip(d)}"
        )
    unknown = set(d) - set(KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(KEYS)}")
    missing = set(KEYS) - set(d) - {"layers", *OBJECTIVE_KEYS}
    if missing:
        raise ValueError(f"{where}: missing key(s) {sorted(missing)}")


def _layer_genes(space: Space, r: _Reader, depth: int) -> tuple[np.ndarray, ...]:
    """The layers' op, transform, act, residual and norm genes [max_layers] each (zeros beyond
    depth)."""
    from jgnas import space as sp

    layers = r.d.get("layers", [])
    if not isinstance(layers, list):
        r.fail(f"layers={clip(layers)} must be a list of {depth} layer objects")
    if len(layers) != depth:
        r.fail(f"depth={depth} but {len(layers)} layers are given")
    L = space.max_layers
    op, tf, act, res, norm = (np.zeros(L, np.int32) for _ in range(5))
    for l, layer in enumerate(layers):
        if not isinstance(layer, dict):
            r.fail(f"layers[{l}]={clip(layer)} must be an object with keys {sorted(LAYER_KEYS)}")
        if set(layer) - set(LAYER_KEYS):
            r.fail(f"layers[{l}] unknown key(s) {sorted(set(layer) - set(LAYER_KEYS))}")
        if "op" not in layer:
            r.fail(f"layers[{l}] has no 'op' (one of {list(space.ops)})")
        op[l] = r.choice(layer["op"], space.ops, f"layers[{l}].op")
        tf[l] = r.choice(
            layer.get("transform", "identity"), sp.TRANSFORMS, f"layers[{l}].transform"
        )
        act[l] = r.choice(layer.get("act", "identity"), sp.ACTIVATIONS, f"layers[{l}].act")
        residual = layer.get("residual", False)
        if residual not in (True, False):  # 0 and 1 too
            r.fail(f"layers[{l}].residual={clip(residual)} must be true or false")
        res[l] = int(residual)
        norm[l] = r.choice(layer.get("norm", "none"), sp.NORMS, f"layers[{l}].norm")
    return op, tf, act, res, norm


def from_dict(space: Space, d: dict, where: str = "arch") -> Arch:
    """A dict from `to_dict` (or a hand-written one) -> one Arch, with one-line errors."""
    from jgnas import space as sp

    _check_keys(d, where)
    r = _Reader(d, where)
    L, d_max = space.max_layers, space.d_max
    depth = r.number("depth", lambda v: 0 <= v <= L, f"an integer in 0..{L}", integer=True)
    op, tf, act, res, norm = _layer_genes(space, r, depth)
    from jgnas.presets import BPR

    r.d = {**BPR, **d}
    k_max = space.max_negatives
    dim_rule = f"an integer in 1..{d_max} (the largest of space.dims)"
    arch = sp.Arch(
        depth=np.int32(depth),
        op=op,
        transform=tf,
        act=act,
        residual=res,
        norm=norm,
        combine=np.int32(r.choice(d["combine"], sp.COMBINES, "combine")),
        dim=np.int32(r.number("dim", lambda v: 1 <= v <= d_max, dim_rule, integer=True)),
        dropout=np.float32(r.number("dropout", lambda v: 0 <= v < 1, "a rate in [0, 1)")),
        lr=np.float32(r.number("lr", lambda v: finite32(v) and v > 0, "a finite number > 0")),
        l2=np.float32(r.number("l2", lambda v: finite32(v) and v >= 0, "a finite number >= 0")),
        features=np.int32(r.choice(d["features"], sp.FEATURES, "features")),
        loss=np.int32(r.choice(r.d["loss"], sp.LOSSES, "loss")),
        negatives=np.int32(
            r.number(
                "negatives",
                lambda v: 1 <= v <= k_max,
                f"an integer in 1..{k_max} (the largest of space.negatives)",
                integer=True,
            )
        ),
        temperature=np.float32(
            r.number("temperature", lambda v: finite32(v) and v > 0, "a finite number > 0")
        ),
        sampler=np.int32(r.choice(r.d["sampler"], sp.SAMPLERS, "sampler")),
        ssl=np.float32(r.number("ssl", lambda v: finite32(v) and v >= 0, "a finite number >= 0")),
    )
    if int(arch.features) not in space.feature_choices:
        _, text, side = sp.feature_bits(int(arch.features))
        need = [n for n, b, have in (("text", text, space.text), ("side", side, space.side)) if b and not have]
        setting = {"text": "text.enabled", "side": "side.enabled"}
        r.fail(
            f"features={d['features']!r} needs {' and '.join(need)} features "
            f"({' and '.join(setting[n] for n in need)})"
        )
    return arch


def describe(d: dict) -> str:
    """A `to_dict` dict -> one line, e.g. `2L[gcn, ngcf+W/elu+res] sum d64 drop0 lr1e-02 l2 0e+00
    id` (`MF d64 ...` at depth 0). A layer reads `op[+W][/act][+res]`: `+W` when the transform is
    linear and the op uses it, `/act` unless the activation is the identity. lr and l2 print in
    full (`lr1.5e-03` off the grids)."""
    from jgnas import space as sp

    parts = []
    for layer in d["layers"]:
        s = layer["op"]
        if layer["transform"] == "linear" and OPS[layer["op"]].uses_transform:
            s += "+W"
        if layer["act"] != "identity":
            s += f"/{layer['act']}"
        if layer["residual"]:
            s += "+res"
        if layer.get("norm", "none") != "none":
            s += f"+{layer['norm']}n"
        parts.append(s)
    body = "MF" if not parts else f"{d['depth']}L[{', '.join(parts)}] {d['combine']}"
    return (
        f"{body} d{d['dim']} drop{d['dropout']:g} lr{sp._sci(d['lr'])} l2 {sp._sci(d['l2'])} "
        f"{d['features']}{describe_objective(d)}"
    )


def describe_objective(d: dict) -> str:
    """The objective part of `describe`: empty for the published one (BPR, one uniform negative,
    no contrastive term), else e.g. ` softmax k16 t0.2 pop ssl0.1`."""
    from jgnas.presets import BPR

    o = {**BPR, **{k: d[k] for k in OBJECTIVE_KEYS if k in d}}
    s = ""
    if o["loss"] != "bpr" or o["negatives"] != 1:
        s += f" {o['loss']} k{o['negatives']}"
    if o["loss"] == "softmax":
        s += f" t{o['temperature']:g}"
    if o["sampler"] != "uniform":
        s += " pop" if o["sampler"] == "popularity" else f" {o['sampler']}"
    if o["ssl"]:
        s += f" ssl{o['ssl']:g}"
    return s
