"""Why a user is shown an item: the score split over the input nodes and the graph walks behind it.

The score is `s = h_u · h_i`, where `h` is the combined output of the layers run on the input
embeddings `h0` (ID embedding, projected text, or both). Two splits are reported, each summing to
the score:

    user side   s = Σ_n c^u_n,   c^u_n = h_i · (J_un h0_n)     J_un = ∂h_u / ∂h0_n (h_i held fixed)
    item side   s = Σ_n c^i_n,   c^i_n = h_u · (J_in h0_n)     J_in = ∂h_i / ∂h0_n (h_u held fixed)

The user side says which of the user's interactions (items at one hop), which co-users (two hops)
and so on built the user's vector, measured along the item; the item side does the same for the
item's vector. Three methods, chosen from the architecture (`method_of`):

- "exact (propagation matrix powers)": every active layer is `h' = P_l h (+ h when residual)` with
  `P_l` a node-by-node matrix (lightgcn; gcn, mean or sum without their transform; identity
  activation) and the combination is last, mean, sum or learned. Then `h = T h0` with
  `T = Σ_l w_l P_{l-1} ⋯ P_0` (w_l the combination's layer weights), so `c^u_n = T_un (h0_n · h_i)`
  exactly, and `T_un` is itself the sum over the walks from n to u of `w_l` times the product of
  the walk's coefficients. Each node lists its strongest walk of every length, with that walk's
  exact share of the score.
- "exact (linear Jacobian)": the model is linear in h0 but mixes dimensions (a transform W, sage's
  W2, the concat projection): J is constant, and `c_n` computed by autodiff (a VJP) is exact.
- "gradient x input": anything else (activations, ngcf, gat, max, ops from plugins). `c_n` is the
  same formula with J taken at the actual h0, so `Σ_n c^u_n = d/dα [h_u(α h0) · h_i]` at α = 1.
  That equals s only for a model positively homogeneous of degree 1 in h0 (e.g. relu or
  leaky_relu layers over linear ops); in general it differs, and the response shows both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jgnas import model as model_lib
from jgnas.space import ACTIVATIONS, COMBINES, TRANSFORMS

EXACT_PATHS = "exact (propagation matrix powers)"
EXACT_LINEAR = "exact (linear Jacobian)"
GRAD_X_INPUT = "gradient x input"

# Ops whose output is linear in h (for a fixed graph and fixed weights).
LINEAR_OPS = frozenset({"gcn", "lightgcn", "mean", "sum", "sage"})
# Ops that, without their transform, are one node-by-node matrix: the CSR of jgnas.graph.Graph.
SCALAR_OPS = {"lightgcn": "sym", "gcn": "sym", "mean": "mean", "sum": "adj"}

__all__ = ["EXACT_LINEAR", "EXACT_PATHS", "GRAD_X_INPUT", "Explainer", "method_of"]


def method_of(space, arch) -> str:
    """The decomposition used for an (unbatched) arch; see the module docstring."""
    d = space.to_dict(arch)
    layers = d["layers"]
    if any(l["act"] != ACTIVATIONS[0] for l in layers):
        return GRAD_X_INPUT
    if any(l["op"] not in LINEAR_OPS for l in layers):
        return GRAD_X_INPUT
    scalar = all(
        l["op"] in SCALAR_OPS and (l["op"] == "lightgcn" or l["transform"] == TRANSFORMS[0])
        for l in layers
    )
    if scalar and (not layers or d["combine"] != "concat"):
        return EXACT_PATHS
    return EXACT_LINEAR


@dataclasses.dataclass
class Walk:
    nodes: list[int]  # graph node ids, from the source node to the target (u or i)
    weight: float  # w_l times the product of the walk's coefficients
    contribution: float  # weight times (h0_source · h_other)


class Explainer:
    """Explains scores of a loaded winner (`jgnas.export.Winner`).

    Nodes are graph node ids: users 0..U-1, items U..U+I-1. Thread-safe after construction.
    """

    def __init__(self, winner):
        self.winner = winner
        ctx = winner.ctx
        self.space = ctx.space
        self.inputs = ctx.data.inputs
        self.n_users = ctx.dataset.n_users
        self.method = method_of(self.space, winner.arch)
        g = self.inputs.graph
        n = g.n_node
        self._adj = sp.csr_matrix(
            (
                np.ones(len(np.asarray(g.adj.indices))),
                np.asarray(g.adj.indices),
                np.asarray(g.adj.indptr),
            ),
            shape=(n, n),
        )
        self._h0 = self._inputs_h0()
        if self.method == EXACT_PATHS:
            self._ops, self._w = self._scalar_chain()
            self._abs_t = [abs(p).T.tocsr() for p in self._ops]
            self._csc = [p.tocsc() for p in self._ops]
        self._vjp = _make_vjp(self.space, winner.arch)

    # ---- the linear chain -------------------------------------------------------------------------
    def _inputs_h0(self) -> np.ndarray:
        """h0 [N, d] as `model.propagate` builds it (features gene, dimension mask)."""
        p, a = self.winner.params, self.winner.arch
        return np.asarray(model_lib.input_embeddings(p, a, self.inputs, self.space), np.float32)

    def _scalar_chain(self) -> tuple[list[sp.csr_matrix], np.ndarray]:
        """Per active layer, P_l (sparse [N, N], float64); and the combination weights w [depth+1]."""
        g, a, p = self.inputs.graph, self.winner.arch, self.winner.params
        n = g.n_node
        depth = int(a.depth)
        eye = sp.identity(n, format="csr")
        ops = []
        for l in range(depth):
            name = self.space.ops[int(a.op[l])]
            m = getattr(g, SCALAR_OPS[name])
            mat = sp.csr_matrix(
                (np.asarray(m.data, np.float64), np.asarray(m.indices), np.asarray(m.indptr)),
                shape=(n, n),
            )
            if name == "sum":
                mat = mat + (1.0 + float(p["layers"]["eps"][l])) * eye
            if int(a.residual[l]):
                mat = mat + eye
            ops.append(mat.tocsr())
        combine = COMBINES[int(a.combine)] if depth else "last"
        k = np.arange(depth + 1)
        w = {
            "last": (k == depth).astype(np.float64),
            "mean": np.full(depth + 1, 1.0 / (depth + 1)),
            "sum": np.ones(depth + 1),
        }.get(combine)
        if combine == "learned":
            alpha = np.asarray(p["alpha"][: depth + 1], np.float64)
            w = np.exp(alpha - alpha.max())
            w = w / w.sum()
        return ops, w

    def transfer_row(self, node: int) -> np.ndarray:
        """T[node, :] = Σ_l w_l e_node^T P_{l-1} ⋯ P_0 (dense [N]); exact-paths method only."""
        n = self.inputs.graph.n_node
        out = np.zeros(n)
        for l, w in enumerate(self._w):
            if w == 0:
                continue
            v = np.zeros(n)
            v[node] = 1.0
            for t in reversed(range(l)):
                v = self._ops[t].T @ v
            out += w * v
        return out

    def _best_walks(
        self, target: int, sources: list[int], other: np.ndarray
    ) -> dict[int, list[Walk]]:
        """The strongest walk of each length from every source node to `target` (max-product DP
        over |coefficients|, then backtracking), with its exact share of the score."""
        walks: dict[int, list[Walk]] = {s: [] for s in sources}
        other = other[: self._h0.shape[1]]  # non-concat: the combined layers fill the first d
        dots = {s: float(self._h0[s] @ other) for s in sources}
        for l, w in enumerate(self._w):
            if w == 0:
                continue
            levels = [np.zeros(self.inputs.graph.n_node)]
            levels[0][target] = 1.0
            for s in range(l):  # walking back from target: layer l-1 first
                levels.append(_max_product(self._abs_t[l - 1 - s], levels[-1]))
            for src in sources:
                if levels[l][src] <= 0:
                    continue
                nodes, node = [src], src
                for s in range(l, 0, -1):  # forward from src: layer 0 first
                    pmat = self._csc[l - s]  # P[next, node], column `node`
                    lo, hi = pmat.indptr[node], pmat.indptr[node + 1]
                    cand = levels[s - 1][pmat.indices[lo:hi]] * np.abs(pmat.data[lo:hi])
                    node = int(pmat.indices[lo + int(np.argmax(cand))])
                    nodes.append(node)
                weight = w * np.prod(
                    [self._ops[t][nodes[t + 1], nodes[t]] for t in range(l)], dtype=np.float64
                )
                walks[src].append(Walk(nodes, float(weight), float(weight * dots[src])))
        for s in sources:
            walks[s].sort(key=lambda wk: -abs(wk.contribution))
        return walks

    # ---- contributions ------------------------------------------------------------------------------
    def contributions(
        self, u: int, item_node: int | None, item_vec: np.ndarray | None = None, via: str = "auto"
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """(score, user-side c^u [N], item-side c^i [N] or None).

        item_node: the item's graph node id; None for an item added at serving time, whose vector
        `item_vec` then comes from its text alone (it has no graph node: no item side).
        via: "auto" (the method's own way), or "autodiff" (the VJP, whatever the method: for a
        linear arch it must agree with the matrix powers)."""
        w = self.winner
        h_u = w.user_emb[u]
        h_i = w.item_emb[item_node - self.n_users] if item_vec is None else np.asarray(item_vec)
        score = float(h_u @ h_i)
        if self.method == EXACT_PATHS and via == "auto":
            d = self._h0.shape[1]  # a non-concat combination fills the first d columns only
            dot_i = self._h0 @ h_i[:d].astype(np.float64)
            c_u = self.transfer_row(u) * dot_i
            c_i = None
            if item_node is not None:
                c_i = self.transfer_row(item_node) * (self._h0 @ h_u[:d].astype(np.float64))
            return score, c_u, c_i
        node_i = 0 if item_node is None else item_node
        c_u, c_i = self._vjp(
            w.params,
            self.inputs,
            jnp.int32(u),
            jnp.int32(node_i),
            jnp.asarray(h_i, jnp.float32),
            jnp.asarray(h_u, jnp.float32),
        )
        return score, np.asarray(c_u, np.float64), None if item_node is None else np.asarray(c_i)

    def hops(self, node: int, max_hops: int) -> np.ndarray:
        """Shortest-path distance (in edges) from `node`, -1 beyond max_hops."""
        n = self._adj.shape[0]
        dist = np.full(n, -1)
        dist[node] = 0
        frontier = np.zeros(n, bool)
        frontier[node] = True
        for h in range(1, max_hops + 1):
            reach = (self._adj @ frontier.astype(np.float64)) > 0
            new = reach & (dist < 0)
            dist[new] = h
            frontier = new
        return dist

    def explain(
        self,
        u: int,
        item_node: int | None,
        label: Callable[[int], dict],
        item_vec: np.ndarray | None = None,
        top: int = 10,
    ) -> dict:
        """The JSON-ready explanation of the score of (user u, item): method, score, both sides.

        label(node) -> {"kind": "user"|"item", "id": raw id, ...} names a graph node."""
        score, c_u, c_i = self.contributions(u, item_node, item_vec)
        h_i = self.winner.item_emb[item_node - self.n_users] if item_vec is None else item_vec
        h_u = self.winner.user_emb[u]
        seen = set(np.asarray(self._adj[u].indices).tolist()) - {u}  # the user's training items
        out = {
            "method": self.method,
            "exact": self.method != GRAD_X_INPUT,
            "score": score,
            "user_side": self._side(u, c_u, score, np.asarray(h_i), label, seen, top),
        }
        interactions = sorted(seen, key=lambda n: -abs(c_u[n]))
        out["interactions"] = {
            "count": len(seen),
            "sum": float(sum(c_u[n] for n in seen)),
            "top": [{**label(n), "contribution": float(c_u[n])} for n in interactions[:top]],
        }
        if c_i is not None:
            out["item_side"] = self._side(item_node, c_i, score, np.asarray(h_u), label, seen, top)
        else:
            out["item_side"] = {
                "sum": score,
                "note": "an item added from its text at serving time: no graph node and no "
                "interactions, so its whole vector comes from its text",
            }
        return out

    def _side(self, target, c, score, other, label, seen, top) -> dict:
        order = np.argsort(-np.abs(c), kind="stable")[:top]
        order = [int(n) for n in order if c[n] != 0]
        depth = int(self.winner.arch.depth)
        dist = self.hops(target, max(depth, 1))
        walks = self._best_walks(target, order, other) if self.method == EXACT_PATHS else {}
        rows = []
        for n in order:
            row = {
                **label(n),
                "contribution": float(c[n]),
                "share": float(c[n] / score) if score else None,
                "hops": int(dist[n]),
                "interaction": n in seen,
            }
            if n in walks:
                row["walks"] = [
                    {
                        "path": [f"{label(m)['kind']}:{label(m)['id']}" for m in wk.nodes],
                        "length": len(wk.nodes) - 1,
                        "weight": wk.weight,
                        "contribution": wk.contribution,
                    }
                    for wk in walks[n][:3]
                ]
            rows.append(row)
        total = float(np.sum(c))
        return {"sum": total, "rest": total - float(sum(c[n] for n in order)), "top": rows}


def _max_product(abs_t: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
    """out[p] = max_q b[q] |P[q, p]|, given |P|^T in CSR (rows p)."""
    vals = b[abs_t.indices] * abs_t.data
    out = np.zeros(abs_t.shape[0])
    rows = np.flatnonzero(np.diff(abs_t.indptr))
    if len(rows):
        out[rows] = np.maximum.reduceat(vals, abs_t.indptr[rows])
    return out


def _make_vjp(space, arch):
    """Jitted (params, inputs, u, i, h_i, h_u) -> (c^u [N], c^i [N]) by one VJP each.

    The arch is a closure of Python ints (a static arch): only its active layers and chosen ops
    are traced, which compiles many times faster than the supernet's switches over every op (the
    graph and parameters stay arguments: closed-over graphs get constant-folded)."""
    arch = jax.tree.map(np.asarray, arch)

    # The inputs enter only through h0 (id rows, projected text, pooled side values: linear in
    # each), so the arch runs from h0 itself: id features over an "embedding table" h0.
    from_h0 = arch.replace(features=np.int32(0))

    def contributions(params, inputs, u, i, target_u, target_i):
        h0 = model_lib.input_embeddings(params, arch, inputs, space)

        def f(h0):
            fwd = model_lib.propagate(dict(params, emb=h0), from_h0, inputs, None, space=space)
            return fwd.out[u], fwd.out[i]

        (hu, hi), vjp = jax.vjp(f, h0)
        (g_u,) = vjp((target_u, jnp.zeros_like(hi)))
        (g_i,) = vjp((jnp.zeros_like(hu), target_i))
        # Σ_dims ∂g/∂h0_n · h0_n: node n's share of the score (the chain is linear in h0).
        return (g_u * h0).sum(1), (g_i * h0).sum(1)

    return jax.jit(contributions)
