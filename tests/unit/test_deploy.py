"""deploy/ stays in step with the code: ports, probes, settings, image entry point, topology."""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.amqp.topology import definitions
from consumer.cli import main as invoicer
from consumer.durations import parse_duration
from consumer.settings import ENV_NAMES, SECRET_ENV_NAMES
from sandbox.cli import parser, settings_from
from tests.unit.deploy_support import BASE, DEPLOY, ROOT, default_text, defaults

TEST_ONLY = {"INVOICER_CRASH_AT"}
# Webhook intake needs only the broker, so a pod paused for Afosto stays in the Service.
READINESS_PATH = "/readyz?exclude=afosto,consuming"


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def base_docs() -> Iterator[dict[str, Any]]:
    for name in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]:
        yield from load_all(BASE / name)


def one(kind: str) -> dict[str, Any]:
    found = [d for d in base_docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_yaml_parses(path: Path) -> None:
    assert load_all(path), f"{path} holds no document"


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = {d["kind"] for d in base_docs()}
    expected = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ScaledObject"}
    assert expected | {"TriggerAuthentication"} <= kinds


def test_ports_and_probes_match_the_settings_defaults() -> None:
    port = defaults().http.port
    c = container()
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert one("Service")["spec"]["ports"][0]["targetPort"] == "http"
    assert ("EXPOSE", str(port)) in dockerfile_instructions()


def test_selectors_match_the_pod_labels() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for selector in (
        one("Deployment")["spec"]["selector"]["matchLabels"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one("Service")["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()


def test_termination_grace_outlasts_prestop_and_drain_deadline() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = parse_duration(configmap()["INVOICER_DRAIN_DEADLINE"])
    assert drain == defaults().pipeline.drain_deadline
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain.total_seconds()


def configmap() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap")["data"]
    return data


def secret_refs() -> dict[str, str]:
    refs = {}
    for var in container()["env"]:
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "invoicer-secrets"
        refs[var["name"]] = ref["key"]
    return refs


def test_every_setting_has_a_configmap_or_secret_entry_and_nothing_else() -> None:
    cm, secrets = set(configmap()), set(secret_refs())
    assert not cm & secrets
    assert cm | secrets == set(ENV_NAMES) - TEST_ONLY
    assert secrets == set(SECRET_ENV_NAMES), "secrets belong in the Secret, nothing else does"
    refs = container()["envFrom"]
    assert refs == [{"configMapRef": {"name": one("ConfigMap")["metadata"]["name"]}}]


def test_configmap_holds_the_defaults() -> None:
    expected = {env: default_text(env) for env in configmap()}
    assert configmap() == expected


def test_image_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    instructions = dict(dockerfile_instructions()[::-1])  # the last one of a kind wins
    entrypoint = yaml.safe_load(instructions["ENTRYPOINT"])
    assert entrypoint[0] in scripts
    assert scripts[entrypoint[0]] == "consumer.cli:main"
    assert yaml.safe_load(instructions["CMD"]) == ["run"] == container()["args"]
    example = yaml.safe_load(
        (BASE.parent / "overlays" / "example" / "kustomization.yaml").read_text()
    )
    assert container()["image"] in {i["name"] for i in example["images"]}, "overlays set the image"


def test_dockerfile_is_multi_stage_non_root_with_a_stdlib_healthcheck() -> None:
    steps = dockerfile_instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith("AS builder")
    user = [arg for op, arg in steps if op == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    check = next(arg for op, arg in steps if op == "HEALTHCHECK")
    assert "/healthz" in check
    assert "urllib.request" in check
    assert "curl" not in check
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = {shlex.split(arg)[0] for op, arg in steps if op == "COPY" and "--from" not in arg}
    for pattern in packages["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, f"the image misses package {pattern}"


def test_scaledobject_watches_the_trigger_and_intent_queues_over_http() -> None:
    prefix = defaults().amqp.queue_prefix
    scaled = one("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == one("Deployment")["metadata"]["name"]
    auth = one("TriggerAuthentication")["metadata"]["name"]
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["queueName"] for t in triggers} == {
        f"{prefix}.triggers",
        f"{prefix}.intents",
    }
    for t in triggers:
        assert t["type"] == "rabbitmq"
        assert t["metadata"]["protocol"] == "http"
        assert t["metadata"]["mode"] == "QueueLength"
        assert t["authenticationRef"]["name"] == auth
    assert scaled["spec"]["minReplicaCount"] >= 2, "keep the PodDisruptionBudget satisfiable"
    assert "replicas" not in one("Deployment")["spec"], "apply would fight the autoscaler"


def test_compose_wires_real_settings_and_the_definitions() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["rabbitmq"]["image"] == "rabbitmq:4-management"
    mounts = [v.split(":")[0] for v in services["rabbitmq"]["volumes"]]
    assert "./rabbitmq/definitions.json" in mounts
    for mount in mounts:
        assert (DEPLOY / mount).is_file(), mount
    env = services["invoicer"]["environment"]
    assert set(env) <= set(ENV_NAMES)
    assert services["invoicer"]["command"] == ["run"]
    sandbox_cmd = services["sandbox"]["command"]
    assert sandbox_cmd[0] == "sandbox"
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in sandbox_cmd[1:])
    assert flags["exchange"] == defaults().amqp.input_exchange
    assert flags["webhook-url"].endswith(f":{defaults().http.port}/webhooks/afosto")
    sandbox_env = services["sandbox"]["environment"]
    assert sandbox_env["INVOICER_SANDBOX_WEBHOOK_SECRET"] == env["INVOICER_WEBHOOK_SECRETS"]
    assert sandbox_env["INVOICER_SANDBOX_API_KEY"] == env["INVOICER_AFOSTO_API_KEY"]
    assert env["INVOICER_AFOSTO_URL"] == "http://sandbox:" + flags["port"] + "/graphql"
    grace = parse_duration(services["invoicer"]["stop_grace_period"])
    assert grace > defaults().pipeline.drain_deadline


def test_definitions_are_current() -> None:
    """deploy/rabbitmq/definitions.json is `invoicer topology --format definitions` at defaults."""
    path = DEPLOY / "rabbitmq" / "definitions.json"
    regenerate = "env -i PATH=$PATH invoicer topology --format definitions > " + str(path)
    current = json.loads(path.read_text())
    assert current == definitions(defaults().amqp), f"stale; regenerate with: {regenerate}"


def test_compose_dev_definitions_fit_the_topology() -> None:
    accounting = json.loads((DEPLOY / "rabbitmq" / "30-dev-accounting.json").read_text())
    assert {b["source"] for b in accounting["bindings"]} == {defaults().amqp.output_exchange}
    users = json.loads((DEPLOY / "rabbitmq" / "10-dev-user.json").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    url = compose["services"]["invoicer"]["environment"]["INVOICER_AMQP_URL"]
    names = {u["name"] for u in users["users"]}
    assert url.split("//")[1].split(":")[0] in names
    assert "guest" in names, "make test/demo default to guest/guest"
    assert {p["user"] for p in users["permissions"]} == names
    assert {v["name"] for v in users["vhosts"]} == {"/"}


def test_image_commands_are_real_cli_commands(capsys: pytest.CaptureFixture[str]) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for command in (container()["args"], compose["services"]["invoicer"]["command"]):
        with pytest.raises(SystemExit) as exited:
            invoicer([*command, "--help"])
        assert exited.value.code == 0
        assert f"usage: invoicer {command[0]}" in capsys.readouterr().out


def test_compose_sandbox_command_parses_into_the_intended_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for name, value in services["sandbox"]["environment"].items():
        monkeypatch.setenv(name, value)
    command = services["sandbox"]["command"]
    assert command[0] == "sandbox"
    sandbox_settings = settings_from(parser().parse_args(command[1:]))
    env = services["invoicer"]["environment"]
    assert sandbox_settings.api_key == env["INVOICER_AFOSTO_API_KEY"]
    assert sandbox_settings.webhook_secret == env["INVOICER_WEBHOOK_SECRETS"].split(",")[0]
    assert sandbox_settings.exchange == defaults().amqp.input_exchange
    assert sandbox_settings.amqp_url == env["INVOICER_AMQP_URL"]
    assert sandbox_settings.host == "0.0.0.0"


def test_example_overlay_uses_the_base_and_the_monitoring_component() -> None:
    example = BASE.parent / "overlays" / "example"
    overlay = yaml.safe_load((example / "kustomization.yaml").read_text())
    for ref in overlay["resources"] + overlay["components"]:
        assert (example / ref / "kustomization.yaml").is_file(), ref
    component_dir = BASE.parent / "components" / "monitoring"
    component = yaml.safe_load((component_dir / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert {p.name for p in component_dir.glob("*.yaml")} - {"kustomization.yaml"} == set(
        component["resources"]
    )
    for patch in overlay.get("patches", []):
        for op in yaml.safe_load(patch["patch"]):
            env = op["path"].removeprefix("/data/")
            assert env in ENV_NAMES, f"the example overlay patches {env}, which is no setting"
