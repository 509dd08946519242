"""Webhook intake: signed webhooks per second with a broker confirm each, the cost of refusing
forged ones, and how a slowloris crowd is shed while real deliveries still get through.

Runs the real aiohttp server in this process against the local RabbitMQ (a throwaway exchange
and queue); prints figures, asserts nothing about speed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from uuid import uuid4

import aio_pika
import aiohttp
from pydantic import SecretStr

from consumer.http.health import Check
from consumer.http.server import ServerLimits, build_app, serving
from consumer.http.signature import sign
from consumer.http.webhooks import WebhookConfig, WebhookIngress
from consumer.metrics import Metrics

SECRET = "bench-secret"


class Publisher:
    """Confirmed, mandatory publishes to the bench exchange."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, exchange: str) -> None:
        self._channel = channel
        self._exchange = exchange

    async def publish_trigger(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        exchange = await self._channel.get_exchange(self._exchange, ensure=False)
        message = aio_pika.Message(body, message_id=message_id, content_type="application/json")
        await exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=5)


class Ready:
    async def readiness(self) -> Sequence[Check]:
        return []


def envelope() -> bytes:
    body = {
        "event": "IN_TRANSIT",
        "data": {"id": "del_1", "order_id": f"ord_{uuid4().hex[:8]}"},
        "entity_id": "del_1",
        "entity_type": "delivery",
        "message_id": f"msg_{uuid4().hex}",
        "triggered_at": int(time.time() * 1000),
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def hammer(
    url: str, seconds: float, clients: int, *, forged: bool
) -> tuple[int, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    until = time.monotonic() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < until:
            body = envelope()
            signature = sign(body, b"forged" if forged else SECRET.encode())
            headers = {"Content-Type": "application/json", "X-Afosto-Hmac-Sha256": signature}
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(clients)))
    return len(latencies), latencies, statuses


def report(
    label: str, seconds: float, count: int, latencies: list[float], statuses: dict[int, int]
) -> None:
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"{label:<28} {count / seconds:8.0f} req/s   p50 {q[49] * 1000:6.1f} ms   "
        f"p99 {q[98] * 1000:6.1f} ms   statuses {dict(sorted(statuses.items()))}"
    )


async def slowloris(port: int, connections: int, header_timeout: float, url: str) -> None:
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    for _ in range(connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /webhooks/afosto HTTP/1.1\r\nHost: x\r\n")  # never finished
        readers.append(reader)
        writers.append(writer)
    started = time.monotonic()
    count, latencies, statuses = await hammer(url, 1.0, 4, forged=False)
    report(f"signed, {connections} slow conns", 1.0, count, latencies, statuses)

    async def closed(reader: asyncio.StreamReader) -> float:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        return time.monotonic() - started

    async with asyncio.timeout(header_timeout * 4 + 5):
        ages = await asyncio.gather(*(closed(r) for r in readers))
    print(
        f"slowloris: {connections} connections with unfinished headers closed by the server "
        f"after {min(ages):.1f}-{max(ages):.1f} s (header deadline {header_timeout:.0f} s)"
    )
    for writer in writers:
        writer.transport.abort()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slow-connections", type=int, default=200)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)

    connection = await aio_pika.connect(args.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        name = f"bench{uuid4().hex[:8]}"
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        # Durable: RabbitMQ 4.3 refuses transient non-exclusive queues by default.
        queue = await channel.declare_queue(
            f"{name}.q", durable=True, arguments={"x-max-length": 100_000}
        )
        await queue.bind(exchange, "#")
        try:
            metrics = Metrics()
            webhook = WebhookIngress(
                WebhookConfig(secrets=(SecretStr(SECRET),)), Publisher(channel, name), metrics
            )
            app = build_app(metrics=metrics, readiness=Ready(), webhook=webhook)
            limits = ServerLimits(header_timeout=args.header_timeout)
            async with serving(app, "127.0.0.1", 0, limits) as port:
                url = f"http://127.0.0.1:{port}/webhooks/afosto"
                print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, one process")
                for label, forged in (
                    ("signed (confirmed publish)", False),
                    ("forged (401)", True),
                ):
                    count, latencies, statuses = await hammer(
                        url, args.seconds, args.clients, forged=forged
                    )
                    report(label, args.seconds, count, latencies, statuses)
                await slowloris(port, args.slow_connections, args.header_timeout, url)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
