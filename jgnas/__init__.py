"""jgnas: graph neural architecture search for recommender systems, in JAX."""

__version__ = "0.1.0"
