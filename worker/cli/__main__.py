"""``python -m worker.cli``: the ``syndicate`` command."""

import sys

from worker.cli import main

sys.exit(main())
