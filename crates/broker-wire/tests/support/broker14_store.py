"""Writes values of every type into a SQLite store with C++ Broker 1.4's Python bindings.

Usage: /usr/bin/python3 broker14_store.py PATH. Broker keeps keys and values as serialized
`data`, the same bytes as bin v1, so the caller can compare them with our encoder.
"""
import broker, sys, time
from broker14_values import VALUES as vals

ep = broker.Endpoint()
m = ep.attach_master("vec", broker.Backend.SQLite, {"path": sys.argv[1]})
for k, v in vals:
    m.put(k, v)
# Wait until the master has written everything (puts are asynchronous).
for _ in range(100):
    if len(m.keys()) == len(vals):
        break
    time.sleep(0.05)
print(len(m.keys()))
