"""A sparse-dense product `A @ x` that reaches XLA:CPU's native CSR routine under grad and vmap.

`jax.experimental.sparse`'s BCSR product lowers to the native routine (`cpu_csr_sparse_dense_ffi`)
only when it is neither transposed by autodiff nor batched by vmap; otherwise it silently falls back
to gathers, which cost several times more on CPU. Two rules keep it native:

- a `custom_vjp` whose backward is again a CSR product, with the transpose stored explicitly;
- a `custom_vmap` rule that folds the population axis into the feature axis ([P, N, d] -> [N, P*d]),
  so that one native call serves a whole vmapped chunk (the graph is shared, only `x` is batched).

On GPU the same primitive lowers to the default (gather/scatter) or cuSPARSE path; the folding still
turns P small products into one wide one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental.sparse import bcsr as _bcsr
from jax.experimental.sparse.util import SparseInfo

from jgnas.graph import CSR

_DIMS = (([1], [0]), ([], []))


def _csr_product(data, indices, indptr, x):
    n = indptr.shape[0] - 1
    return _bcsr._bcsr_dot_general(
        data,
        indices,
        indptr,
        x,
        dimension_numbers=_DIMS,
        preferred_element_type=None,
        lhs_spinfo=SparseInfo((n, x.shape[0])),
    )


@jax.custom_batching.custom_vmap
def _product(data, indices, indptr, x):
    return _csr_product(data, indices, indptr, x)


@_product.def_vmap
def _product_vmap(axis_size, in_batched, data, indices, indptr, x):
    data_b, indices_b, indptr_b, x_b = in_batched
    if not (data_b or indices_b or indptr_b):
        # Shared matrix: fold the batch into the feature axis, one native call for all members.
        if not x_b:
            return _product(data, indices, indptr, x), False
        n, d = x.shape[1], x.shape[2]
        wide = jnp.moveaxis(x, 0, 1).reshape(n, axis_size * d)  # [N, P*d]
        y = _product(data, indices, indptr, wide)
        return jnp.moveaxis(y.reshape(-1, axis_size, d), 1, 0), True

    # Per-member matrices: still one native call per member, in sequence.
    def bcast(a, batched):
        return a if batched else jnp.broadcast_to(a, (axis_size,) + a.shape)

    args = tuple(bcast(a, b) for a, b in zip((data, indices, indptr, x), in_batched))
    return jax.lax.map(lambda a: _product(*a), args), True


@jax.custom_vjp
def _spmm(data, indices, indptr, data_t, indices_t, indptr_t, x):
    return _product(data, indices, indptr, x)


def _spmm_fwd(data, indices, indptr, data_t, indices_t, indptr_t, x):
    return _product(data, indices, indptr, x), (data_t, indices_t, indptr_t)


def _spmm_bwd(res, g):
    data_t, indices_t, indptr_t = res
    # The matrix is a constant of the graph: no cotangent for it.
    return (None, None, None, None, None, None, _product(data_t, indices_t, indptr_t, g))


_spmm.defvjp(_spmm_fwd, _spmm_bwd)


def spmm(m: CSR, x: jax.Array) -> jax.Array:
    """`m @ x` for a CSR matrix [N, N] and dense x [N, d]. Differentiable in x, vmappable.

    Args:
      m: the sparse matrix (with its transpose, used by the backward pass).
      x: [N, d] float32.

    Returns:
      [N, d] float32.
    """
    return _spmm(m.data, m.indices, m.indptr, m.data_t, m.indices_t, m.indptr_t, x)


def segment_spmm(m: CSR, x: jax.Array) -> jax.Array:
    """The same product on the jraph path (gather + `segment_sum`): the reference and baseline."""
    n = m.indptr.shape[0] - 1
    rows = jnp.repeat(
        jnp.arange(n, dtype=jnp.int32), jnp.diff(m.indptr), total_repeat_length=m.indices.shape[0]
    )
    return jax.ops.segment_sum(x[m.indices] * m.data[:, None], rows, n)
