"""``python -m caravan``: the same command line as the ``caravan`` script."""
import sys

from caravan.server.cli import main

sys.exit(main())
