"""`invoicer sandbox` / `python -m sandbox`: serve the Afosto sandbox until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from sandbox.faults import FaultConfig
from sandbox.runner import SandboxSettings, running

DEFAULT_KEY = "sandbox-key"


def parser() -> argparse.ArgumentParser:
    knobs = ", ".join(f"{k}={v}" for k, v in FaultConfig().as_dict().items())
    p = argparse.ArgumentParser(
        prog="invoicer sandbox",
        description="Serve a simulated Afosto GraphQL API with seeded faults (docs/sandbox.md).",
        epilog=f"fault knobs and defaults: {knobs}",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (control API has no key)")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    p.add_argument(
        "--api-key",
        default=os.environ.get("INVOICER_SANDBOX_API_KEY", DEFAULT_KEY),
        help="Bearer key clients must send (env INVOICER_SANDBOX_API_KEY)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds ids, orders, faults, PDF delays")
    p.add_argument("--orders", type=int, default=0, help="pre-create N orders, about half shipped")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="set a fault knob, e.g. --fault http_503_rate=0.1 (repeatable)",
    )
    p.add_argument(
        "--amqp-url",
        default=os.environ.get("INVOICER_SANDBOX_AMQP_URL"),
        help="publish order.shipped/order.returned here (env INVOICER_SANDBOX_AMQP_URL)",
    )
    p.add_argument("--exchange", default="fulfilment", help="input exchange for order events")
    p.add_argument("--webhook-url", default=None, help="deliver signed Afosto webhooks here")
    p.add_argument(
        "--webhook-secret",
        default=os.environ.get("INVOICER_SANDBOX_WEBHOOK_SECRET"),
        help="signing secret (env INVOICER_SANDBOX_WEBHOOK_SECRET)",
    )
    p.add_argument("--tenant", default="sandbox", help="sent as X-Afosto-Tenant")
    p.add_argument("--public-url", default=None, help="base URL put into pdf_url")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--strict",
        dest="lenient",
        action="store_false",
        default=False,
        help="a repeated invoice_id is always VALIDATION_ERROR (default)",
    )
    mode.add_argument(
        "--lenient",
        dest="lenient",
        action="store_true",
        help="a repeated invoice_id with the same items returns the existing invoice",
    )
    p.add_argument(
        "--http-status-mode",
        action="store_true",
        help="send real HTTP 401/429/500 instead of always 200",
    )
    return p


def settings_from(args: argparse.Namespace) -> SandboxSettings:
    """Validated settings; raises ValueError with a readable message."""
    knobs: dict[str, str] = {}
    for item in args.fault:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--fault expects KNOB=VALUE, got {item!r}")
        knobs[name.strip()] = value.strip()
    if args.webhook_url and not args.webhook_secret:
        raise ValueError(
            "--webhook-url needs --webhook-secret (or INVOICER_SANDBOX_WEBHOOK_SECRET)"
        )
    return SandboxSettings(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        seed=args.seed,
        lenient=args.lenient,
        http_status_mode=args.http_status_mode,
        faults=FaultConfig().updated(knobs),
        orders=args.orders,
        amqp_url=args.amqp_url,
        exchange=args.exchange,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        tenant=args.tenant,
        public_url=args.public_url,
    )


async def serve(settings: SandboxSettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until `stop` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as sb:
        key = sb.api_key if sb.api_key == DEFAULT_KEY else "(as given)"
        print(f"sandbox listening on {sb.base_url}", flush=True)
        print(f"  GraphQL  POST {sb.graphql_url}  Authorization: Bearer {key}", flush=True)
        print(f"  control  {sb.base_url}/_control/  (faults, settings, ledger, orders, events)")
        print(
            f"  seed {settings.seed}, {len(sb.store.orders)} orders, "
            f"{'lenient' if settings.lenient else 'strict'} invoice_id, "
            f"{'real HTTP statuses' if settings.http_status_mode else 'always HTTP 200'}",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"invoicer sandbox: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"invoicer sandbox: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
