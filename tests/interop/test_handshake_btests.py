"""Broker's own handshake btests (zeek/broker `tests/btest/handshake/*.py`), run against our
`broker node` where they run `broker-node`, and compared byte for byte with Broker's
baselines.

The scripts and baselines are Broker's test data in ../shared/broker-btests (read from there,
never copied); without that folder these tests are skipped with one line saying so.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from harness import RsNode, broker_bin

BTESTS = os.environ.get(
    "RS_BROKER_BTESTS_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "broker-btests"),
)
NAMES = ["originator", "responder", "redundant-connection", "version-mismatch"]


def extract(script, name):
    """The text between `@TEST-START-FILE name` and `@TEST-END-FILE`."""
    m = re.search(r"@TEST-START-FILE %s\n(.*?)@TEST-END-FILE" % re.escape(name), script, re.S)
    assert m, "no %s in the btest" % name
    return m.group(1)


def node_args(cfg):
    """Our node's flags for a btest's node.cfg (disable-ssl and topics are all they use)."""
    args = []
    m = re.search(r"topics\s*=\s*\[(.*?)\]", cfg)
    for t in re.findall(r'"([^"]*)"', m.group(1) if m else ""):
        args += ["--subscribe", t]
    return args, "disable-ssl = true" in cfg


@pytest.mark.parametrize("name", NAMES)
def test_broker_handshake_btest(name, tmp_path):
    if not os.path.isdir(BTESTS):
        pytest.skip("Broker's btests not found at %s (../shared/broker-btests)" % BTESTS)
    with open(os.path.join(BTESTS, "handshake", name + ".py")) as f:
        script = f.read()
    with open(os.path.join(BTESTS, "Baseline", "handshake." + name, "peer.peer.out")) as f:
        baseline = f.read()
    # btest-diff ignores the baseline's header comment.
    expected = "".join(l for l in baseline.splitlines(True) if not l.startswith("### "))
    work = tmp_path / "peer"
    work.mkdir()
    (tmp_path / "peer.py").write_text(extract(script, "peer.py"))
    shutil.copy(os.path.join(BTESTS, "scripts", "wire_format.py"), tmp_path / "wire_format.py")
    extra, plain = node_args(extract(script, "node.cfg"))
    node = RsNode("node", disable_ssl=plain, extra=extra)
    try:
        env = dict(os.environ, BROKER_PORT="%d/tcp" % node.port)
        out = subprocess.run(
            [sys.executable, "../peer.py"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        node.shutdown()
    got = out.stdout.decode()
    assert (work / "done").exists(), "the script did not finish: %s %s" % (got, out.stderr.decode())
    assert got == expected, "peer.out differs from Broker's baseline:\n--- got\n%s--- expected\n%s" % (
        got,
        expected,
    )
