"""The run report (`jgnas report RUN_DIR`): a static HTML page with the figures of a finished run.

`build` writes RUN_DIR/report/index.html: the search curve and the fitness per generation, the genes
of the best candidates, the Pareto front (with a cost objective), a drawing of the winner, the
learning curves and the final table of the finalists and baselines, a user's ego-graph and a few
users' top-K lists beside their histories.
"""

from jgnas.viz.page import build

__all__ = ["build"]
