"""`POST /webhooks/afosto`: signed intake that answers 2xx only once the broker has the trigger.

Checks, in order, each with its own status: size by Content-Length (413), content type (415),
body read under a byte counter and a deadline (413 / 408), signature (401), JSON and envelope
(400), mapping (202 for events we ignore), replay window (200, not enqueued again), publish
with confirm (200, or 503 with Retry-After so Afosto retries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web
from pydantic import SecretStr, ValidationError

from consumer.http.envelope import NoOrderId, WebhookEnvelope, trigger_for
from consumer.http.replay import ReplayWindow
from consumer.http.signature import signature_valid
from consumer.metrics import Metrics

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Afosto-Hmac-Sha256"
_CREDENTIALS_IN_URL: Final = re.compile(r"//[^/@\s]*@")


class TriggerPublisher(Protocol):
    """What the webhook needs from the broker side (implemented in consumer/amqp)."""

    async def publish_trigger(self, body: bytes, *, routing_key: str, message_id: str) -> None:
        """Hand a trigger (`routing_key` = its event_type) to the triggers stage; return on
        confirm, raise on a nack, an unroutable return, a confirm timeout or a lost connection."""


@dataclass(frozen=True)
class WebhookConfig:
    secrets: tuple[SecretStr, ...]
    max_body_bytes: int = 256 * 1024
    body_timeout: float = 10.0  # whole body, from the handler's start
    publish_timeout: float = 15.0  # outer bound; the publisher has its own confirm timeout
    replay_ttl: float = 24 * 3600.0
    replay_max: int = 100_000
    retry_after: int = 5
    # Bodies held in memory at once are bounded: max_concurrent x max_body_bytes.
    max_concurrent: int = 64


class _Reject(Exception):
    def __init__(self, status: int, detail: str, *, signed: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.signed = signed  # refused after the signature checked out: worth an INFO line


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _safe(exc: BaseException) -> str:
    """An exception for the log, with any URL credentials masked."""
    return f"{type(exc).__name__}: {_CREDENTIALS_IN_URL.sub('//***@', str(exc))[:200]}"


class WebhookIngress:
    """The webhook endpoint; one per app, owning its replay window."""

    def __init__(
        self, config: WebhookConfig, publisher: TriggerPublisher, metrics: Metrics
    ) -> None:
        self._config = config
        self._secrets = tuple(s.get_secret_value().encode() for s in config.secrets)
        self._publisher = publisher
        self._metrics = metrics
        self._replays = ReplayWindow(ttl=config.replay_ttl, max_size=config.replay_max)
        # Concurrent deliveries of one message_id share one publish instead of racing.
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._active = 0
        if not self._secrets:
            log.warning("no webhook secrets configured: every webhook will be refused (401)")

    @property
    def in_progress(self) -> int:
        """Webhook requests being handled right now (bounded by `max_concurrent`)."""
        return self._active

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/afosto", self.handle, expect_handler=self._expect)

    async def _expect(self, request: web.Request) -> None:
        """`Expect: 100-continue`: invite the body only when the head is acceptable."""
        if self._early_reject(request) is not None:
            return None  # no 100 Continue: the handler answers at once without reading
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the real response has not started yet
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /webhooks/afosto`: the status of the first check that fails, counted per status."""
        try:
            if self._active >= self._config.max_concurrent:
                raise _Reject(503, "too many webhooks in progress, retry later")
            self._active += 1
            try:
                response = await self._handle(request)
            finally:
                self._active -= 1
        except _Reject as reject:
            response = web.json_response(
                {"status": "rejected", "detail": reject.detail}, status=reject.status
            )
            if not request.content.is_eof():
                # Draining the unread rest of the body would be reading further: hang up.
                response.force_close()
            if reject.status == 503:
                response.headers["Retry-After"] = str(self._config.retry_after)
            # Unsigned noise stays at DEBUG so a flood of forgeries cannot flood the logs;
            # invoicer_webhook_requests_total{status} counts every refusal either way.
            level = logging.INFO if reject.signed or reject.status == 503 else logging.DEBUG
            log.log(level, "webhook refused: %s %s", reject.status, reject.detail)
        self._metrics.webhook_requests.labels(status=str(response.status)).inc()
        return response

    def _early_reject(self, request: web.Request) -> _Reject | None:
        limit = self._config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _Reject(413, f"body over {limit} bytes")
        if not _is_json(request.content_type):
            return _Reject(415, "content type must be application/json")
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        if (early := self._early_reject(request)) is not None:
            raise early
        body = await self._read_body(request)
        if not signature_valid(request.headers.get(SIGNATURE_HEADER), body, self._secrets):
            raise _Reject(401, "missing or invalid signature")
        envelope = self._envelope(body)
        try:
            trigger = trigger_for(envelope)
        except (NoOrderId, ValidationError) as exc:
            raise _Reject(400, str(exc).splitlines()[0][:200], signed=True) from None
        if trigger is None:
            self._metrics.unknown_webhook_event(envelope.event)
            log.info("webhook %s ignored: event %.64s", envelope.message_id, envelope.event)
            return web.json_response({"status": "ignored"}, status=202)
        if self._replays.seen(envelope.message_id) or not await self._publish_once(
            trigger.model_dump_json(exclude_none=True).encode(),
            routing_key=trigger.event_type,
            message_id=envelope.message_id,
        ):
            self._metrics.webhook_replays.inc()
            log.info("webhook %s is a replay: already enqueued", envelope.message_id)
            return web.json_response({"status": "duplicate"})
        self._metrics.webhook_triggers.labels(event_type=trigger.event_type).inc()
        log.info(
            "webhook %s enqueued %s for order %s",
            envelope.message_id,
            trigger.event_type,
            trigger.order_id,
        )
        return web.json_response({"status": "enqueued"})

    async def _read_body(self, request: web.Request) -> bytes:
        """The raw body, never more than the limit plus one chunk, within the body deadline."""
        limit = self._config.max_body_bytes
        body = bytearray()
        try:
            async with asyncio.timeout(self._config.body_timeout):
                while chunk := await request.content.readany():
                    body += chunk
                    if len(body) > limit:
                        raise _Reject(413, f"body over {limit} bytes")
        except TimeoutError:
            raise _Reject(408, "body not received in time") from None
        except (web.RequestPayloadError, ConnectionError) as exc:
            # Broken chunking or a client gone mid-body: a client error, never a 500.
            raise _Reject(400, f"body unreadable ({type(exc).__name__})") from None
        return bytes(body)

    @staticmethod
    def _envelope(body: bytes) -> WebhookEnvelope:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Reject(400, "body is not UTF-8 JSON", signed=True) from None
        if not isinstance(data, dict):
            raise _Reject(400, "body is not a JSON object", signed=True)
        try:
            return WebhookEnvelope.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise _Reject(400, f"envelope invalid: {fields}", signed=True) from None

    async def _publish_once(self, body: bytes, *, routing_key: str, message_id: str) -> bool:
        """Publish with confirm; False when a concurrent copy of `message_id` published it."""
        pending = self._pending.get(message_id)
        if pending is not None:
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():  # the first request was cancelled, not this one
                    raise _Reject(503, "broker unavailable, retry later", signed=True) from None
                raise
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            async with asyncio.timeout(self._config.publish_timeout):
                await self._publisher.publish_trigger(
                    body, routing_key=routing_key, message_id=message_id
                )
        except Exception as exc:
            log.warning("webhook %s not enqueued, broker unavailable: %s", message_id, _safe(exc))
            future.set_exception(_Reject(503, "broker unavailable, retry later", signed=True))
            future.exception()  # retrieved here, so a lone request leaves no warning behind
            raise _Reject(503, "broker unavailable, retry later", signed=True) from None
        else:
            # Only a confirmed trigger counts as seen; a failed one must be taken again.
            self._replays.remember(message_id)
            future.set_result(None)
            return True
        finally:
            del self._pending[message_id]
            if not future.done():
                future.cancel()
