"""`invoicer` / `python -m consumer`: run, check, topology; sandbox, demo, dead-letters delegate."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from consumer.settings import (
    Settings,
    SettingsError,
    load_settings,
    redact_url,
    unknown_env_names,
)

log = logging.getLogger("consumer.cli")

# Subcommands that hand their whole argv to another module's main(argv) -> int, imported lazily.
DELEGATES = {
    "sandbox": ("sandbox.cli", "the Afosto simulator"),
    "demo": ("consumer.demo", "sandbox + service + simulated traffic, with a summary"),
    "dead-letters": ("consumer.dead_letters", "list or replay dead-lettered messages"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invoicer", description="Turns fulfilment events into Afosto invoices."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the service until SIGTERM/SIGINT, then drain")
    sub.add_parser("check", help="exit 0 when the broker and the Afosto API answer")
    topo = sub.add_parser("topology", help="print the AMQP topology this configuration declares")
    topo.add_argument("--format", choices=("text", "definitions"), default="text")
    for name, (_, summary) in DELEGATES.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATES:
        return _delegate(args[0], args[1:])
    parsed = _parser().parse_args(args)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    commands: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "run": _run,
        "check": _check,
        "topology": _topology,
    }
    return commands[parsed.command](settings, parsed)


def _delegate(name: str, argv: list[str]) -> int:
    module_name, _ = DELEGATES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        print(f"invoicer {name}: not available ({module_name} is missing)", file=sys.stderr)
        return 2
    result: int = module.main(argv)
    return result


def _configure_logs(settings: Settings) -> None:
    from consumer.logs import configure_logging

    configure_logging(
        level=settings.log.level, fmt=settings.log.format, secrets=settings.secret_values()
    )
    for name in unknown_env_names():
        log.warning("unknown setting %s ignored (typo?)", name)


def _run(settings: Settings, _: argparse.Namespace) -> int:
    _configure_logs(settings)
    try:
        import consumer.app  # noqa: F401 - imported before tune_gc freezes what start-up made
        from consumer.loop import run, tune_gc

        tune_gc()
        run(_serve(settings), settings.pipeline.event_loop)
    except SettingsError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    except Exception as exc:
        from consumer.amqp.connection import BrokerUnavailable
        from consumer.amqp.declare import TopologyMismatch

        if isinstance(exc, BrokerUnavailable | TopologyMismatch):
            log.error("%s", exc)
            return 1
        log.exception("the service stopped on an unexpected error")
        return 1
    return 0


async def _serve(settings: Settings) -> None:
    from consumer.app import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        # The first signal only sets the event; the composition root drains in its own order.
        if not stop.is_set():
            log.info("%s received: draining (send it again to exit at once)", sig.name)
            stop.set()
            return
        # An impatient second signal: leave now; unacked deliveries return to their queues.
        log.warning("%s received again: exiting without finishing the drain", sig.name)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(128 + sig.value)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await serve(settings, stop)


def _check(settings: Settings, _: argparse.Namespace) -> int:
    results = asyncio.run(_probe(settings))
    for name, (ok, detail) in results.items():
        print(f"{name:<7} {'ok' if ok else 'FAILED'}  {detail}")
    return 0 if all(ok for ok, _ in results.values()) else 1


async def _probe(settings: Settings) -> dict[str, tuple[bool, str]]:
    from consumer.afosto import AfostoClient
    from consumer.amqp.connection import connect

    results: dict[str, tuple[bool, str]] = {}
    try:
        connection = await connect(settings.amqp, name="invoicer-check")
        await connection.close()
        results["broker"] = (True, settings.amqp.safe_url)
    except Exception as exc:
        results["broker"] = (False, str(exc))
    if not settings.afosto.api_key.get_secret_value():
        results["afosto"] = (False, "INVOICER_AFOSTO_API_KEY is not set")
        return results
    try:
        client = AfostoClient(
            settings.afosto.url,
            settings.afosto.api_key,
            timeout=settings.afosto.timeout,
            max_tries=1,
            retry_budget=0,
        )
        async with client:
            await client.ping()
        results["afosto"] = (True, redact_url(settings.afosto.url))
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        for secret in settings.secret_values():
            detail = detail.replace(secret, "***")
        url = redact_url(settings.afosto.url)
        results["afosto"] = (False, f"{url}: {type(exc).__name__} {detail}")
    return results


def _topology(settings: Settings, args: argparse.Namespace) -> int:
    from consumer.amqp.topology import build, definitions, render_text

    if args.format == "definitions":
        print(json.dumps(definitions(settings.amqp), indent=2, sort_keys=True))
    else:
        print(render_text(build(settings.amqp)))
    return 0
