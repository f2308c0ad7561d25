"""lab93zmq: a ZeroMQ messaging node for local networks."""

__version__ = "0.1.0"
