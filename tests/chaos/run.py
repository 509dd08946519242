"""`python -m tests.chaos.run --tier 1|2 [--seed N] [--broker proxy|real] [--json PATH]`:
one seeded chaos run; prints the figures and `N passed, N failed`; exit 1 on any failure."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import cast

from tests.chaos.broker import BROKER_MODES, BrokerMode
from tests.chaos.harness import Result, run
from tests.chaos.report import figures, markdown, render
from tests.chaos.tiers import TIERS, Tier

# Broker-wide faults (rabbitmqctl stop_app, kill -9) hit everyone on the broker; "proxy" keeps
# them to the services under test. INVOICER_CHAOS_BROKER chooses; see docs/reliability.md.
DEFAULT_BROKER_MODE = os.environ.get("INVOICER_CHAOS_BROKER", "connections")


async def _until_terminated(tier: Tier, mode: BrokerMode) -> Result:
    """The run, cancelled by SIGTERM like by Ctrl-C, so its clean-up (processes, queues,
    broker user) runs either way."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(tier, broker_mode=mode, log=lambda s: print(s, flush=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--tier", type=int, choices=sorted(TIERS), default=1)
    parser.add_argument("--seed", type=int, default=None, help="default: the tier's own seed")
    parser.add_argument("--broker", choices=BROKER_MODES, default=DEFAULT_BROKER_MODE)
    parser.add_argument("--json", default=None, help="also write the figures and checks here")
    parser.add_argument("--markdown", default=None, help="also write the results as Markdown")
    args = parser.parse_args(argv)
    tier = TIERS[args.tier]
    if args.seed is not None:
        tier = tier.with_seed(args.seed)
    try:
        result = asyncio.run(_until_terminated(tier, cast(BrokerMode, args.broker)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("chaos run aborted; its processes and broker objects were cleaned up", flush=True)
        return 130
    print(render(result), flush=True)
    doc = json.loads(
        json.dumps(
            {"figures": figures(result), "checks": [c.__dict__ for c in result.checks]}, default=str
        )
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    if args.markdown:
        command = "python -m tests.chaos.run " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        with open(args.markdown, "w") as fh:
            fh.write(markdown(doc, command))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
