"""Offline checks of deploy/: YAML, Kubernetes schemas, Prometheus rules, Grafana, Compose.

Everything here is fast and needs no network and no Docker daemon. `promtool` (Debian package
`prometheus`) is the one outside tool: without it the promtool tests skip loudly, unless CI is
set, where its absence is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from leadflow.pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "leadflow.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# Pinned so that a kubernetes-validate upgrade cannot change the verdict silently; the package
# ships the schemas of this version (no download). Bump it with the clusters we target.
K8S_VERSION = "1.30.0"

# The worker's metrics as Prometheus exposes them (counters with _total).
COUNTERS = {
    "leadflow_events_total",
    "leadflow_dead_letters_total",
    "leadflow_stage_entries_total",
    "leadflow_sla_breaches_total",
    "leadflow_sla_outcomes_total",
    "leadflow_sink_rows_total",
    "leadflow_sink_errors_total",
    "leadflow_won_amount_total",
    "leadflow_recovered_leads_total",
    "leadflow_backfilled_leads_total",
}
GAUGES = {
    "leadflow_leads",
    "leadflow_sla_pending",
    "leadflow_orphan_leads",
    "leadflow_goal_progress_ratio",
    "leadflow_sink_oldest_unwritten_batch_seconds",
}
HISTOGRAMS = {
    "leadflow_speed_to_lead_seconds",
    "leadflow_speed_to_lead_business_seconds",
    "leadflow_event_lag_seconds",
    "leadflow_sink_write_seconds",
}
EXPOSED_METRICS = (
    COUNTERS
    | GAUGES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

WORKERS = ("worker-1", "worker-2")
COMPOSE_SERVICES = {
    "kafka",
    "postgres",
    "migrate",
    *WORKERS,
    "simulator",
    "ingest",
    "ingest-tls",
    "prometheus",
    "grafana",
    "db-logins",
    "dashboard",
    "dashboard-auth",
    "kafka-exporter",
}


# --- helpers --------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def setting_env_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def read_env_file(path: Path) -> dict[str, str]:
    """Compose's env_file format, as far as these files use it: KEY=VALUE and # comments."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A Compose service's environment: env_file entries, then `environment` over them."""
    env: dict[str, str] = {}
    env_files = service.get("env_file", [])
    for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
        path = entry["path"] if isinstance(entry, dict) else entry
        env.update(read_env_file(DEPLOY / path))
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    env.update({key: str(value) for key, value in environment.items()})
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Build Settings from exactly ``env`` (no LEADFLOW_* leaking in from the test run)."""
    for name in list(os.environ):
        if name.startswith("LEADFLOW_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a parsed document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def dashboard_exprs() -> list[str]:
    return [obj["expr"] for obj in walk(json.loads(DASHBOARD.read_text())) if "expr" in obj]


def without_grafana_variables(expr: str) -> str:
    """Grafana's macros and template variables replaced by values PromQL accepts."""
    # Interval macros first: $__rate_interval, $__interval, $__range (and their ${...} forms).
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    # Every other variable sits in a label matcher here, e.g. instance=~"$instance".
    return re.sub(r"\$\{?\w+\}?|\[\[\w+\]\]", ".*", expr)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(leadflow_\w+)", expr))


def unavailable(what: str) -> None:
    """Fail under CI; elsewhere skip, loudly (as tests/conftest.py does for services)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI is set, so this is a failure", pytrace=False)
    reason = f"{what}: THESE TESTS ARE SKIPPED (apt-get install -y prometheus; CI=1 fails)"
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("PROMTOOL NOT ON PATH")
    assert path is not None
    return path


def run_promtool(promtool: str, *args: str | Path) -> None:
    result = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"promtool {args}:\n{result.stdout}\n{result.stderr}"


# --- every YAML file ------------------------------------------------------------------------

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"})


def test_deploy_has_yaml_files() -> None:
    assert len(YAML_FILES) >= 10, YAML_FILES


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and all(doc is not None for doc in documents), f"{path}: empty document"


# --- Kubernetes -----------------------------------------------------------------------------

KUSTOMIZATION = load_yaml(K8S / "kustomization.yaml")
K8S_MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in K8S_MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``, where a kind has several)."""
    (found,) = [
        obj
        for obj in k8s_objects()
        if obj["kind"] == kind and name in (None, obj["metadata"]["name"])
    ]
    return found


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(KUSTOMIZATION["resources"]) == sorted(p.name for p in K8S_MANIFESTS)


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_k8s_manifest_validates(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        try:
            # strict: unknown fields (typos such as `readinesProbe`) are errors too.
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{path.name}: {doc['kind']} at {where}: {error.message}")


def test_k8s_workers() -> None:
    deployment = k8s_object("Deployment", "leadflow-worker")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["ports"] == [{"name": "metrics", "containerPort": 6066, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    # Liveness apart from readiness: a recovering worker (503 on /health) is not restarted.
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "metrics"}
    assert {"requests", "limits"} <= container["resources"].keys()
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {k8s_object("ConfigMap")["metadata"]["name"], "leadflow-secrets"}
    service = k8s_object("Service", "leadflow-worker")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    job = k8s_object("Job")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["db", "upgrade"]
    (owner,) = [
        ref["secretRef"]["name"] for ref in job["containers"][0]["envFrom"] if "secretRef" in ref
    ]
    assert owner == "leadflow-db-owner"


EXAMPLE_SECRET = load_yaml(DEPLOY / "k8s-example" / "secret.yaml")


def test_k8s_settings_are_real(monkeypatch: pytest.MonkeyPatch) -> None:
    config = k8s_object("ConfigMap")["data"]
    secret = EXAMPLE_SECRET["stringData"]
    unknown = (config.keys() | secret.keys()) - setting_env_names()
    assert not unknown, f"not Settings fields: {sorted(unknown)}"
    assert "LEADFLOW_DATABASE_URL" not in config, "the database URL carries the password"
    settings = settings_from({**config, **secret}, monkeypatch)
    assert settings.web_host == "0.0.0.0"
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_k8s_roles_of_each_secret() -> None:
    """Workers as leadflow_writer, migrations as the owner, the dashboard read-only."""
    examples = DEPLOY / "k8s-example"
    users = {
        "secret.yaml": "leadflow_writer",
        "db-owner-secret.yaml": "leadflow",
        "dashboard-secret.yaml": "leadflow_marketing",
    }
    for name, user in users.items():
        url = load_yaml(examples / name)["stringData"]["LEADFLOW_DATABASE_URL"]
        assert url.startswith(f"postgresql+psycopg://{user}:"), name


def test_k8s_dashboard_apart_behind_a_login() -> None:
    assert k8s_object("ConfigMap")["data"]["LEADFLOW_WORKER_DASHBOARD"] == "false"
    deployment = k8s_object("Deployment", "leadflow-dashboard")
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers.keys() == {"dashboard", "oauth2-proxy"}
    app = containers["dashboard"]
    assert app["args"][:1] == ["dashboard"] and "127.0.0.1" in app["args"]
    assert "ports" not in app, "the dashboard is reached through the proxy only"
    (env,) = app["env"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == "leadflow-dashboard"
    proxy = containers["oauth2-proxy"]
    assert "--upstream=http://127.0.0.1:8066/" in proxy["args"]
    assert [p["name"] for p in proxy["ports"]] == ["http"]
    service = k8s_object("Service", "leadflow-dashboard")["spec"]
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def _ingress_rules(name: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    policy = k8s_object("NetworkPolicy", name)["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    return policy["podSelector"]["matchLabels"], policy["ingress"]


def test_k8s_network_policies() -> None:
    """Only Prometheus reaches the workers' metrics port; only the proxy's port of the
    dashboard pods is open."""
    selector, (rule,) = _ingress_rules("leadflow-worker")
    worker_labels = k8s_object("Deployment", "leadflow-worker")["spec"]["template"]["metadata"]
    assert selector.items() <= worker_labels["labels"].items()
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "namespaceSelector" in source
    selector, (rule,) = _ingress_rules("leadflow-dashboard")
    dashboard = k8s_object("Deployment", "leadflow-dashboard")["spec"]["template"]
    assert selector.items() <= dashboard["metadata"]["labels"].items()
    assert [p["port"] for p in rule["ports"]] == ["http"]
    ingest = k8s_object("Deployment", "leadflow-ingest")["spec"]["template"]["metadata"]
    assert not selector.items() <= ingest["labels"].items()


def test_the_kustomization_carries_no_secret() -> None:
    """The placeholder secret is an example applied by hand: `apply -k` never overwrites one."""
    assert not [obj for obj in k8s_objects() if obj["kind"] == "Secret"]
    assert EXAMPLE_SECRET["kind"] == "Secret"
    assert EXAMPLE_SECRET["metadata"]["name"] == "leadflow-secrets"


def _images() -> list[str]:
    found = [c["image"] for obj in k8s_objects() if obj["kind"] in ("Deployment", "Job")
             for c in obj["spec"]["template"]["spec"]["containers"]]  # fmt: skip
    found += [service["image"] for service in SERVICES.values() if "image" in service]
    return found


def test_image_tags_are_pinned() -> None:
    images = _images()
    assert len(images) >= 5
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", image
    (pinned,) = KUSTOMIZATION["images"]
    assert pinned["newTag"] not in ("", "latest")


def test_postgres_is_not_published_on_the_host() -> None:
    assert "ports" not in SERVICES["postgres"]
    published = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert not [p for p in published if str(p).endswith(":5432")]


# --- Docker Compose -------------------------------------------------------------------------

COMPOSE_DOC = load_yaml(COMPOSE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE_DOC["services"]


def test_compose_services() -> None:
    assert SERVICES.keys() >= COMPOSE_SERVICES
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["simulator"]["command"][:1] == ["simulate"]


def test_compose_depends_on_conditions() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in conditions, f"{name} -> {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency
    for worker in WORKERS:
        assert SERVICES[worker]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_compose_workers_share_group_and_differ_in_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_ids = set()
    for worker in WORKERS:
        settings = settings_from(service_env(SERVICES[worker]), monkeypatch)
        app_ids.add(settings.app_id)
        assert settings.web_host == "0.0.0.0"
        assert settings.broker == "kafka://kafka:9092"
        assert settings.database_url.startswith("postgresql+psycopg://leadflow_writer:")
        assert settings.database_url.endswith("@postgres:5432/leadflow")
    assert len(app_ids) == 1
    assert len({SERVICES[worker]["hostname"] for worker in WORKERS}) == len(WORKERS)


def test_compose_leadflow_env_names_are_settings() -> None:
    known = setting_env_names()
    for name, service in SERVICES.items():
        env = service_env(service)
        unknown = {key for key in env if key.startswith("LEADFLOW_")} - known
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"


def test_compose_database_password_matches_postgres() -> None:
    postgres = service_env(SERVICES["postgres"])
    url = service_env(SERVICES["migrate"])["LEADFLOW_DATABASE_URL"]
    user = postgres["POSTGRES_USER"]
    assert f"//{user}:{postgres['POSTGRES_PASSWORD']}@" in url


def test_compose_workers_and_dashboard_log_in_as_their_roles() -> None:
    """Workers as leadflow_writer, the dashboard as read-only leadflow_marketing, with the
    passwords db-logins sets after the owner's migrations."""
    roles = service_env(SERVICES["db-logins"])
    logins = {
        "worker-1": ("leadflow_writer", roles["DB_WRITER_PASSWORD"]),
        "worker-2": ("leadflow_writer", roles["DB_WRITER_PASSWORD"]),
        "dashboard": ("leadflow_marketing", roles["DB_DASHBOARD_PASSWORD"]),
    }
    script = " ".join(SERVICES["db-logins"]["command"])
    for name, (role, password) in logins.items():
        url = service_env(SERVICES[name])["LEADFLOW_DATABASE_URL"]
        assert url.startswith(f"postgresql+psycopg://{role}:{password}@postgres:5432/"), name
        assert f"ALTER ROLE {role} PASSWORD" in script, role
        assert SERVICES[name]["depends_on"]["db-logins"]["condition"] == (
            "service_completed_successfully"
        )
    assert SERVICES["db-logins"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_compose_dashboard_only_behind_the_login() -> None:
    for worker in WORKERS:
        assert service_env(SERVICES[worker])["LEADFLOW_WORKER_DASHBOARD"] == "false"
    dashboard = SERVICES["dashboard"]
    assert dashboard["command"][0] == "dashboard" and "ports" not in dashboard
    proxy = SERVICES["dashboard-auth"]
    assert proxy["image"].startswith("quay.io/oauth2-proxy/oauth2-proxy:v")
    assert "--upstream=http://dashboard:8066/" in proxy["command"]
    assert proxy["ports"] == ["127.0.0.1:4180:4180"]


def test_compose_mounts_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: missing {source}"


def test_prometheus_scrapes_the_compose_workers() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "leadflow-worker"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{SERVICES[w]['hostname']}:6066" for w in WORKERS}
    assert config["rule_files"]
    (lag,) = [j for j in config["scrape_configs"] if j["job_name"] == "kafka-exporter"]
    assert lag["static_configs"][0]["targets"] == ["kafka-exporter:9308"]
    assert "--kafka.server=kafka:9092" in SERVICES["kafka-exporter"]["command"]


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["leadflow"\]$', text, re.M)
    assert re.search(r'^CMD \["worker"\]$', text, re.M)
    assert re.search(r"^EXPOSE 6066$", text, re.M)
    assert "/health" in text.split("HEALTHCHECK", 1)[1]
    (user,) = re.findall(r"^USER (\S+)$", text, re.M)
    assert user.split(":")[0] not in {"root", "0"}
    # Every folder pyproject installs must be copied into the build stage, with the pins.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for folder in pyproject["tool"]["setuptools"]["package-dir"].values():
        assert re.search(rf"^COPY {folder} \./{folder}$", text, re.M), folder
    assert re.search(r"^COPY .*constraints\.txt", text, re.M)
    assert "-c constraints.txt" in text


# --- Prometheus (promtool) ------------------------------------------------------------------


def test_promtool_check_config(promtool: str) -> None:
    run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)


def test_promtool_check_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", ALERTS)


def test_dashboard_promql_parses(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"leadflow_dashboard:expr_{i}", "expr": without_grafana_variables(expr)}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", path)


def _annotations(alert: str, value: str) -> dict[str, str]:
    """The annotations of ``alert`` as Prometheus renders them for consumer group leadflow."""
    (rule,) = [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if r["alert"] == alert]
    return {
        key: text.replace("{{ $value | humanize }}", value)
        .replace("{{ $labels.consumergroup }}", "leadflow")
        .strip()
        for key, text in rule["annotations"].items()
    }


def _lag(topic: str, values: str) -> dict[str, str]:
    series = f'kafka_consumergroup_lag_sum{{consumergroup="leadflow",topic="{topic}"}}'
    return {"series": series, "values": values}


def _expect(alert: str, at: str, fired: dict[str, str] | None, value: str = "") -> dict[str, Any]:
    found = (
        []
        if fired is None
        else [{"exp_labels": fired, "exp_annotations": _annotations(alert, value)}]
    )
    return {"eval_time": at, "alertname": alert, "exp_alerts": found}


def backlog_tests() -> dict[str, Any]:
    """A backlog that stays (a stuck group) fires whatever the events' age; one worked off
    and a group that keeps up do not; no exporter target is an alert of its own."""
    stuck = {
        "interval": "1m",
        "input_series": [
            _lag("marketing-leads", "0 0 0 40x40"),
            {"series": 'up{job="kafka-exporter"}', "values": "1x45"},
        ],
        "alert_rule_test": [
            _expect(
                "LeadflowConsumerBacklog",
                "30m",
                {"severity": "warning", "consumergroup": "leadflow"},
                "40",
            ),
            _expect("LeadflowConsumerLagUnknown", "30m", None),
        ],
    }
    draining = {
        "interval": "1m",
        "input_series": [_lag("marketing-leads", "5000-100x45"), _lag("sales-outcomes", "0x45")],
        "alert_rule_test": [
            _expect("LeadflowConsumerBacklog", "40m", None),
            _expect("LeadflowConsumerLagUnknown", "40m", {"severity": "warning"}),
        ],
    }
    return {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [stuck, draining]}


def test_the_backlog_alert_sees_a_backlog_that_stays(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "backlog-test.yml"
    path.write_text(yaml.safe_dump(backlog_tests()))
    run_promtool(promtool, "test", "rules", path)


def test_alerts_are_complete() -> None:
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    for rule in rules:
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description"} <= rule["annotations"].keys(), name
        unknown = metric_names(rule["expr"]) - EXPOSED_METRICS
        assert not unknown, f"{name}: unknown metrics {unknown}"
    exprs = " ".join(rule["expr"] for rule in rules)
    for needle in (
        "leadflow_sla_breaches_total",
        "leadflow_dead_letters_total",
        "leadflow_event_lag_seconds_bucket",
        "leadflow_sink_errors_total",
        "leadflow_sink_oldest_unwritten_batch_seconds",
        "up{",
        "absent(up",
        "kafka_consumergroup_lag_sum",
    ):
        assert needle in exprs, needle


# --- Grafana --------------------------------------------------------------------------------


def test_dashboard_metrics_are_exposed() -> None:
    exprs = dashboard_exprs()
    used = set().union(*(metric_names(expr) for expr in exprs))
    assert not used - EXPOSED_METRICS, f"unknown metrics: {sorted(used - EXPOSED_METRICS)}"
    # Every metric of the worker is on the dashboard somewhere.
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert bases >= COUNTERS | GAUGES | HISTOGRAMS


def test_dashboard_uses_the_provisioned_datasource() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    refs = [obj["datasource"] for obj in walk(dashboard) if isinstance(obj.get("datasource"), dict)]
    assert refs and all(ref == {"type": source["type"], "uid": source["uid"]} for ref in refs)
    panels = [obj for obj in walk(dashboard["panels"]) if obj.get("type") not in {"row", None}]
    assert all("gridPos" in panel for panel in panels if "targets" in panel)
    ids = [panel["id"] for panel in walk(dashboard["panels"]) if "gridPos" in panel]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_grafana_variable_substitution() -> None:
    expr = 'rate(x{instance=~"$instance"}[$__rate_interval]) / increase(y[${__range}])'
    assert without_grafana_variables(expr) == 'rate(x{instance=~".*"}[5m]) / increase(y[5m])'


# --- leadflow ingest -----------------------------------------------------------------------


def test_k8s_ingest_serves_behind_tls_with_tokens_from_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leadflow.pipeline.ingest.presets import Presets
    from leadflow.pipeline.ingest.tokens import parse_tokens

    deployment = k8s_object("Deployment", "leadflow-ingest")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["ingest"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["ports"] == [{"name": "http", "containerPort": 6068, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/health", "port": "http"}
    assert "httpGet" not in container["livenessProbe"], "a broker outage must not restart pods"
    env = {item["name"]: item["value"] for item in container["env"]}
    config = k8s_object("ConfigMap")["data"]
    settings = settings_from({**config, **env}, monkeypatch)
    assert (settings.ingest_host, settings.ingest_port) == ("0.0.0.0", 6068)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "ingest-secret"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "ingest-secret"]
    example = load_yaml(DEPLOY / "k8s-example" / "ingest-secret.yaml")
    assert example["metadata"]["name"] == volume["secret"]["secretName"]
    secret = example["stringData"]
    for variable in ("LEADFLOW_INGEST_TOKENS", "LEADFLOW_INGEST_PRESETS"):
        folder, _, key = env[variable].rpartition("/")
        assert folder == mount["mountPath"] and key in secret, variable
    assert parse_tokens(secret["tokens.txt"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service", "leadflow-ingest")
    assert service["spec"]["selector"].items() <= labels.items()
    worker_service = k8s_object("Service", "leadflow-worker")
    assert not worker_service["spec"]["selector"].items() <= labels.items()
    ingress = k8s_object("Ingress", "leadflow-ingest")["spec"]
    assert ingress["tls"] and ingress["tls"][0]["secretName"]
    backends = [p["backend"]["service"] for r in ingress["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": "leadflow-ingest", "port": {"name": "http"}}]
    placeholder = yaml.safe_load(secret["presets.yaml"]) or {}
    assert Presets.model_validate(placeholder) == Presets(), "the placeholder enables no hook"


def test_compose_ingest_behind_tls_with_tokens_from_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leadflow.pipeline.ingest.tokens import parse_tokens

    ingest = SERVICES["ingest"]
    assert ingest["command"] == ["ingest"]
    assert "ports" not in ingest, "ingest is reached through ingest-tls only"
    settings = settings_from(service_env(ingest), monkeypatch)
    assert settings.ingest_host == "0.0.0.0"
    (secret,) = ingest["secrets"]
    assert settings.ingest_tokens == f"/run/secrets/{secret}"
    tokens = DEPLOY / COMPOSE_DOC["secrets"][secret]["file"]
    assert parse_tokens(tokens.read_text(encoding="utf-8"))
    proxy = SERVICES["ingest-tls"]
    assert proxy["command"][-1] == f"ingest:{settings.ingest_port}"
    assert any(arg.startswith("https://") for arg in proxy["command"])
    assert proxy["ports"] == ["127.0.0.1:8443:8443"]
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "leadflow-ingest"]
    assert job["static_configs"][0]["targets"] == [f"ingest:{settings.ingest_port}"]
