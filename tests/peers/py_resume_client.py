"""A Python `websockets` client living through a dashboard restart (tests/resume.rs).

Usage: python3 py_resume_client.py URL
Env: EVERY (ms between sends), DURATION (ms before it closes with 1000), SIZE (bytes of padding).
permessage-deflate is negotiated the library's way: the client offers context takeover (it compresses
every message in one stream unless the server's answer says client_no_context_takeover). Sends numbered
text messages, checks every echo byte for byte, prints JSON lines like resume-client.js and a summary.
"""
import asyncio
import json
import os
import sys
import time

import websockets


def out(o):
    print(json.dumps(o), flush=True)


async def main(url):
    every = int(os.environ.get("EVERY", "50")) / 1000
    duration = int(os.environ.get("DURATION", "3000")) / 1000
    size = int(os.environ.get("SIZE", "2000"))
    summary = {"opens": 0, "sent": 0, "echoed": 0, "bad": 0, "other": 0, "closes": [], "extensions": None}
    sent = {}
    async with websockets.connect(url, max_size=None) as ws:
        summary["opens"] = 1
        summary["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        out({"open": {"extensions": summary["extensions"]}})

        async def sender():
            i = 0
            while True:
                pad = (f"∆DΩΛ {i} " * (size // 8 + 1))[:size]
                body = json.dumps({"i": i, "pad": pad}, ensure_ascii=False)
                sent[i] = body
                await ws.send(body)
                summary["sent"] += 1
                out({"sent": i, "t": int(time.time() * 1000)})
                i += 1
                await asyncio.sleep(every)

        async def receiver():
            async for m in ws:
                try:
                    i = json.loads(m)["i"]
                except Exception:
                    i = None
                if isinstance(m, str) and i in sent:
                    if sent.pop(i) == m:
                        summary["echoed"] += 1
                        out({"echo": i, "t": int(time.time() * 1000)})
                    else:
                        summary["bad"] += 1
                        out({"bad": i})
                else:
                    summary["other"] += 1

        tasks = [asyncio.create_task(sender()), asyncio.create_task(receiver())]
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        if not done:
            await ws.close(code=1000, reason="done")
        summary["closes"].append({"code": ws.close_code, "reason": ws.close_reason})
        out({"close": ws.close_code, "reason": ws.close_reason})
    out({"summary": summary})


asyncio.run(main(sys.argv[1]))
