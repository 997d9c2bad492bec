"""Architecture search on the default ml-100k data: `python scripts/search.py [flags]`.

The same as `jgnas search [flags]` (the default job, `configs/ml100k.yaml`): search, retrain the
winners and the baselines over seeds, test once, and write a run directory (see README). Flags:
--config, --set SECTION.KEY=VALUE (repeatable), --import MODULE, --out DIR, --resume RUN_DIR, -q.
"""

import sys

from jgnas.cli import main

if __name__ == "__main__":
    sys.exit(main(["search", *sys.argv[1:]]))
