"""Users in the report: which users to show, their histories, top-K lists and ego-graphs.

The scores come from `jgnas.serve.Recommender.recommend`, the ranking `jgnas recommend` serves
(training items excluded); this module only picks users and draws.
"""

from __future__ import annotations

import pathlib

import numpy as np

from jgnas.viz.common import BASELINE, HIGHLIGHT, SEARCHED, TOP, figure, save, short

# Legibility caps of the ego-graph.
MAX_ITEMS = 12
MAX_CO_USERS = 18


def train_counts(ds) -> np.ndarray:
    """Training interactions per user index [U]."""
    return np.bincount(ds.train.users, minlength=ds.n_users)


def pick_users(ds, n: int, first: str | None = None) -> list[str]:
    """Raw ids of n users to show: `first` (default: the user with the median number of training
    interactions), then users at evenly spaced quantiles of that number (deterministic)."""
    counts = train_counts(ds)
    active = np.nonzero(counts > 0)[0]
    order = active[np.lexsort((active, counts[active]))]  # by count, then index
    if order.size == 0:
        return [] if first is None else [first]
    ids = np.asarray(ds.user_ids).astype(str)
    chosen = [first if first is not None else ids[order[(order.size - 1) // 2]]]
    for q in np.linspace(0.1, 0.9, max(n, 1)):
        raw = ids[order[int(round(q * (order.size - 1)))]]
        if len(chosen) >= n:
            break
        if raw not in chosen:
            chosen.append(raw)
    return chosen[: max(n, 1)]


def user_index(ds, raw: str) -> int:
    """The index of a raw user id (the caller has it recommended first, which checks it)."""
    return int(np.nonzero(np.asarray(ds.user_ids).astype(str) == str(raw))[0][0])


def titles(ds) -> np.ndarray:
    """Item titles by index [I]: `item_features["title"]` when the data has it, else raw ids."""
    col = ds.item_features.get("title")
    ids = np.asarray(ds.item_ids).astype(str)
    if col is None:
        return ids
    out = np.asarray([str(t) for t in col], dtype=object)
    return np.where(out == "", ids, out)


def history(ds, u: int) -> np.ndarray:
    """A user's training items, the latest first when the data has timestamps."""
    sel = ds.train.users == u
    items, ts = ds.train.items[sel], ds.train.timestamps[sel]
    return items[np.argsort(-ts, kind="stable")] if ts.any() else np.sort(items)


def ego_graph(ds, u: int, rec_items: list[int], k_items: int = MAX_ITEMS,
              k_users: int = MAX_CO_USERS):  # fmt: skip
    """The user's neighbourhood as a networkx graph in four layers (the walk a GNN propagates):
    the user (0), their training items (1), other users of those items (2), the recommended items
    (3). For legibility the other users are the k_users sharing the most training items with the
    user and the items the k_items the shown users share most (ties to the lower index)."""
    import networkx as nx

    users, items = ds.train.users, ds.train.items
    mine = np.unique(items[users == u])
    shared = np.bincount(users[np.isin(items, mine)], minlength=ds.n_users)
    shared[u] = 0
    cand = np.nonzero(shared)[0]
    co = cand[np.lexsort((cand, -shared[cand]))][:k_users]
    pop = np.bincount(items[np.isin(users, co)], minlength=ds.n_items)[mine]
    shown = np.sort(mine[np.lexsort((mine, -pop))][:k_items])
    g = nx.Graph()
    g.add_node(("u", u), layer=0)
    g.add_nodes_from((("i", int(i)) for i in shown), layer=1)
    g.add_nodes_from((("u", int(v)) for v in co), layer=2)
    g.add_nodes_from((("r", int(i)) for i in rec_items), layer=3)
    g.add_edges_from(((("u", u), ("i", int(i))) for i in shown), kind="own")
    rec_set = set(int(i) for i in rec_items)
    shown_set = set(int(i) for i in shown)
    for v in co:
        for i in np.unique(items[users == v]):
            if int(i) in shown_set:
                g.add_edge(("u", int(v)), ("i", int(i)), kind="shared")
            elif int(i) in rec_set:
                g.add_edge(("u", int(v)), ("r", int(i)), kind="leads")
    return g


def draw_ego(ds, u: int, recs: list[dict], item_index: dict, path: pathlib.Path) -> str:
    """Draws `ego_graph` left to right (user, items, co-users, recommendations), the top-K with
    rank, title and score; returns the PNG's file name."""
    import networkx as nx

    names = titles(ds)
    rec_items = [item_index[r["item"]] for r in recs]
    g = ego_graph(ds, u, rec_items)
    pos = _layout(g)
    tallest = max(sum(1 for n in g if g.nodes[n]["layer"] == c) for c in range(4))
    fig = figure(13.0, max(4.5, 0.34 * tallest + 1.2))
    ax = fig.add_axes((0.01, 0.02, 0.98, 0.92))
    ax.axis("off")
    kinds = {"own": (SEARCHED, 1.4, 0.8), "shared": (BASELINE, 0.7, 0.35),
             "leads": (TOP, 0.9, 0.45)}  # fmt: skip
    for kind, (color, width, alpha) in kinds.items():
        edges = [e for e in g.edges if g.edges[e]["kind"] == kind]
        nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, edge_color=color, width=width,
                               alpha=alpha)  # fmt: skip
    style = {0: (SEARCHED, 420), 1: ("#9ecae1", 110), 2: ("#bdbdbd", 70), 3: (HIGHLIGHT, 140)}
    for layer, (color, size) in style.items():
        nodes = [n for n in g if g.nodes[n]["layer"] == layer]
        nx.draw_networkx_nodes(g, pos, nodelist=nodes, ax=ax, node_color=color, node_size=size)
    ids = np.asarray(ds.user_ids).astype(str)
    x0, y0 = pos[("u", u)]
    ax.text(x0, y0 + 0.09, f"user {ids[u]}", ha="center", va="bottom", fontsize=10,
            weight="bold")  # fmt: skip
    for kind, i in (n for n in g if n[0] == "i"):
        x, y = pos[(kind, i)]
        ax.text(x + 0.04, y, short(names[i], 28), ha="left", va="center", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.5})  # fmt: skip
    for kind, v in (n for n in g if n[0] == "u" and n[1] != u):
        x, y = pos[(kind, v)]
        ax.text(x + 0.04, y, ids[v], ha="left", va="center", fontsize=7, color="#555555")
    for r in recs:
        x, y = pos[("r", item_index[r["item"]])]
        ax.text(x + 0.05, y, f"#{r['rank']} {short(names[item_index[r['item']]], 34)}  "
                f"({r['score']:.3f})", ha="left", va="center", fontsize=8, color=HIGHLIGHT)  # fmt: skip
    for c, title in enumerate(("user", "training items", "users sharing them",
                               f"top-{len(recs)} recommended")):  # fmt: skip
        ax.text(c, 1.12, title, ha="center", va="bottom", fontsize=9, weight="bold")
    ax.set_xlim(-0.15, 4.1)
    ax.set_ylim(-1.12, 1.22)
    return save(fig, path)


def _layout(g) -> dict:
    """Column c = layer c, each column spread evenly over [-1, 1]: items in index order, the other
    users at the mean height of the items they share (fewer crossing edges), the recommendations
    in rank order (#1 at the top)."""
    cols = {c: [n for n in g if g.nodes[n]["layer"] == c] for c in range(4)}  # insertion order
    pos: dict = {}

    def place(c: int, nodes: list) -> None:
        ys = np.linspace(1, -1, len(nodes)) if len(nodes) > 1 else [0.0]
        pos.update({n: (float(c), float(y)) for n, y in zip(nodes, ys)})

    def height(n) -> float:
        return float(np.mean([pos[m][1] for m in g[n] if g.nodes[m]["layer"] == 1] or [0.0]))

    place(0, cols[0])
    place(1, cols[1])
    place(2, sorted(cols[2], key=lambda n: (-height(n), n)))
    place(3, cols[3])
    return pos
