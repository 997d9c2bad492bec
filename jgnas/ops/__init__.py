"""Message-passing ops on the shared graph: a registry, the built-in ops, and the fast kernel."""

from jgnas.ops import builtin  # noqa: F401  (registers the built-in ops)
from jgnas.ops.builtin import BUILTIN_OPS, FAST_OPS
from jgnas.ops.kernel import segment_spmm, spmm
from jgnas.ops.registry import OPS, OpContext, OpSpec, init_layer_params, register

__all__ = [
    "BUILTIN_OPS",
    "FAST_OPS",
    "OPS",
    "OpContext",
    "OpSpec",
    "init_layer_params",
    "register",
    "segment_spmm",
    "spmm",
]
