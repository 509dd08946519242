"""Pure rules of the consume loop: broker retry delays and the crash hook's no-op default."""

from __future__ import annotations

from datetime import timedelta

from consumer.amqp.retries import retry_delay
from consumer.crash import crash_hook
from handlers.errors import RateLimited, Transient
from handlers.ports import no_crash


def test_retry_delay_doubles_per_attempt() -> None:
    base = timedelta(seconds=5)
    delays = [retry_delay(base, n, Transient("x")) for n in (1, 2, 3, 4)]
    assert delays == [timedelta(seconds=s) for s in (5, 10, 20, 40)]


def test_rate_limits_are_never_retried_sooner_than_asked() -> None:
    base = timedelta(seconds=1)
    assert retry_delay(base, 1, RateLimited("slow down", retry_after=30)) == timedelta(seconds=30)
    assert retry_delay(base, 6, RateLimited("slow down", retry_after=2)) == timedelta(seconds=32)
    assert retry_delay(base, 1, RateLimited("slow down")) == timedelta(seconds=1)


def test_crash_hook_is_a_no_op_unless_configured() -> None:
    assert crash_hook(None) is no_crash
    hook = crash_hook("during_pdf_poll")
    hook("after_receive")  # another point: nothing happens
    hook("after_publish_before_ack")
