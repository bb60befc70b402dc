"""The values both Broker 1.4 scripts write: one of every type, in the order of `EXPECTED` in
`tests/broker14_interop.rs`. Import after `broker` can be imported (Broker 1.4's bindings)."""
import datetime, ipaddress

import broker

VALUES = [
  ("a", None), ("b", True), ("c", broker.Count(1234567890)), ("d", -1234567890), ("e", -1.0),
  ("f", "hello world"), ("g", ipaddress.IPv4Address("192.168.9.8")),
  ("h", ipaddress.IPv4Network("192.168.9.0/24")), ("i", broker.Port(8080, broker.Port.TCP)),
  ("j", datetime.timedelta(microseconds=1234567)), ("k", broker.Enum("foobar")),
  ("l", set([False, 7, "hello world"])), ("m", {1: "hello", 2: "world"}),
  ("n", (False, broker.Count(1), "hello world")), ("o", ipaddress.IPv6Network("2001:db8::/32")),
  ("p", datetime.datetime(2009, 2, 13, 23, 31, 30, tzinfo=datetime.timezone.utc)),
]
