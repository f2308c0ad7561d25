"""``python -m lab93zmq``: the same as the lab93-node command (whose console script
calls ``command`` too, as bin/lab93-node does)."""

from __future__ import annotations

import sys


def command() -> None:
    """Run the command line and exit with its status; the garbage collector is held off
    from its first import on, until the mode is loaded (frontend/startup.py)."""
    from .frontend import startup

    startup.hold()
    from .frontend.cli import main

    sys.exit(main())


if __name__ == "__main__":
    command()
