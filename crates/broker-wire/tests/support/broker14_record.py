"""Has C++ Broker 1.4 (Debian's python3-broker) record: publishes a value of every type, each
on its own topic, and has a master store publish a put, with BROKER_RECORDING_DIRECTORY set.

Usage: /usr/bin/python3 broker14_record.py DIR. Broker writes DIR/messages.dat (a version-1
generator file), id.txt, peers.txt, topics.txt and broker.conf; the caller compares
messages.dat with what our writer makes of the same values.
"""
import os, sys, time

os.environ["BROKER_RECORDING_DIRECTORY"] = sys.argv[1]
import broker  # noqa: E402  (Broker reads the variable when the endpoint's configuration is made)

from broker14_values import VALUES as vals  # noqa: E402

ep = broker.Endpoint()
sub = ep.make_subscriber("/vec")
for k, v in vals:
    ep.publish("/vec/" + k, v)
m = ep.attach_master("rec", broker.Backend.Memory)
m.put("key", broker.Count(42))
time.sleep(0.5)
ep.shutdown()
