"""`GET /healthz`, `GET /readyz` and `GET /metrics`: the operational surface, no business logic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import web

from consumer.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

# A readiness probe that hangs is a failed probe; answer before the kubelet gives up.
_READINESS_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Check:
    """One readiness condition: `detail` says what was seen, for the /readyz body."""

    name: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class ReadinessSource(Protocol):
    """Answers the readiness question by asking the broker (implemented in consumer/control)."""

    async def readiness(self) -> Sequence[Check]:
        """Every readiness condition with its current state."""


class HealthRoutes:
    def __init__(self, metrics: Metrics, readiness: ReadinessSource) -> None:
        self._metrics = metrics
        self._readiness = readiness

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)

    async def healthz(self, request: web.Request) -> web.Response:
        """The process runs and its event loop answers."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when every check passes, else 503 naming the failed ones; `?exclude=a,b` leaves
        checks out, as Kubernetes' own /readyz does."""
        # e.g. exclude=afosto,consuming keeps webhook intake (it needs only the broker) routed
        # while Afosto is down.
        try:
            async with asyncio.timeout(_READINESS_TIMEOUT):
                checks = list(await self._readiness.readiness())
        except TimeoutError:
            checks = [Check("readiness", False, {"error": "checks did not answer in time"})]
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            checks = [Check("readiness", False, {"error": type(exc).__name__})]
        excluded = {
            name.strip()
            for value in request.query.getall("exclude", [])
            for name in value.split(",")
        }
        # The gauge is the whole truth, whatever a caller chose to exclude.
        self._metrics.ready.set(1 if all(c.ok for c in checks) else 0)
        checks = [c for c in checks if c.name not in excluded]
        ready = all(c.ok for c in checks)
        body = {
            "status": "ready" if ready else "not_ready",
            "failed": [c.name for c in checks if not c.ok],
            "checks": {c.name: {"ok": c.ok, **c.detail} for c in checks},
        }
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text exposition of this app's registry."""
        response = web.Response(body=self._metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
