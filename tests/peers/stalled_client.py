"""A client that goes silent, for the heartbeat_failure chaos test: Python `websockets` through the sidecar.

Usage: python3 stalled_client.py ws://HOST:PORT/path
Opens a session, checks one echo, prints {"connected": true, ...} and then idles; while the process runs
the library answers the sidecar's pings. The test SIGSTOPs it (no reads, no pongs: a zombie client), and
after SIGCONT this prints how the connection ended: {"closed": true, "code": ..., "reason": ...}.
"""
import asyncio
import json
import sys

import websockets


async def main(url):
    # The library's own keepalive pings are off: only the sidecar's heartbeats are in play.
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send("stalled-client hello")
        echo = await ws.recv()
        print(json.dumps({"connected": True, "echo": echo}), flush=True)
        await ws.wait_closed()
        print(
            json.dumps({"closed": True, "code": ws.close_code, "reason": ws.close_reason}),
            flush=True,
        )


asyncio.run(main(sys.argv[1]))
