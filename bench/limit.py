"""The machine's limit: a bare aiohttp client on uvloop, with no queue and no persistence.

It posts the same 1 KB signed bodies the service sends, over a fixed number of
keep-alive connections, and signs every request as the service does. Run it as
`python -m bench.limit --url URL --count N --concurrency C`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator

import aiohttp

from bench.payload import event_data, new_delivery_id, new_event_id, peer_envelope, signed_headers

REQUEST_TIMEOUT_SECONDS = 15.0


async def post_all(url: str, count: int, concurrency: int, spread: bool, event_bytes: int) -> int:
    """Send `count` requests with `concurrency` workers; return how many got a 2xx response."""
    event_id = new_event_id()
    body = peer_envelope(event_id, event_data(event_bytes))
    # One shared iterator: each worker takes the next target, so the count is exact.
    targets: Iterator[str] = (f"{url}/{i}" if spread else url for i in range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> int:
            succeeded = 0
            for target in targets:
                headers = signed_headers(event_id, new_delivery_id(), body)
                async with session.post(target, data=body, headers=headers) as response:
                    await response.read()
                    succeeded += 200 <= response.status < 300
            return succeeded

        results = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url", required=True, help="Target URL; with --spread, request i goes to URL/i."
    )
    parser.add_argument("--count", type=int, required=True, help="Requests to send.")
    parser.add_argument("--concurrency", type=int, required=True, help="Keep-alive connections.")
    parser.add_argument("--spread", action="store_true", help="Send each request to its own path.")
    parser.add_argument("--event-bytes", type=int, default=1024, help="Body size in bytes.")
    arguments = parser.parse_args()

    import uvloop

    succeeded = uvloop.run(
        post_all(
            arguments.url,
            arguments.count,
            arguments.concurrency,
            arguments.spread,
            arguments.event_bytes,
        )
    )
    if succeeded != arguments.count:
        raise SystemExit(f"only {succeeded} of {arguments.count} requests got a 2xx response")


if __name__ == "__main__":
    main()
