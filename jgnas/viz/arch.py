"""A drawing of one architecture dict (best_arch.json): inputs -> layers -> combination -> score.

Generic over the dict's keys, so genes added to the space later show without a change here:
`features` feeds the input box, every list of dicts (`layers`) becomes a chain of boxes listing
each entry's keys (a true `residual` also draws a skip arrow), `combine` names the combination
box, and every other key goes to the table under the drawing.
"""

from __future__ import annotations

import pathlib

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from jgnas.viz.common import BASELINE, HIGHLIGHT, SEARCHED, TOP, figure, save, short, value_label

BOX_W = 2.1  # data units; one unit is INCH inches in the figure
GAP = 0.75
LINE = 0.3
INCH = 0.65


def _lines(d: dict, skip: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{k}: {short(value_label(v), 16)}"
        for k, v in d.items()
        if k not in skip and not isinstance(v, (list, dict))
    ]


def boxes(arch: dict) -> tuple[list[dict], dict]:
    """The boxes of the drawing, left to right, and the genes left for the table under it.

    Each box is {"title", "lines", "residual", "color", "tap"}; `tap` marks the vectors the
    combination reads (the input and every layer; only the last one for `combine: last`).
    """
    rest = dict(arch)
    feats = rest.pop("features", None)
    inputs = [f"features: {feats}"] if feats is not None else ["embeddings"]
    out = [{"title": "input", "lines": inputs, "residual": False, "color": "#e8f1e4"}]
    for key in [k for k, v in arch.items() if isinstance(v, list)]:
        entries = rest.pop(key)
        for n, entry in enumerate(entries, 1):
            entry = entry if isinstance(entry, dict) else {"value": entry}
            out.append({
                "title": f"{key.rstrip('s')} {n}",
                "lines": _lines(entry, skip=("residual",)),
                "residual": bool(entry.get("residual", False)),
                "color": "#dce9f5",
            })  # fmt: skip
    rest.pop("depth", None)  # the number of layer boxes says it
    combine = rest.pop("combine", None)
    last = combine == "last"
    for n, b in enumerate(out):
        b["tap"] = not last or n == len(out) - 1
    if combine is not None:
        out.append({"title": "combination", "lines": [str(combine)], "residual": False,
                    "color": "#fdebd3", "tap": False})  # fmt: skip
    out.append({"title": "score", "lines": ["h_u · h_i"], "residual": False, "color": "#f6dcdc",
                "tap": False})  # fmt: skip
    return out, rest


def draw(arch: dict, path: pathlib.Path) -> str:
    """Writes the drawing of `arch` (a best_arch.json dict) as a PNG; returns its file name."""
    bxs, _ = boxes(arch)
    n_lines = max(len(b["lines"]) for b in bxs)
    box_h = LINE * (n_lines + 1) + 0.3
    width = len(bxs) * (BOX_W + GAP) - GAP
    taps = [b for b in bxs if b.get("tap")]
    bus_y = -box_h / 2 - 0.7  # the line the combination's inputs run along, under the chain
    top = box_h / 2 + 0.9
    bottom = bus_y - 0.3 if len(taps) > 1 else -box_h / 2 - 0.3
    fig = figure((width + 0.4) * INCH, (top - bottom) * INCH)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    x_of = [n * (BOX_W + GAP) for n in range(len(bxs))]
    for b, x in zip(bxs, x_of):
        edge = SEARCHED if b["title"] not in ("input", "combination", "score") else BASELINE
        ax.add_patch(FancyBboxPatch((x, -box_h / 2), BOX_W, box_h, boxstyle="round,pad=0.02,"
                                    "rounding_size=0.12", facecolor=b["color"], edgecolor=edge))  # fmt: skip
        ax.text(x + BOX_W / 2, box_h / 2 - 0.22, b["title"], ha="center", va="top",
                fontsize=9, weight="bold")  # fmt: skip
        for i, line in enumerate(b["lines"]):
            ax.text(x + BOX_W / 2, box_h / 2 - 0.22 - LINE * (i + 1), line, ha="center",
                    va="top", fontsize=8)  # fmt: skip
    for a, b in zip(x_of, x_of[1:]):
        ax.add_patch(FancyArrowPatch((a + BOX_W, 0), (b, 0), arrowstyle="-|>", mutation_scale=12,
                                     color="black"))  # fmt: skip
    for n, (b, x) in enumerate(zip(bxs, x_of)):
        if b["residual"]:  # h' = layer(h) + h: from the layer's input, over it, to its output
            # Inset from the gaps' middles and at alternating heights, so that the skips of
            # consecutive layers stay apart.
            xl, xr = x - GAP / 2 + 0.1, x + BOX_W + GAP / 2 - 0.1
            yt = box_h / 2 + 0.3 + 0.3 * (n % 2)
            ax.plot([xl, xl, xr], [0, yt, yt], color=TOP, lw=1.2)
            ax.add_patch(FancyArrowPatch((xr, yt), (xr, 0.03), arrowstyle="-|>", mutation_scale=10,
                                         color=TOP, lw=1.2))  # fmt: skip
            ax.text(x + BOX_W / 2, yt + 0.04, "+ residual", ha="center", va="bottom", fontsize=8,
                    color=TOP)  # fmt: skip
    if len(taps) > 1 and any(b["title"] == "combination" for b in bxs):
        comb_x = x_of[[b["title"] for b in bxs].index("combination")] + BOX_W / 2
        for b, x in zip(bxs, x_of):
            if b.get("tap"):
                ax.plot([x + BOX_W * 0.75] * 2, [-box_h / 2, bus_y], color=HIGHLIGHT, lw=0.9,
                        ls="--")  # fmt: skip
        ax.plot([x_of[0] + BOX_W * 0.75, comb_x], [bus_y, bus_y], color=HIGHLIGHT, lw=0.9,
                ls="--")  # fmt: skip
        ax.add_patch(FancyArrowPatch((comb_x, bus_y), (comb_x, -box_h / 2), arrowstyle="-|>",
                                     mutation_scale=10, color=HIGHLIGHT, ls="--"))  # fmt: skip
    return save(fig, path)
