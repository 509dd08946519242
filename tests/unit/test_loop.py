"""INVOICER_EVENT_LOOP picks the loop `invoicer run` runs on."""

from __future__ import annotations

import asyncio
import gc

import pytest

from consumer.loop import GC_YOUNG_THRESHOLD, loop_name, run, tune_gc
from consumer.settings import SettingsError, load_settings


async def _which() -> str:
    return loop_name()


@pytest.mark.parametrize(("value", "expected"), [("asyncio", "asyncio"), ("UVLOOP", "uvloop")])
def test_the_setting_chooses_the_loop(value: str, expected: str) -> None:
    choice = load_settings({"INVOICER_EVENT_LOOP": value}, env_file=None).pipeline.event_loop
    assert run(_which(), choice) == expected


def test_auto_is_the_default_and_means_uvloop_when_installed() -> None:
    choice = load_settings({}, env_file=None).pipeline.event_loop
    assert choice == "auto"
    assert run(_which(), choice) == "uvloop"  # a main dependency on this platform


def test_a_wrong_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="INVOICER_EVENT_LOOP"):
        load_settings({"INVOICER_EVENT_LOOP": "trio"}, env_file=None)


def test_run_leaves_no_loop_behind() -> None:
    run(_which(), "uvloop")
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_tune_gc_freezes_start_up_objects_and_collects_young_ones_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
