"""README and runbook stay true: the settings table, metric names in alerts, links."""

from __future__ import annotations

import re

import pytest
import yaml

from consumer.metrics import Metrics
from consumer.settings import ENV_NAMES
from tests.unit.deploy_support import ROOT, default_text


def test_readme_configuration_table_lists_every_setting_with_its_default() -> None:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\|\s*`(INVOICER_[A-Z_]+)`\s*\|\s*(.*?)\s*\|\s*(.+?)\s*\|$", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    assert set(rows) == set(ENV_NAMES)
    for env, (default, meaning) in rows.items():
        expected = default_text(env)
        shown = "" if default in {"(empty)", "(unset)"} else default.strip("`")
        assert shown == expected, f"{env}: README says {default!r}, settings say {expected!r}"
        assert meaning, f"{env} has no meaning in the README"


def test_runbook_alerts_name_real_metrics() -> None:
    known = {family.name for family in Metrics().registry.collect()}
    text = (ROOT / "docs" / "operations.md").read_text()
    named = set(re.findall(r"\b(invoicer_[a-z_]+)", text))
    assert named, "the runbook names no metric"
    for name in sorted(named):
        base = re.sub(r"_(total|bucket|count|sum|created)$", "", name)
        assert base in known, f"docs/operations.md names {name}, which consumer/metrics.py lacks"


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md", "docs/architecture.md"])
def test_relative_links_resolve(doc: str) -> None:
    path = ROOT / doc
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text())
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, f"{doc} links to nothing local"
    missing = [t for t in local if not (path.parent / t).exists()]
    assert not missing, f"{doc} links to missing paths: {missing}"


def runbook_alerts() -> dict[str, tuple[str, str]]:
    """Alert name -> (expression, for) from the runbook's table."""
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("| Alert | Expression | For | Why |") :].split("\n\n")[0]
    alerts = {}
    for line in table.splitlines()[2:]:
        name, expr, wait, _ = (c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1])
        alerts[name] = (expr.strip("`").replace("\\|", "|"), wait)
    return alerts


def test_prometheus_rule_ships_exactly_the_runbook_alerts() -> None:
    path = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
    rule = yaml.safe_load(path.read_text())
    shipped = {
        r["alert"]: (r["expr"], r.get("for", "0m"))
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    }
    assert shipped == runbook_alerts()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert r["labels"]["severity"] in {"page", "ticket"}
            assert r["annotations"]["summary"]
