"""The probe paths in deploy/ are answered by the real HTTP app the way the manifests intend:
a pod whose Afosto circuit is open stays ready for webhooks, while full /readyz says not ready."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer

from consumer.broker_inspect import QueueState
from consumer.control import ControlConfig, Controller
from consumer.http.server import build_app
from consumer.metrics import Metrics

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base"
QUEUES = ("p.triggers", "p.intents", "p.pdf")


class Consumers:
    """A consume loop that holds one consumer per queue until paused."""

    def __init__(self) -> None:
        self.paused = False

    def expected(self) -> Mapping[str, int]:
        return {q: 1 for q in QUEUES}

    def registered(self) -> Mapping[str, bool]:
        return {q: not self.paused for q in QUEUES}

    async def resubscribe(self, queue: str) -> None:
        return None

    async def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False


class Broker:
    """What the broker would say: every queue exists with one consumer."""

    async def queue_states(self, queues: Sequence[str]) -> dict[str, QueueState | None]:
        return {q: QueueState(consumers=1, messages=0) for q in queues}


async def afosto_down() -> None:
    raise ConnectionError("afosto unreachable")


def probes() -> dict[str, Any]:
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {k: container[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe")}


async def test_manifest_probes_keep_a_paused_pod_in_the_service() -> None:
    metrics = Metrics()
    consumers = Consumers()
    config = ControlConfig(watchdog_interval=3600, probe_initial=3600)
    async with Controller(
        consumers=consumers, inspector=Broker(), probe=afosto_down, metrics=metrics, config=config
    ) as controller:
        app = build_app(metrics=metrics, readiness=controller, webhook=None)
        async with TestClient(TestServer(app)) as client:
            paths = probes()
            assert (await client.get(paths["readinessProbe"])).status == 200
            controller.systemic("unauthorized", "401 from Afosto")
            for _ in range(100):  # the pause runs in a task of the controller
                if consumers.paused:
                    break
                await asyncio.sleep(0.01)
            assert consumers.paused

            live = await client.get(paths["livenessProbe"])
            ready = await client.get(paths["readinessProbe"])
            full = await client.get("/readyz")
            assert live.status == 200
            assert ready.status == 200, await ready.text()
            assert full.status == 503
            assert set((await full.json())["failed"]) == {"afosto", "consuming"}
            metrics_text = await (await client.get("/metrics")).text()
            assert "invoicer_ready 0.0" in metrics_text, "alerting sees the whole truth"
