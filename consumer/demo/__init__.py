"""`invoicer demo`: the sandbox, the service and simulated fulfilment traffic on the local broker.

Everything runs in this process under its own queue prefix and exchanges, which are deleted at
the end (also on Ctrl-C). Numbers come from outside the service: a tap on the output exchange
and the sandbox's ledger of what Afosto really holds."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rich.console import Console

from consumer.demo.broker import BrokerUnreachable
from consumer.demo.report import DemoReport, summary_table
from consumer.demo.run import DemoOptions, Run
from consumer.logs import configure_logging
from consumer.settings import Settings, SettingsError, load_settings


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoReport:
    """Run one demo and return its numbers (the broker must be reachable)."""
    console = console or Console()
    base = load_settings() if options.amqp_url is None else _with_url(options.amqp_url)
    return await Run(options, base, console).execute()


def _with_url(url: str) -> Settings:
    return load_settings({"INVOICER_AMQP_URL": url}, env_file=None)


def parse_args(argv: list[str] | None) -> DemoOptions:
    p = argparse.ArgumentParser(prog="invoicer demo", description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=300, help="orders to simulate (default 300)")
    p.add_argument("--seed", type=int, default=7, help="seed of the sandbox and the traffic")
    p.add_argument("--in-flight", type=int, default=20, help="orders worked on at once")
    p.add_argument("--faults", choices=("light", "none"), default="light", help="Afosto faults")
    p.add_argument("--no-webhooks", action="store_true", help="AMQP events only")
    p.add_argument("--output", type=Path, default=Path("demo-output"), help="PDFs and log")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many s")
    p.add_argument("--amqp-url", help="broker URL (default: INVOICER_AMQP_URL or localhost)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    a = p.parse_args(argv)
    if a.orders < 1:
        p.error("--orders must be at least 1")
    return DemoOptions(
        orders=a.orders,
        seed=a.seed,
        in_flight=max(1, a.in_flight),
        faults=a.faults,
        webhooks=not a.no_webhooks,
        output=a.output,
        timeout=a.timeout,
        amqp_url=a.amqp_url,
        progress=not a.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `invoicer demo`: 0 when every invoice arrived exactly once, else 1."""
    options = parse_args(argv)
    console = Console()
    options.output.mkdir(parents=True, exist_ok=True)
    log_path = options.output / "demo.log"
    try:
        with log_path.open("w") as log_file:
            handler = configure_logging(level="INFO", fmt="text", stream=log_file)
            try:
                report = asyncio.run(run_demo(options, console))
            finally:
                logging.getLogger().removeHandler(handler)
    except BrokerUnreachable as exc:
        print(f"invoicer demo: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"invoicer demo: bad settings:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("invoicer demo: interrupted; its queues and exchanges were removed", file=sys.stderr)
        return 130
    console.print(summary_table(report))
    console.print(f"PDFs: {report.pdf_dir.resolve()}   log: {log_path.resolve()}")
    return 0 if report.ok else 1


__all__ = ["DemoOptions", "DemoReport", "main", "run_demo"]
