"""The live status page in a real headless browser (Chromium from Debian's packages, which
`cargo xtask install` installs): a node with two peers, a store and traffic shows the peers,
the store and a non-zero message rate. The screenshot is kept in target/status-page.png.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import websockets

from ws_harness import HERE, Node, data_message, settle_until, typed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: status page test skipped (cargo xtask install)")


def chromium(*args):
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             # Nothing but the page: no updates, sync, metrics or other background traffic.
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--user-data-dir=" + profile, "--window-size=1280,1000", "--virtual-time-budget=8000", *args],
            capture_output=True, timeout=120,
        )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode(errors="replace")


def test_the_status_page_shows_peers_a_store_and_traffic():
    hub = Node(stores=["users"])
    b = Node(websocket=False, peers=[hub])
    c = Node(websocket=False, peers=[hub])
    try:
        settle_until(lambda: len(json.loads(hub.http("/v1/status"))["peers"]) == 2, what="two peers")

        async def traffic():
            async with websockets.connect(hub.url) as ws:
                await ws.send("[]")
                await ws.recv()
                # Some 5 s of messages: the history samples every 2 s, the page's rate needs two.
                for i in range(250):
                    for _ in range(10):
                        await ws.send(data_message("/traffic", typed("count", i)))
                    await asyncio.sleep(0.02)

        asyncio.run(traffic())
        status = json.loads(hub.http("/v1/status"))
        assert len(status["history"]) >= 2
        url = "http://127.0.0.1:%d/" % hub.ws_port
        dom = chromium("--dump-dom", url)
        for peer in (b.id, c.id):
            assert peer[:8] in dom, "peer %s missing from the page" % peer
        assert re.search(r'<tr class="store"><td class="mono">users</td><td>master</td>', dom), dom
        rates = re.search(r"published ([0-9.]+)/s", dom)
        assert rates and float(rates.group(1)) > 0, dom
        # The topology: this node and both peers drawn, with links.
        assert dom.count('class="node"') >= 3 and 'class="link"' in dom
        shot = os.path.join(HERE, "..", "..", "target", "status-page.png")
        chromium("--screenshot=" + shot, url)
        assert os.path.getsize(shot) > 10_000
    finally:
        for n in (c, b, hub):
            n.stop()
