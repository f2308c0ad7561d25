"""A client's posting, pure: drafts authored as its own messages, kept in its outbox.

A mixin of ``ClientCore`` (which has ``posts``, a ``window.PostWindow``, and
the attributes named below). Every post is authored with our next number,
encoded once and kept in the outbox in one transaction per burst
(``PostWindow.keep``); one the inbox cannot keep is rejected with the reason,
never lost silently and never fatal to the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..authoring import Draft, Numbering
from ..events import Event, Notice, Rejected, Topic
from ..message import Message
from ..rooms import shown
from .window import Outgoing, author, author_topic, outgoing


class ClientPosting:
    """``post``, ``submit``, ``set_topic`` of a repeater client."""

    user: str
    node_id: str
    numbering: Numbering
    posts: Any  # window.PostWindow
    ledger: Any  # ledger.ClientLedger

    def set_topic(self, room: str, text: str, now: datetime, entropy: bytes) -> list[Event]:
        """Set ``room``'s topic: a topic message dated to win (``now`` is the wall
        clock, ``entropy`` its id's random part), posted like any other; the new topic
        is told at once."""
        current = self.ledger.topics.current(room)
        post = author_topic(
            room, text, now, entropy, current, self.user, self.node_id, self.numbering
        )
        if not isinstance(post, Outgoing):
            return [Notice(f"cannot set the topic of {shown(room)}: {post.reason}")]
        for event in self.posts.keep([post]):
            if isinstance(event, Rejected):
                return [Notice(f"cannot set the topic of {shown(room)}: {event.reason}")]
        self.ledger.topics.consider(post.message)
        return [Topic.of(post.message)]

    def post(self, drafts: Sequence[Draft]) -> list[Event]:
        """Author the front end's drafts as our messages and keep them in the outbox
        (one transaction for the burst); an invalid or too big one is rejected."""
        return self.posts.keep([author(d, self.user, self.node_id, self.numbering) for d in drafts])

    def submit(self, message: Message) -> list[Event]:
        """Keep a message authored elsewhere in the outbox and send it when connected."""
        return self.submit_many([message])

    def submit_many(self, messages: Sequence[Message]) -> list[Event]:
        """``submit`` for a burst, stored in one transaction; too big ones are rejected."""
        return self.posts.keep([outgoing(message) for message in messages])
