"""Has C++ Broker 1.4 (Debian's python3-broker) record: publishes a value of every type, each
on its own topic, and has a master store publish a put, with BROKER_RECORDING_DIRECTORY set.

Usage: /usr/bin/python3 broker14_record.py DIR. Broker writes DIR/messages.dat (a version-1
generator file), id.txt, peers.txt, topics.txt and broker.conf; the caller compares
messages.dat with what our writer makes of the same values.
"""
import datetime, ipaddress, os, sys, time

os.environ["BROKER_RECORDING_DIRECTORY"] = sys.argv[1]
import broker  # noqa: E402  (Broker reads the variable when the endpoint's configuration is made)

vals = [
  ("a", None), ("b", True), ("c", broker.Count(1234567890)), ("d", -1234567890), ("e", -1.0),
  ("f", "hello world"), ("g", ipaddress.IPv4Address("192.168.9.8")),
  ("h", ipaddress.IPv4Network("192.168.9.0/24")), ("i", broker.Port(8080, broker.Port.TCP)),
  ("j", datetime.timedelta(microseconds=1234567)), ("k", broker.Enum("foobar")),
  ("l", set([False, 7, "hello world"])), ("m", {1: "hello", 2: "world"}),
  ("n", (False, broker.Count(1), "hello world")), ("o", ipaddress.IPv6Network("2001:db8::/32")),
  ("p", datetime.datetime(2009, 2, 13, 23, 31, 30, tzinfo=datetime.timezone.utc)),
]
ep = broker.Endpoint()
sub = ep.make_subscriber("/vec")
for k, v in vals:
    ep.publish("/vec/" + k, v)
m = ep.attach_master("rec", broker.Backend.Memory)
m.put("key", broker.Count(42))
time.sleep(0.5)
ep.shutdown()
