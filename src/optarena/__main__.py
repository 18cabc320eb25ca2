"""``python -m optarena``: the same as the ``optarena`` command."""

import sys

from optarena.cli import main

sys.exit(main())
