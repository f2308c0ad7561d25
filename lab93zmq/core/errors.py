"""Every error a user can see.

Each exception's docstring is the sentence shown when it is raised without a
more specific message; ``cli.main`` is the only place that turns these into
stderr text and an exit status (the magic-wormhole habit).
"""

from __future__ import annotations


class Lab93Error(Exception):
    """Something went wrong."""

    exit_status = 1

    def __str__(self) -> str:
        text = super().__str__()
        return text or (self.__doc__ or "").strip()


class UsageError(Lab93Error):
    """The command line is not valid; see lab93-node --help."""

    exit_status = 2


class ConfigError(Lab93Error):
    """The configuration is not usable."""


class SecurityError(ConfigError):
    """Secure mode cannot go on: a key is missing, refused or changed."""


class StoreError(Lab93Error):
    """The inbox could not be opened or written."""


class StoreFault(StoreError):
    """The store cannot be used now; no message is to blame.

    Raised instead of a plain StoreError (which refuses the rows at hand: a
    clash with a stored message) so that no caller mistakes a full disk for a
    bad message and drops it.
    """


class StoreUnavailable(StoreFault):
    """The store cannot be written now (a full or read-only disk, an unreachable database);
    it may come back by itself."""


class StoreLost(StoreFault):
    """The inbox was deleted, replaced or damaged under the running node, which stops."""


class ProtocolError(Lab93Error, ValueError):
    """A peer sent something this node does not understand."""


class MessageError(ProtocolError):
    """A message is not valid."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"message field {field!r} {problem}")
        self.field = field
        self.problem = problem


class UnreachableError(Lab93Error):
    """The server could not be reached."""


class UndeliveredError(Lab93Error):
    """Some messages were not delivered; they are kept in the inbox and sent next time."""


class RefusedError(Lab93Error):
    """The node refused to send this message; it was not stored."""


class ClosedError(Lab93Error):
    """This node is closed: open a new one to send or receive."""


# The errors a thread may end with, by name: how one crosses a pipe (``kind``) and is
# raised again on the other side as the class the API documents. A subclass that is
# not public crosses as its public base (a StoreLost as a StoreError).
_CROSSING: tuple[type[Lab93Error], ...] = (
    UsageError, SecurityError, ConfigError, StoreError, ProtocolError,
    UnreachableError, UndeliveredError, RefusedError, ClosedError,
)


def error_kind(error: Lab93Error) -> str:
    """The name of the public class ``error`` is raised as on the other side of a pipe."""
    for cls in _CROSSING:
        if isinstance(error, cls):
            return cls.__name__
    return Lab93Error.__name__


def error_of_kind(kind: object, text: str) -> Lab93Error:
    """The error ``error_kind`` named (an unknown or missing name: a plain Lab93Error)."""
    for cls in _CROSSING:
        if cls.__name__ == kind:
            return cls(text)
    return Lab93Error(text)
