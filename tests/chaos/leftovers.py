"""Broker objects that killed chaos runs left behind (`chaos<6 hex>` queues, exchanges and
`-svc` users), removed at the start and end of every run; never another run's live ones.

A run counts as live while its lock file is held (the kernel releases it when the harness dies,
however), while any connection on the broker names its prefix (its harness or its services,
by user or connection name), or while any of its queues has a consumer."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aio_pika.abc import AbstractConnection

from tests.chaos.broker import ctl

log = logging.getLogger(__name__)
PREFIX = re.compile(r"chaos[0-9a-f]{6}")
OWNED = re.compile(rf"^({PREFIX.pattern})[.-]")  # `<prefix>.queue` or `<prefix>-svc`
LOCKS = Path(tempfile.gettempdir()) / "invoicer-chaos"


@contextlib.contextmanager
def hold(prefix: str) -> Iterator[None]:
    """Mark `prefix` live for the run's length: an flock the kernel drops when we die."""
    LOCKS.mkdir(exist_ok=True)
    path = LOCKS / f"{prefix}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def held(prefix: str) -> bool:
    """True while some process holds `prefix`'s lock (a live run on this machine)."""
    try:
        fd = os.open(LOCKS / f"{prefix}.lock", os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass
class Inventory:
    """The chaos objects on the broker, by prefix, and the prefixes that are live."""

    queues: dict[str, list[str]] = field(default_factory=dict)
    exchanges: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)

    def stale(self, keep: str | None = None) -> set[str]:
        found = set(self.queues) | set(self.exchanges) | set(self.users)
        return {p for p in found - self.live if p != keep and not held(p)}


async def inventory() -> Inventory:
    """One look at the broker through rabbitmqctl (four listings at once, about a second)."""
    quiet = ("-q", "--no-table-headers")
    queues, exchanges, users, connections = await asyncio.gather(
        ctl(*quiet, "list_queues", "name", "consumers"),
        ctl(*quiet, "list_exchanges", "name"),
        ctl(*quiet, "list_users"),
        ctl(*quiet, "list_connections", "user", "client_properties"),
    )
    inv = Inventory()
    for name, consumers in _rows(queues, 2):
        if match := OWNED.match(name):
            inv.queues.setdefault(match[1], []).append(name)
            if consumers.strip() not in ("", "0"):
                inv.live.add(match[1])
    for (name,) in _rows(exchanges, 1):
        if match := OWNED.match(name):
            inv.exchanges.setdefault(match[1], []).append(name)
    for name, *_ in _rows(users, 1):
        if (match := OWNED.match(name)) and name == f"{match[1]}-svc":
            inv.users[match[1]] = name
    inv.live |= set(PREFIX.findall(connections))  # users `<p>-svc`, names `<p> harness`
    return inv


def _rows(text: str, width: int) -> Iterator[list[str]]:
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= width and parts[0]:
            yield parts


async def sweep(
    connection: AbstractConnection,
    *,
    keep: str | None = None,
    among: Collection[str] | None = None,
) -> dict[str, int]:
    """Delete every stale chaos prefix's queues, exchanges and user (not `keep`'s, not a live
    run's; only those `among`, if given); returns how many of each went."""
    inv = await inventory()
    removed = {"prefixes": 0, "queues": 0, "exchanges": 0, "users": 0}
    stale = inv.stale(keep)
    for prefix in sorted(stale if among is None else stale & set(among)):
        removed["prefixes"] += 1
        for kind, names in (
            ("queues", inv.queues.get(prefix, [])),
            ("exchanges", inv.exchanges.get(prefix, [])),
        ):
            for name in names:
                try:  # a fresh channel each: a failed delete closes the channel it ran on
                    async with connection.channel() as channel:
                        if kind == "queues":
                            await channel.queue_delete(name)
                        else:
                            await channel.exchange_delete(name)
                    removed[kind] += 1
                except Exception as exc:
                    log.warning("could not delete leftover %s: %s", name, exc)
        with contextlib.suppress(OSError):
            (LOCKS / f"{prefix}.lock").unlink()
        if user := inv.users.get(prefix):
            try:
                await ctl("delete_user", user)
                removed["users"] += 1
            except RuntimeError as exc:
                log.warning("could not delete leftover user %s: %s", user, exc)
    return removed
