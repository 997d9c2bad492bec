"""Architecture search on the default ml-100k data: `python scripts/search.py [flags]`.

The default job: `jgnas search --config configs/ml100k.yaml [flags]` (search, tune and retrain the
winner and the baselines over seeds, test once, write a run directory; see README). Flags:
--config (default configs/ml100k.yaml), --set SECTION.KEY=VALUE (repeatable), --import MODULE,
--out DIR, --resume RUN_DIR, -q.
"""

import pathlib
import sys

from jgnas.cli import main

DEFAULT = pathlib.Path(__file__).resolve().parent.parent / "configs" / "ml100k.yaml"

if __name__ == "__main__":
    argv = sys.argv[1:]
    given = any(a == "--config" or a.startswith("--config=") or a == "--resume" for a in argv)
    sys.exit(main(["search", *([] if given else ["--config", str(DEFAULT)]), *argv]))
