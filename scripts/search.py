"""Architecture search on the default ml-100k data: `python scripts/search.py [flags]`.

The same as `jgnas search --config configs/ml100k.yaml [flags]`: search, retrain the winners and
the baselines over seeds, test once, and write a run directory (see README). Flags: --config,
--set SECTION.KEY=VALUE (repeatable), --out DIR, --resume RUN_DIR, -q.
"""

import pathlib
import sys

from jgnas.cli import main

DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parent.parent / "configs" / "ml100k.yaml"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--config" not in argv and "--resume" not in argv and DEFAULT_CONFIG.is_file():
        argv = ["--config", str(DEFAULT_CONFIG), *argv]
    sys.exit(main(["search", *argv]))
