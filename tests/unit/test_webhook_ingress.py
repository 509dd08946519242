"""The webhook endpoint over a fake publisher: concurrent copies, failed confirms, quiet logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple

import aiohttp
import pytest
from pydantic import SecretStr

from consumer.http.health import Check
from consumer.http.server import build_app, serving
from consumer.http.signature import sign
from consumer.http.webhooks import WebhookConfig, WebhookIngress
from consumer.metrics import Metrics

SECRET = "correct-horse-battery-staple"
BODY = (
    b'{"event":"IN_TRANSIT","data":{"order_id":"ord_1"},"entity_id":"del_1",'
    b'"entity_type":"delivery","message_id":"msg_1","triggered_at":1714000000000}'
)
HEADERS = {"Content-Type": "application/json", "X-Afosto-Hmac-Sha256": sign(BODY, SECRET.encode())}


class FakePublisher:
    """Holds every publish until released; fails while `failing` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, str]] = []
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.failing = False

    async def publish_trigger(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        self.calls.append((body, routing_key, message_id))
        self.called.set()
        await self.release.wait()
        if self.failing:
            raise ConnectionError(f"amqp://guest:{SECRET}@broker:5672/ went away")


class Ready:
    async def readiness(self) -> Sequence[Check]:
        return []


class Endpoint(NamedTuple):
    url: str
    publisher: FakePublisher
    session: aiohttp.ClientSession
    ingress: WebhookIngress
    metrics: Metrics


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    publisher = FakePublisher()
    metrics = Metrics()
    config = WebhookConfig(secrets=(SecretStr(SECRET),), publish_timeout=2.0)
    ingress = WebhookIngress(config, publisher, metrics)
    app = build_app(metrics=metrics, readiness=Ready(), webhook=ingress)
    async with serving(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/webhooks/afosto"
        yield Endpoint(url, publisher, session, ingress, metrics)


async def _all_arrived(ingress: WebhookIngress, copies: int) -> None:
    """Wait until every copy is inside the endpoint (the first one holds the publish)."""
    async with asyncio.timeout(10):
        while ingress.in_progress < copies:  # noqa: ASYNC110 - no event marks an arrival
            await asyncio.sleep(0.01)


async def _post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, data=BODY, headers=HEADERS) as response:
        return response.status


async def test_concurrent_copies_share_one_publish(
    endpoint: Endpoint,
) -> None:
    url, publisher, session, ingress, metrics = endpoint
    posts = [asyncio.create_task(_post(session, url)) for _ in range(5)]
    await _all_arrived(ingress, 5)
    publisher.release.set()

    assert await asyncio.gather(*posts) == [200] * 5
    assert len(publisher.calls) == 1
    assert await _post(session, url) == 200
    assert len(publisher.calls) == 1  # the replay window remembers it now
    sample = metrics.registry.get_sample_value
    assert sample("invoicer_webhook_triggers_total", {"event_type": "order.shipped"}) == 1
    assert sample("invoicer_webhook_replays_total") == 5  # four concurrent copies, one replay


async def test_a_failed_confirm_is_503_and_not_remembered(
    endpoint: Endpoint,
) -> None:
    url, publisher, session, ingress, _ = endpoint
    publisher.failing = True
    posts = [asyncio.create_task(_post(session, url)) for _ in range(3)]
    await _all_arrived(ingress, 3)
    publisher.release.set()

    first = await asyncio.gather(*posts)
    publisher.failing = False
    second = await _post(session, url)

    assert first == [503] * 3
    assert second == 200
    assert len(publisher.calls) == 2  # one shared failed publish, one good one


async def test_a_publish_that_never_confirms_is_503_within_the_deadline(
    endpoint: Endpoint,
) -> None:
    url, _, session, _, _ = endpoint  # release never set: the confirm never comes
    assert await _post(session, url) == 503


async def test_secrets_never_reach_the_logs(
    endpoint: Endpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, publisher, session, _, _ = endpoint
    caplog.set_level(logging.DEBUG)
    publisher.failing = True
    publisher.release.set()
    await _post(session, url)
    async with session.post(url, data=BODY, headers={**HEADERS, "X-Afosto-Hmac-Sha256": "0"}):
        pass

    assert caplog.records, "the rejections were logged"
    assert SECRET not in caplog.text
    assert SECRET not in repr(WebhookConfig(secrets=(SecretStr(SECRET),)))


async def test_over_the_concurrency_cap_is_503_without_reading() -> None:
    publisher = FakePublisher()
    metrics = Metrics()
    config = WebhookConfig(secrets=(SecretStr(SECRET),), max_concurrent=2)
    app = build_app(
        metrics=metrics, readiness=Ready(), webhook=WebhookIngress(config, publisher, metrics)
    )
    bodies = [BODY.replace(b"msg_1", f"msg_{n}".encode()) for n in range(3)]
    async with serving(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/webhooks/afosto"

        async def post(body: bytes) -> tuple[int, str | None]:
            headers = {**HEADERS, "X-Afosto-Hmac-Sha256": sign(body, SECRET.encode())}
            async with session.post(url, data=body, headers=headers) as response:
                return response.status, response.headers.get("Retry-After")

        held = [asyncio.create_task(post(body)) for body in bodies[:2]]
        while len(publisher.calls) < 2:
            await publisher.called.wait()
            publisher.called.clear()
        busy = await post(bodies[2])
        publisher.release.set()
        done = await asyncio.gather(*held)
        after = await post(bodies[2])

    assert busy == (503, "5")
    assert [status for status, _ in done] == [200, 200]
    assert after == (200, None)
