"""Opens a SQLite store with C++ Broker 1.4's Python bindings and prints its entries.

Usage: /usr/bin/python3 broker14_read.py PATH. Prints one `key=value` line per entry, sorted.
"""
import broker, sys, time
ep = broker.Endpoint()
m = ep.attach_master("read", broker.Backend.SQLite, {"path": sys.argv[1]})
for k in sorted(m.keys(), key=str):
    print("%s=%s" % (k, m.get(k)))
