"""The topology description: names, tiers, and the definitions document."""

from __future__ import annotations

from datetime import timedelta

from consumer.amqp.topology import build, definitions, render_text
from consumer.settings import AmqpSettings, load_settings


def _amqp(**env: str) -> AmqpSettings:
    return load_settings({f"INVOICER_{k}": v for k, v in env.items()}, env_file=None).amqp


def test_names_follow_the_prefix() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv", WAIT_TIERS="1s,5m"))
    names = {q.name for q in t.queues}
    assert names == {
        "inv.triggers",
        "inv.intents",
        "inv.pdf",
        "inv.wait.1s",
        "inv.wait.5m",
        "inv.dead",
    }
    assert t.stage_queue("pdf") == "inv.pdf"
    assert t.owned_exchanges == ("inv.route", "inv.wait.1s", "inv.wait.5m")


def test_stage_queues_are_quorum_with_limit_and_dead_letter_target() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv", DELIVERY_LIMIT="7"))
    for stage in ("triggers", "intents", "pdf"):
        (q,) = [q for q in t.queues if q.name == f"inv.{stage}"]
        assert q.arguments["x-queue-type"] == "quorum"
        assert q.arguments["x-delivery-limit"] == 7
        assert q.arguments["x-dead-letter-exchange"] == "inv.route"
        assert q.arguments["x-dead-letter-routing-key"] == "inv.dead"
        assert q.arguments["x-dead-letter-strategy"] == "at-least-once"
        assert q.arguments["x-overflow"] == "reject-publish"


def test_dead_letters_survive_being_looked_at() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv"))
    (q,) = [q for q in t.queues if q.name == "inv.dead"]
    assert q.arguments["x-delivery-limit"] == 1_000_000  # RabbitMQ 4 would default to 20
    assert "x-dead-letter-exchange" not in q.arguments


def test_wait_tiers_dead_letter_back_by_the_kept_routing_key() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv", WAIT_TIERS="200ms,2s"))
    (q,) = [q for q in t.queues if q.name == "inv.wait.200ms"]
    assert q.arguments["x-message-ttl"] == 200
    assert q.arguments["x-dead-letter-exchange"] == "inv.route"
    assert "x-dead-letter-routing-key" not in q.arguments  # the original key names the stage
    routed = {(b.exchange, b.routing_key): b.queue for b in t.bindings}
    for stage in ("inv.triggers", "inv.intents", "inv.pdf", "inv.dead"):
        assert routed[("inv.route", stage)] == stage
    assert routed[("inv.wait.2s", "")] == "inv.wait.2s"


def test_tier_for_picks_the_smallest_tier_that_waits_long_enough() -> None:
    t = build(_amqp(WAIT_TIERS="1s,5s,30s"))
    assert t.tier_for(timedelta(milliseconds=1)) == timedelta(seconds=1)
    assert t.tier_for(timedelta(seconds=1)) == timedelta(seconds=1)
    assert t.tier_for(timedelta(seconds=4)) == timedelta(seconds=5)
    assert t.tier_for(timedelta(hours=2)) == timedelta(seconds=30)  # capped at the largest


def test_triggers_bound_to_the_input_exchange() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv", INPUT_EXCHANGE="ff"))
    keys = {b.routing_key for b in t.bindings if b.exchange == "ff"}
    assert keys == {"order.shipped", "order.returned", "order.updated"}


def test_definitions_cover_every_entity_with_vhost() -> None:
    amqp = _amqp(QUEUE_PREFIX="inv")
    doc = definitions(amqp)
    t = build(amqp)
    assert {q["name"] for q in doc["queues"]} == {q.name for q in t.queues}
    assert {e["name"] for e in doc["exchanges"]} == {e.name for e in t.exchanges}
    assert len(doc["bindings"]) == len(t.bindings)
    for section in ("queues", "exchanges", "bindings"):
        assert all(item["vhost"] == "/" for item in doc[section])
    assert all(q["durable"] for q in doc["queues"])


def test_text_rendering_lists_everything() -> None:
    t = build(_amqp(QUEUE_PREFIX="inv"))
    text = render_text(t)
    for q in t.queues:
        assert q.name in text
    assert "x-delivery-limit=20" in text


# Quorum queue arguments that RabbitMQ 3.10 up to 4.3 all accept with the same meaning
# (docs/rabbitmq.md); x-queue-mode, x-queue-version and mirroring are gone in 4.x.
PORTABLE_ARGUMENTS = {
    "x-queue-type",
    "x-delivery-limit",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-overflow",
    "x-message-ttl",
}


def test_every_queue_argument_is_portable_across_3_10_and_4_x() -> None:
    for q in build(_amqp()).queues:
        assert set(q.arguments) <= PORTABLE_ARGUMENTS, q.name
        assert q.arguments["x-queue-type"] == "quorum", q.name
        # A negative limit means "unlimited" on 4.x but 0 on 3.x.
        assert int(q.arguments.get("x-delivery-limit", 1)) > 0, q.name
        if "x-dead-letter-exchange" in q.arguments:
            # Without reject-publish, at-least-once silently falls back to at-most-once.
            assert q.arguments["x-dead-letter-strategy"] == "at-least-once", q.name
            assert q.arguments["x-overflow"] == "reject-publish", q.name
