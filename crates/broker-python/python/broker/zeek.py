"""Zeek messages on top of Broker: ``broker.zeek.Event(name, *args, metadata=None)`` to send,
``broker.zeek.Event(data)`` to read a received message."""

import broker  # noqa: F401  (as in Broker's module)

from . import Count
from ._broker import zeek as _zeek

Event = _zeek.Event


class MetadataType:
    """Well-known metadata keys of events."""

    NetworkTimestamp = Count(1)
    UserMetadataStart = Count(200)


class SafeEvent(Event):
    """An Event whose arguments come back in immutable, hashable forms (frozenset, read-only
    dicts), for values Python cannot otherwise represent, such as sets of tables."""

    def args(self):
        return self._args(True)


__all__ = ["Event", "SafeEvent", "MetadataType"]
