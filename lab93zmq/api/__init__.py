"""The Python API behind ``lab93zmq``'s public names (docs/API.rst): options, the
actor pipe's bookkeeping, and the blocking Node and Server."""
