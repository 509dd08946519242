"""`invoicer dead-letters list|replay`: look at `<p>.dead` and send chosen messages back.

A replayed message goes to the queue it died in (its `invoicer-source-queue` header, or
RabbitMQ's `x-first-death-queue` for delivery-limit casualties), with the dead-letter headers
removed and the attempt count reset. Every stage is idempotent, so replaying is always safe.
Messages not chosen stay in `<p>.dead`, in order; each pass counts as one delivery for them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity

from consumer.amqp.publisher import (
    ATTEMPT_HEADER,
    DEAD_DETAIL_HEADER,
    DEAD_REASON_HEADER,
    SOURCE_QUEUE_HEADER,
)
from consumer.amqp.topology import STAGES, Topology, build
from consumer.settings import Settings, SettingsError, load_settings, redact_url

BROKER_REASON = "delivery_limit"  # dead-lettered by RabbitMQ itself after x-delivery-limit


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message as an operator wants to see it."""

    reason: str
    source: str
    detail: str
    message_id: str | None
    type: str | None
    died_at: str | None
    body: str


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    ours = _text(headers.get(DEAD_REASON_HEADER))
    reason = ours or (BROKER_REASON if _text(headers.get("x-first-death-reason")) else "unknown")
    source = _text(headers.get(SOURCE_QUEUE_HEADER)) or _text(headers.get("x-first-death-queue"))
    stamp = message.timestamp
    return DeadLetter(
        reason=reason,
        source=source,
        detail=_text(headers.get(DEAD_DETAIL_HEADER)),
        message_id=message.message_id,
        type=message.type,
        died_at=stamp.isoformat() if isinstance(stamp, datetime) else None,
        body=message.body[:2000].decode("utf-8", errors="replace"),
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Selection:
    reason: str | None = None
    source: str | None = None  # a queue name or a stage (triggers, intents, pdf)
    limit: int | None = None

    def matches(self, letter: DeadLetter, topology: Topology) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.source is None:
            return True
        stages: dict[str, str] = {stage: topology.stage_queue(stage) for stage in STAGES}
        return letter.source == stages.get(self.source, self.source)


async def _each(
    channel: AbstractChannel, topology: Topology
) -> list[tuple[AbstractIncomingMessage, DeadLetter]]:
    """Every message in the dead queue, held unacked (so none comes twice)."""
    queue = await channel.declare_queue(topology.dead_queue, passive=True)
    expected = queue.declaration_result.message_count or 0
    held: list[tuple[AbstractIncomingMessage, DeadLetter]] = []
    misses = 0
    # The declared count is a hint, not a promise: messages another client just gave back may
    # still be on their way into the queue. Wait a little for them, never for ever.
    while misses < 20:
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            held.append((message, describe(message)))
            continue
        if len(held) >= expected:
            break
        misses += 1
        await asyncio.sleep(0.1)
    return held


async def _give_back(messages: list[AbstractIncomingMessage]) -> None:
    """Return held messages explicitly: a closing channel returns them too, but the queue may
    take its time to notice the channel is gone."""
    if messages:
        await messages[-1].nack(multiple=True, requeue=True)


async def _settle(connection: AbstractConnection, queue: str, expected: int) -> None:
    """Wait until the messages we held and gave back are counted in `queue` again.

    A quorum queue takes returned messages back asynchronously; without this, a `list` right
    after another `list` or a dry run could see an empty queue."""
    channel = await connection.channel()
    try:
        for _ in range(30):
            declared = await channel.declare_queue(queue, passive=True)
            if (declared.declaration_result.message_count or 0) >= expected:
                return
            await asyncio.sleep(0.1)
    finally:
        await channel.close()


async def inspect(
    connection: AbstractConnection, topology: Topology, selection: Selection
) -> list[DeadLetter]:
    """The dead letters matching `selection`; nothing is removed."""
    channel = await connection.channel()
    try:
        held = await _each(channel, topology)
        await _give_back([m for m, _ in held])
    finally:
        await channel.close()
    await _settle(connection, topology.dead_queue, len(held))
    letters = [d for _, d in held if selection.matches(d, topology)]
    return letters[: selection.limit] if selection.limit is not None else letters


@dataclass(frozen=True)
class ReplayResult:
    replayed: Counter[str]  # by reason
    kept: int
    skipped_unknown_source: int


async def replay(
    connection: AbstractConnection,
    topology: Topology,
    selection: Selection,
    *,
    dry_run: bool = False,
) -> ReplayResult:
    """Send the matching dead letters back to their source queues, confirmed, then ack them."""
    stage_queues = set(topology.consumed_queues)
    replayed: Counter[str] = Counter()
    kept = unknown = 0
    unacked: list[AbstractIncomingMessage] = []
    getter = await connection.channel()
    sender = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        route = await sender.get_exchange(topology.route_exchange, ensure=False)
        for message, letter in await _each(getter, topology):
            chosen = selection.matches(letter, topology)
            if chosen and selection.limit is not None:
                chosen = sum(replayed.values()) < selection.limit
            if not chosen:
                kept += 1
                unacked.append(message)
                continue
            if letter.source not in stage_queues:
                unknown += 1
                unacked.append(message)
                continue
            if dry_run:
                unacked.append(message)
            else:
                await route.publish(
                    revived(message), routing_key=letter.source, mandatory=True, timeout=10
                )
                await message.ack()
            replayed[letter.reason] += 1
        await _give_back(unacked)
    finally:
        await sender.close()
        await getter.close()
    given_back = kept + unknown + (sum(replayed.values()) if dry_run else 0)
    await _settle(connection, topology.dead_queue, given_back)
    return ReplayResult(replayed, kept, unknown)


def revived(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as it was before it died: same body and ids, a fresh attempt count."""
    dropped = {DEAD_REASON_HEADER, DEAD_DETAIL_HEADER, SOURCE_QUEUE_HEADER, ATTEMPT_HEADER}
    headers = {
        k: v
        for k, v in (message.headers or {}).items()
        if k not in dropped and not k.startswith("x-")
    }
    headers[ATTEMPT_HEADER] = 1
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=datetime.now(UTC),  # age metrics count from the replay, not the first life
        type=message.type,
        app_id=message.app_id,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="invoicer dead-letters", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("list", "show dead letters without removing them"),
        ("replay", "send dead letters back to the queue they died in"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--reason", help="only this invoicer-dead-reason (or delivery_limit)")
        cmd.add_argument("--source", help="only from this queue or stage (triggers|intents|pdf)")
        cmd.add_argument("--limit", type=int, help="at most this many")
        if name == "list":
            cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        else:
            cmd.add_argument("--dry-run", action="store_true", help="count, change nothing")
    return p


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    topology = build(settings.amqp)
    selection = Selection(args.reason, args.source, args.limit)
    url = settings.amqp.url.get_secret_value()
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        print(f"cannot reach RabbitMQ at {redact_url(url)}: {exc}", file=sys.stderr)
        return 2
    async with connection:
        try:
            if args.command == "list":
                letters = await inspect(connection, topology, selection)
                _print_list(letters, as_json=args.json)
                return 0
            result = await replay(connection, topology, selection, dry_run=args.dry_run)
        except ChannelNotFoundEntity as exc:
            print(
                f"{exc.args[0] if exc.args else exc}: is INVOICER_QUEUE_PREFIX "
                f"({settings.amqp.queue_prefix!r}) right? The service declares its queues "
                "when it starts.",
                file=sys.stderr,
            )
            return 2
    verb = "would replay" if args.dry_run else "replayed"
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(result.replayed.items())) or "nothing"
    print(f"{verb} {sum(result.replayed.values())} ({by_reason}); kept {result.kept}")
    if result.skipped_unknown_source:
        print(f"kept {result.skipped_unknown_source} whose source queue is not a stage queue")
    return 0


def _print_list(letters: Sequence[DeadLetter], *, as_json: bool) -> None:
    if as_json:
        for letter in letters:
            print(json.dumps(asdict(letter), ensure_ascii=False))
        return
    for letter in letters:
        print(
            f"{letter.died_at or '-'}  {letter.reason:<18} {letter.source}  id={letter.message_id}"
        )
        if letter.detail:
            print(f"    {letter.detail}")
        print(f"    {letter.body[:200]}")
    totals = Counter(letter.reason for letter in letters)
    summary = ", ".join(f"{r} {n}" for r, n in totals.most_common()) or "none"
    print(f"{len(letters)} dead letters: {summary}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `invoicer dead-letters`."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(args, settings))
