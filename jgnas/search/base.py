"""The strategy interface: genome specifications and the `Strategy(init, ask, tell)` bundle.

Genomes are float32 vectors in [0, 1]; gene ``g`` with cardinality ``sizes[g] > 0`` decodes to
bin ``min(floor(x * size), size - 1)`` and a gene with size 0 is continuous. Fitness is *higher is
better*; any non-finite fitness marks a failed candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

# Step of the Gaussian mutation of a continuous gene, in genome units.
_CONTINUOUS_STEP = 0.1


# --------------------------------------------------------------------------------------------
# Genome specification
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GenomeSpec:
    """Cardinalities of the genes of a genome.

    Attributes:
      sizes: one int per gene: ``k >= 1`` for a discrete gene with ``k`` choices, 0 for a
        continuous gene. Hashable, so a spec can be a static argument of ``jax.jit``.
    """

    sizes: tuple[int, ...]

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if not sizes:
            raise ValueError("GenomeSpec.sizes is empty: a genome needs at least one gene")
        for g, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(
                    f"GenomeSpec.sizes[{g}] = {s!r}: expected an int >= 1 (discrete) or 0 "
                    "(continuous)"
                )
        object.__setattr__(self, "sizes", tuple(int(s) for s in sizes))

    @property
    def n_genes(self) -> int:
        """Number of genes G."""
        return len(self.sizes)

    def random(self, key: jax.Array, n: int) -> jax.Array:
        """Uniform genomes.

        Args:
          key: PRNG key.
          n: number of genomes.

        Returns:
          float32 ``[n, G]`` uniform in [0, 1).
        """
        return jax.random.uniform(key, (n, self.n_genes), jnp.float32)

    def bins(self, genomes: jax.Array) -> jax.Array:
        """Bin index of every discrete gene (the decoding rule); 0 for continuous genes.

        Args:
          genomes: ``[..., G]`` float genomes.

        Returns:
          int32 ``[..., G]``: ``clip(floor(x * size), 0, size - 1)`` per discrete gene.
        """
        sizes = np.asarray(self.sizes)
        safe = np.maximum(sizes, 1).astype(np.float32)
        b = jnp.floor(jnp.asarray(genomes, jnp.float32) * safe).astype(jnp.int32)
        b = jnp.clip(b, 0, np.maximum(sizes - 1, 0))
        return jnp.where(sizes > 0, b, 0)

    def canonical(self, genomes: jax.Array) -> jax.Array:
        """Snap discrete genes to their bin centre ``(k + 0.5) / size``; keep continuous genes.

        Two genomes with the same canonical form decode to the same architecture, so this is the
        key for de-duplication. Idempotent.

        Args:
          genomes: ``[..., G]`` float genomes.

        Returns:
          float32 ``[..., G]``.
        """
        genomes = jnp.asarray(genomes, jnp.float32)
        sizes = np.asarray(self.sizes)
        safe = np.maximum(sizes, 1).astype(np.float32)
        centre = (self.bins(genomes).astype(jnp.float32) + 0.5) / safe
        return jnp.where(sizes > 0, centre, genomes)

    def mutate_one(self, key: jax.Array, genome: jax.Array) -> jax.Array:
        """Change exactly one gene.

        The gene is chosen uniformly among genes of size != 1 (a gene with a single choice
        cannot change; if every gene has size 1 the genome is returned unchanged). A discrete
        gene moves to a *different* bin chosen uniformly, placed at that bin's centre. A
        continuous gene is, with probability 1/2 each, resampled uniformly in [0, 1) (escapes
        a bad region) or moved by a Gaussian step of std 0.1 clipped to [0, 1] (refines a good
        value).

        Args:
          key: PRNG key.
          genome: ``[G]`` float genome.

        Returns:
          float32 ``[G]`` genome.
        """
        genome = jnp.asarray(genome, jnp.float32)
        sizes_np = np.asarray(self.sizes)
        mutable = sizes_np != 1
        if not mutable.any():
            return genome
        key_gene, key_bin, key_mode, key_uniform, key_step = jax.random.split(key, 5)
        g = jax.random.choice(key_gene, self.n_genes, p=jnp.asarray(mutable / mutable.sum()))
        size = jnp.asarray(sizes_np, jnp.int32)[g]
        x = genome[g]

        safe = jnp.maximum(size, 2)  # keeps randint and the modulo defined for size 0
        current = jnp.clip(jnp.floor(x * size).astype(jnp.int32), 0, safe - 1)
        shift = jax.random.randint(key_bin, (), 1, safe)  # in [1, size - 1]: a different bin
        x_discrete = ((current + shift) % safe + 0.5) / safe

        x_uniform = jax.random.uniform(key_uniform, ())
        x_step = jnp.clip(x + _CONTINUOUS_STEP * jax.random.normal(key_step, ()), 0.0, 1.0)
        x_continuous = jnp.where(jax.random.bernoulli(key_mode), x_uniform, x_step)

        x_new = jnp.where(size == 0, x_continuous, x_discrete).astype(jnp.float32)
        return genome.at[g].set(x_new)


# --------------------------------------------------------------------------------------------
# Strategy interface
# --------------------------------------------------------------------------------------------

InitFn = Callable[[jax.Array], PyTree]
AskFn = Callable[[jax.Array, PyTree], tuple[jax.Array, PyTree]]
TellFn = Callable[[jax.Array, jax.Array, jax.Array, PyTree], PyTree]


class Strategy(NamedTuple):
    """A search strategy as a bundle of pure, jittable functions.

    Attributes:
      init: ``init(key) -> state``. The state is a pytree of arrays (checkpointable with orbax).
      ask: ``ask(key, state) -> (genomes [P, G] float32 in [0, 1], state)``.
      tell: ``tell(key, genomes [P, G], fitness [P], state) -> state``. Fitness is higher is
        better; non-finite entries mark failed candidates. ``genomes`` must be the ones the
        preceding ``ask`` returned, in the same order (the evosax adapter also accepts other
        genomes, see ``make_evosax``).
      population_size: P, the number of genomes per ``ask``.
      name: registry name of the strategy.
    """

    init: InitFn
    ask: AskFn
    tell: TellFn
    population_size: int
    name: str


def check_population_size(population_size: int) -> int:
    if isinstance(population_size, bool) or not isinstance(population_size, (int, np.integer)):
        raise ValueError(f"population_size must be an int, got {population_size!r}")
    if population_size < 1:
        raise ValueError(f"population_size must be >= 1, got {population_size}")
    return int(population_size)
