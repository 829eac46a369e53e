"""``python -m caravan``: the same command line as the ``caravan`` script."""
from caravan.server.cli import main

main()
