"""`python -m jgnas.cli ...`: the `jgnas` command."""

import sys

from jgnas.cli import main

sys.exit(main())
