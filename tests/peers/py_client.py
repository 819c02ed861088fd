"""An independent client for the tests: Python `websockets` through the sidecar.

Usage: python3 py_client.py ws://HOST:PORT/path
Checks fragmented messages, permessage-deflate (negotiated by default), a 1 MiB compressible text,
and a close-code round trip; prints one JSON object with what it saw.
"""
import asyncio
import json
import sys

import websockets


async def main(url):
    out = {}
    async with websockets.connect(url, max_size=None) as ws:
        out["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        await ws.send(["frag-", "ment", "ed"])  # one text message in three frames
        out["fragmented_echo"] = await ws.recv()
        await ws.send([b"\x00\x01", b"\x02"])
        out["fragmented_binary_echo"] = list(await ws.recv())
        big = "∆DΩΛ " * (1 << 18)
        await ws.send(big)
        out["big_ok"] = (await ws.recv()) == big
        out["big_len"] = len(big.encode())
    async with websockets.connect(url) as ws:
        await ws.close(code=4002, reason="py bye")
        out["close_code"] = ws.close_code
        out["close_reason"] = ws.close_reason
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
