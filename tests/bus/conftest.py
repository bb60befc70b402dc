"""The bus server both client modules test against: `broker bus serve` on a UNIX socket and
on TCP (127.0.0.1, a free port). `RS_BROKER_BIN` is our `broker` binary."""

import os
import socket
import subprocess
import tempfile

import pytest

BROKER = os.environ.get("RS_BROKER_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "broker"))


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="busrt-py-")
    sock = os.path.join(tmp, "bus.sock")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([BROKER, "bus", "serve", "-B", sock, "-B", "127.0.0.1:%d" % port],
                            stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    assert all("bus listening" in l for l in lines), lines
    yield {"unix": sock, "tcp": "127.0.0.1:%d" % port}
    proc.terminate()
    proc.wait(10)
