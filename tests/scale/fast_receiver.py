"""A webhook receiver for load tests: counts each delivery id it gets and answers 204.

Run as `python -m tests.scale.fast_receiver --port N [--delay-ms M]`. `GET /received`
returns `{delivery id: times received}`. It runs in its own process on aiohttp because
the threaded test receiver cannot keep up with several workers on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from aiohttp import web

DELIVERY_HEADER = "X-WP-LLM-Delivery"


def build_app(delay_seconds: float) -> web.Application:
    received: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received[request.headers.get(DELIVERY_HEADER, "")] += 1
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        return web.Response(status=204)

    async def report(_request: web.Request) -> web.Response:
        return web.json_response(dict(received))

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/received", report)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1.")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="Wait before answering, in ms.")
    options = parser.parse_args()
    app = build_app(options.delay_ms / 1000)
    web.run_app(app, host="127.0.0.1", port=options.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
