"""Writes values of every type into a SQLite store with C++ Broker 1.4's Python bindings.

Usage: /usr/bin/python3 broker14_store.py PATH. Broker keeps keys and values as serialized
`data`, the same bytes as bin v1, so the caller can compare them with our encoder.
"""
import broker, ipaddress, datetime, sys, time
ep = broker.Endpoint()
m = ep.attach_master("vec", broker.Backend.SQLite, {"path": sys.argv[1]})
vals = [
  ("a", None), ("b", True), ("c", broker.Count(1234567890)), ("d", -1234567890), ("e", -1.0),
  ("f", "hello world"), ("g", ipaddress.IPv4Address("192.168.9.8")),
  ("h", ipaddress.IPv4Network("192.168.9.0/24")), ("i", broker.Port(8080, broker.Port.TCP)),
  ("j", datetime.timedelta(microseconds=1234567)), ("k", broker.Enum("foobar")),
  ("l", set([False, 7, "hello world"])), ("m", {1: "hello", 2: "world"}),
  ("n", (False, broker.Count(1), "hello world")), ("o", ipaddress.IPv6Network("2001:db8::/32")),
  ("p", datetime.datetime(2009,2,13,23,31,30, tzinfo=datetime.timezone.utc)),
]
for k, v in vals:
    m.put(k, v)
# Wait until the master has written everything (puts are asynchronous).
for _ in range(100):
    if len(m.keys()) == len(vals):
        break
    time.sleep(0.05)
print(len(m.keys()))
