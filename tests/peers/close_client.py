"""A Python `websockets` client that reports the close code it got, for the close-code tests.

Usage: python3 close_client.py ws://HOST:PORT/path MODE
MODE: `wait` (print {"open": true}, then wait for the server side to close),
      `close:CODE` (close with CODE itself), `ask:CODE` (ask the node dashboard to close with CODE).
Prints one JSON line {"open": true} once connected, then {"close_code": N, "close_reason": "..."}
with the code this client received (or sent, when it closed first).
"""
import asyncio
import json
import sys

import websockets


async def main(url, mode):
    async with websockets.connect(url, ping_interval=None) as ws:
        print(json.dumps({"open": True}), flush=True)
        if mode.startswith("close:"):
            await ws.close(code=int(mode[6:]), reason="py bye")
        elif mode.startswith("ask:"):
            await ws.send(f"close:{mode[4:]}:dashboard bye")
        closed = None
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as e:
            closed = e
        # The frame this side received, or the one it sent when it closed first.
        frame = closed.sent if mode.startswith("close:") else closed.rcvd
        code = frame.code if frame is not None else 1006
        reason = frame.reason if frame is not None else ""
        print(json.dumps({"close_code": code, "close_reason": reason}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
