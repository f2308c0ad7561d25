"""``python -m lab93zmq``: the same as the lab93-node command."""

import sys

from .frontend.cli import main

sys.exit(main())
