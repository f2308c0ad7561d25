"""lab93zmq: a ZeroMQ messaging node for local networks, as a library.

The public face (docs/API.rst documents every name)::

    import lab93zmq

    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"]) as server:
        with lab93zmq.Node.repeater(address="127.0.0.1", port=server.router_port,
                                    interfaces=["lo"]) as node:
            node.send("hello")

``lab93zmq.aio`` has the same for asyncio. Names are loaded on first use, so
importing the package costs nothing until a node is made (and the pure core,
``lab93zmq.core``, never loads ZeroMQ).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

if TYPE_CHECKING:
    from .api.node import Node, Server, scan
    from .api.values import message_id
    from .core.errors import (
        ClosedError,
        ConfigError,
        Lab93Error,
        MessageError,
        ProtocolError,
        RefusedError,
        SecurityError,
        StoreError,
        UndeliveredError,
        UnreachableError,
        UsageError,
    )
    from .core.events import (
        Accepted,
        Joined,
        Member,
        Notice,
        Parted,
        Rejected,
        RoomInfo,
        Status,
        Topic,
    )
    from .core.message import Message
    from .core.rooms import RoomError
    from .core.sighting import Sighting

# name -> the module that defines it
_EXPORTS = {
    "Node": "api.node",
    "Server": "api.node",
    "scan": "api.node",
    "Message": "core.message",
    "message_id": "api.values",
    "Sighting": "core.sighting",
    **{
        name: "core.events"
        for name in (
            "Accepted", "Joined", "Member", "Notice", "Parted", "Rejected", "RoomInfo",
            "Status", "Topic",
        )
    },
    "RoomError": "core.rooms",
    **{
        name: "core.errors"
        for name in (
            "ClosedError", "ConfigError", "Lab93Error", "MessageError", "ProtocolError",
            "RefusedError", "SecurityError", "StoreError", "UndeliveredError",
            "UnreachableError", "UsageError",
        )
    },
}

__all__ = [
    "__version__",
    "Accepted",
    "ClosedError",
    "ConfigError",
    "Joined",
    "Lab93Error",
    "Member",
    "Message",
    "MessageError",
    "Node",
    "Notice",
    "Parted",
    "ProtocolError",
    "RefusedError",
    "Rejected",
    "RoomError",
    "RoomInfo",
    "SecurityError",
    "Server",
    "Sighting",
    "Status",
    "StoreError",
    "Topic",
    "UndeliveredError",
    "UnreachableError",
    "UsageError",
    "message_id",
    "scan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lab93zmq' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
