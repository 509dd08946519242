"""The published contracts match the models, and real events validate against them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from schemas.contracts import main, rendered, stale
from tests.unit.fakes import FakeAfosto, make_deps
from tests.unit.harness import FakeTime, drive, trigger

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    assert stale(ROOT) == [], "run: .venv/bin/python -m schemas.contracts"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    target = tmp_path / "docs/events/invoice.created.schema.json"
    target.write_text(target.read_text().replace('"total"', '"grand_total"'))
    assert main(["--root", str(tmp_path), "--check"]) == 1


def test_asyncapi_document_describes_every_channel() -> None:
    doc = yaml.safe_load(rendered()["docs/asyncapi.yaml"])
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "order.shipped",
        "order.returned",
        "order.updated",
        "invoice.created",
        "invoice.pdf_ready",
    }
    assert "invoicer_recheck" not in doc["components"]["schemas"]["TriggerEvent"]["properties"]
    for op in doc["operations"].values():
        ref = op["channel"]["$ref"].removeprefix("#/channels/")
        assert ref in doc["channels"]


async def test_events_the_handlers_publish_validate_against_their_schema() -> None:
    api = FakeAfosto(prices={"c": -500})
    api.add_order("o1", ["a", "b"])
    api.add_order("o2", ["c"])
    run = await drive(
        make_deps(api),
        FakeTime(api.clock),
        [("triggers", trigger("o1", "e1")), ("triggers", trigger("o2", "e2"))],
    )
    assert len(run.emitted) == 4
    for emit in run.emitted:
        schema = json.loads((ROOT / f"docs/events/{emit.event_type}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(json.loads(emit.event.model_dump_json()))
    kinds = sorted(
        json.loads(e.event.model_dump_json())["invoice"]["kind"]
        for e in run.events("invoice.created")
    )
    assert kinds == ["credit", "invoice"]
