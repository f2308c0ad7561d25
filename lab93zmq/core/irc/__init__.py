"""The IRC face of the repeater, sans-IO: bytes in, outputs out, ``now`` passed in.

Nothing here opens a socket or reads a clock; the server's actor owns the TCP
listener and the client sockets, feeds what they read to a ``Gateway`` and
writes what it returns. The pieces (docs/IRC.rst is the full page):

* ``lines``: IRC lines with IRCv3 tags, parsed and written; the TCP line splitter;
* ``names``: IRC channels and nicks <-> lab93 rooms and user names;
* ``boundary``: the typed requests to the chat service and the events it feeds back;
* ``caps``: CAP negotiation; ``config``: limits and what 005 advertises;
* ``session``: one client's state and its ways to answer;
* ``connection``: the machine for one client (registration, flood, PING, dispatch);
* ``registration``, ``chat``, ``history``: the command handlers; ``render``: lines
  for stored messages;
* ``gateway``: every connection and the nick registry, routing service events.
"""
