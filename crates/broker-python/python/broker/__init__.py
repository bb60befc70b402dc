"""broker-rs: Zeek Broker's publish/subscribe and data stores, with the Python API of
Broker's own bindings (``import broker``).

Values convert as Broker's documentation says: vectors come back as tuples, sets as sets,
tables as dicts, counts as ``broker.Count``, addresses and subnets as ``ipaddress`` objects,
timespans as ``datetime.timedelta``, timestamps as timezone-aware ``datetime.datetime`` and
strings that are not UTF-8 as ``bytes``. A value that cannot be converted raises
``TypeError`` naming its type.
"""

import collections  # noqa: F401  (Broker's module imports these; scripts may reach them)
import datetime  # noqa: F401
import ipaddress  # noqa: F401
import types  # noqa: F401
from datetime import timezone

from . import _broker
from ._broker import (  # noqa: F401
    EC,
    SC,
    Address,
    Backend,
    BrokerOptions,
    Configuration,
    Count,
    Endpoint,
    EndpointInfo,
    Enum,
    Error,
    NetworkInfo,
    PeerFlags,
    PeerInfo,
    PeerStatus,
    Port,
    Publisher,
    Set,
    Status,
    StatusSubscriber,
    Store,
    Subnet,
    Subscriber,
    Table,
    Timespan,
    Timestamp,
    Topic,
    Vector,
    Version,
    now,
)
from ._broker import APIFlags, Frontend  # noqa: F401

#: The timezone of the timestamps Broker hands out (``datetime.timezone.utc``).
utc = timezone.utc


def _version_string():
    """The version as ``"MAJOR.MINOR.PATCH"``."""
    return f"{Version.MAJOR}.{Version.MINOR}.{Version.PATCH}"


Version.string = _version_string

# pybind11's enums, which Broker's bindings use, tell their member's name and number.
for _enum in (EC, SC, PeerStatus, PeerFlags, Backend, APIFlags, Frontend, _broker.Data.Type,
              Port.Protocol, Address.Family, Address.ByteOrder):
    _enum.name = property(lambda self: repr(self).rsplit(".", 1)[-1])
    _enum.value = property(lambda self: int(self))
del _enum


class Data(_broker.Data):
    """A Broker value: ``broker.Data(x)`` converts a Python value (or one of the value
    classes: ``Address``, ``Subnet``, ``Timespan``, ``Timestamp``, ``Set``, ``Table``,
    ``Vector``, ``Count``, ``Enum``, ``Port``) once; ``get_type()`` returns a ``Data.Type``,
    the ``as_*`` accessors the value, ``str()`` Broker's text form. The elements of
    containers (``as_set()``, ``as_vector()``, …) are plain ``_broker.Data`` values, as in
    Broker."""

    @staticmethod
    def from_py(x):
        """``Data(x)``."""
        return Data(x)

    @staticmethod
    def to_py(d):
        """The Python value of a ``Data`` (see the module's table of conversions)."""
        return _broker.Data.to_py(d)


class ImmutableData(Data):
    """A ``Data`` whose ``to_py`` gives immutable, hashable forms: sets as ``frozenset``,
    tables as hashable read-only dicts, vectors as tuples."""

    @staticmethod
    def to_py(d):
        """The immutable Python value of a ``Data``."""
        return _broker.Data.to_py(d, True)


class Message:
    """The base of Zeek's messages (``broker.zeek.Event``) in Broker's module."""

    def to_broker(self):
        """Overridden by each message type."""
        raise NotImplementedError("method not overridden")


class _HashableReadOnlyDict(dict):
    """The dict of immutable conversions (``make_safe_subscriber``, ``zeek.SafeEvent``):
    hashable and read-only, so that tables can be set members or table keys."""

    def __hash__(self):
        return hash(frozenset(self.items()))

    def _readonly(self, *args, **kwargs):
        raise TypeError("cannot modify this dict")

    __setitem__ = _readonly
    __delitem__ = _readonly
    pop = _readonly
    popitem = _readonly
    clear = _readonly
    update = _readonly
    setdefault = _readonly


# Broker's name for the wrapper of immutable conversions.
SafeSubscriber = Subscriber

from . import zeek  # noqa: E402,F401

# Broker 1.x called the module `bro`; its scripts keep working.
bro = zeek
import sys as _sys  # noqa: E402

_sys.modules[__name__ + ".bro"] = zeek

ImmutableData.HashableReadOnlyDict = _HashableReadOnlyDict

__all__ = [
    "APIFlags", "EC", "SC", "Address", "Backend", "BrokerOptions", "Configuration", "Count",
    "Data", "Endpoint", "EndpointInfo", "Enum", "Error", "Frontend", "ImmutableData",
    "Message", "NetworkInfo", "PeerFlags", "PeerInfo", "PeerStatus", "Port", "Publisher",
    "SafeSubscriber", "Set", "Status", "StatusSubscriber", "Store", "Subnet", "Subscriber",
    "Table", "Timespan", "Timestamp", "Topic", "Vector", "Version", "now", "utc", "zeek", "bro",
]
