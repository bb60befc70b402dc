"""broker-rs: Zeek Broker's publish/subscribe and data stores, with the Python API of
Broker's own bindings (``import broker``).

Values convert as Broker's documentation says: vectors come back as tuples, sets as sets,
tables as dicts, counts as ``broker.Count``, addresses and subnets as ``ipaddress`` objects,
timespans as ``datetime.timedelta``, timestamps as timezone-aware ``datetime.datetime`` and
strings that are not UTF-8 as ``bytes``. A value that cannot be converted raises
``TypeError`` naming its type.
"""

from . import _broker
from ._broker import (  # noqa: F401
    EC,
    SC,
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
    Status,
    StatusSubscriber,
    Store,
    Subscriber,
    Topic,
    Version,
    now,
)
from ._broker import Data  # noqa: F401


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

__all__ = [
    "EC", "SC", "Backend", "BrokerOptions", "Configuration", "Count", "Data", "Endpoint",
    "EndpointInfo", "Enum", "Error", "NetworkInfo", "PeerFlags", "PeerInfo", "PeerStatus",
    "Port", "Publisher", "Status", "StatusSubscriber", "Store", "Subscriber", "Topic",
    "Version", "now", "zeek", "bro",
]
