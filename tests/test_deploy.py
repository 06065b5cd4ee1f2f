"""deploy/kubernetes: every manifest passes Kubernetes' own schemas (kubernetes-validate ships them,
no cluster or network needed, strict: unknown fields are errors), and the settings that make the
deployment safe are there and agree with each other and with gunicorn.conf.py."""

from __future__ import annotations

import copy
import runpy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from signer.service.config import WARNED
from tests.conftest import env_with
from tests.servers import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.37.0"


def documents() -> dict[str, dict[str, Any]]:
    """kind -> resource, over every manifest listed in kustomization.yaml."""
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
    resources = [doc for name in listed for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]
    return {doc["kind"]: doc for doc in resources}


def deployment_container() -> dict[str, Any]:
    return documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("kind", ["ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
                                  "PodDisruptionBudget", "NetworkPolicy", "Ingress"])
def test_manifest_passes_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(documents()[kind], K8S_VERSION, strict=True)


def test_the_schema_check_can_fail() -> None:
    deployment = copy.deepcopy(documents()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_pod_runs_locked_down() -> None:
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    security = deployment_container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001 and security["runAsGroup"] == 10001
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert deployment_container()["resources"]["limits"]["cpu"]


def test_probes_and_stop_timing_match_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env_with().items():
        monkeypatch.setenv(name, value)
    container = deployment_container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    monkeypatch.setenv(WARNED, "0")  # undone at the end: the master's note to its workers is not this process's
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    grace = documents()["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    stopping = settings["FRONT_GRACE"] + settings["graceful_timeout"]  # the front first, then the workers
    assert stopping < grace
    assert stopping < 10  # docker/podman stop's default timeout


def test_the_pieces_point_at_each_other() -> None:
    docs = documents()
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert docs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert docs["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    backend = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == docs["Service"]["metadata"]["name"]


def test_tokens_come_from_a_secret_and_the_gateway_sets_the_user_header() -> None:
    env = {item["name"]: item for item in deployment_container()["env"]}
    assert env["SIGNER_API_TOKENS"]["valueFrom"]["secretKeyRef"]["name"]
    assert "value" not in env["SIGNER_API_TOKENS"]
    for name, item in env.items():
        assert "SECRET" not in name or "valueFrom" in item
    header = env["SIGNER_USER_HEADER"]["value"]
    annotations = documents()["Ingress"]["metadata"]["annotations"]
    # ingress-nginx sets the header from the auth response (replacing any client value).
    assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == header
    assert annotations["nginx.ingress.kubernetes.io/auth-url"]


# --- metrics: the scrape, the dashboard and the alerts (issue #28, docs/metrics.md) ------------

DASHBOARD = ROOT / "deploy" / "grafana" / "sigv4-signer.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "heatmap"}


def test_metrics_are_scraped_on_their_own_port_and_only_the_scraper_is_let_in() -> None:
    docs = documents()
    container = deployment_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert int(env["SIGNER_METRICS_BIND"].rpartition(":")[2]) == ports["metrics"] != ports["http"]
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"
    rules = docs["NetworkPolicy"]["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule for rule in rules}
    assert sorted(by_port) == sorted([ports["http"], ports["metrics"]]) and all(len(r["ports"]) == 1 for r in rules)
    assert by_port[ports["http"]]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "ingress-nginx"
    assert by_port[ports["metrics"]]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"


def metric_names(expr: str) -> set[str]:
    """The service's metric names an expression reads, histogram suffixes taken off."""
    import re

    names = set(re.findall(r"\bsigner_[a-z_]+\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", name) if name.endswith(("_bucket", "_sum", "_count"))
            and not name.endswith("_total") else name for name in names}


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """What would keep Grafana from importing the dashboard, or its panels from showing data."""
    import re

    from signer.service.metrics import METRICS

    problems = []
    for field, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list),
                        ("templating", dict), ("time", dict)):
        if not isinstance(dashboard.get(field), kind):
            problems.append(f"{field} is not a {kind.__name__}")
    if problems:
        return problems
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"]):
        problems.append("uid must be 1-40 letters, digits, - or _")
    variables = {variable["name"] for variable in dashboard["templating"].get("list", [])}
    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        name = panel.get("title", "?")
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            problems.append(f"{name}: id missing or repeated")
        ids.add(panel.get("id"))
        if panel.get("type") not in PANEL_TYPES or not panel.get("title"):
            problems.append(f"{name}: unknown type or no title")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(key), int) for key in "xywh") or grid["w"] < 1 or grid["h"] < 1 \
                or grid["x"] < 0 or grid["y"] < 0 or grid["x"] + grid["w"] > 24:
            problems.append(f"{name}: gridPos must be whole x, y, w, h within 24 columns")
            continue
        taken = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        if taken & cells:
            problems.append(f"{name}: overlaps another panel")
        cells |= taken
        source = panel.get("datasource", {})
        if source.get("type") != "prometheus" or source.get("uid", "").strip("${}") not in variables:
            problems.append(f"{name}: datasource must be the dashboard's Prometheus variable")
        targets = panel.get("targets") or []
        if not targets or len({target.get("refId") for target in targets}) != len(targets):
            problems.append(f"{name}: targets missing, or refIds repeated")
        for target in targets:
            unknown = metric_names(target.get("expr", "")) - set(METRICS)
            if not target.get("expr") or unknown:
                problems.append(f"{name}: no expr, or metrics the service does not export: {sorted(unknown)}")
    return problems


def test_the_dashboard_has_what_grafana_needs_and_reads_only_exported_metrics() -> None:
    import json

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard_problems(dashboard) == []
    shown = {name for panel in dashboard["panels"] for target in panel["targets"] for name in metric_names(target["expr"])}
    from signer.service.metrics import METRICS

    assert shown == set(METRICS)  # every metric has a panel


@pytest.mark.parametrize("break_it", [
    lambda d: d.pop("uid"),
    lambda d: d["panels"][1].update(id=d["panels"][0]["id"]),
    lambda d: d["panels"][1].update(gridPos=d["panels"][0]["gridPos"]),
    lambda d: d["panels"][0]["gridPos"].update(x=20),
    lambda d: d["panels"][0]["targets"][0].update(expr="rate(signer_signatures[5m])"),
    lambda d: d["panels"][0].update(datasource={"type": "prometheus", "uid": "${nope}"}),
])
def test_the_dashboard_check_can_fail(break_it: Any) -> None:
    import json

    dashboard = json.loads(DASHBOARD.read_text())
    break_it(dashboard)
    assert dashboard_problems(dashboard)


def promtool() -> str | None:
    """Debian's prometheus package has it (.ci/run installs it); elsewhere the checks below that
    need it skip, saying how to install it, never under CI=true."""
    import os
    import shutil

    found = shutil.which("promtool")
    if not found and os.environ.get("CI") == "true":
        pytest.fail("promtool is not installed: apt-get install prometheus")
    return found


def test_the_alert_rules_are_well_formed_and_read_exported_metrics() -> None:
    from signer.service.metrics import METRICS

    document = yaml.safe_load(ALERTS.read_text())
    [group] = document["groups"]
    assert group["name"] and {rule["alert"] for rule in group["rules"]} == {"SignerFinishStepBehind",
                                                                           "SignerWebhooksFailing"}
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert metric_names(rule["expr"]) and metric_names(rule["expr"]) <= set(METRICS)
        assert rule["labels"]["severity"] and rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert str(rule["for"])[:-1].isdigit() and str(rule["for"])[-1] in "smh"


def alert_tests(rules: str) -> dict[str, Any]:
    """promtool's unit tests of the two alerts: made-up series, and when each must fire (and say what)."""
    def fired(name: str, at: str, description: str) -> dict[str, Any]:
        summary = next(rule["annotations"]["summary"] for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
                       if rule["alert"] == name)
        return {"eval_time": at, "alertname": name, "exp_alerts": [
            {"exp_labels": {"severity": "warning"}, "exp_annotations": {"summary": summary, "description": description}}]}

    return {"rule_files": [rules], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'signer_finish_oldest_due_seconds{instance="a"}', "values": "0 0 400x20"},  # behind from 2m
            {"series": 'signer_finish_oldest_due_seconds{instance="b"}', "values": "0x22"},
            {"series": 'signer_webhook_oldest_undelivered_seconds{instance="a"}', "values": "0 60+60x20"},  # ages
        ],
        "alert_rule_test": [
            {"eval_time": "11m", "alertname": "SignerFinishStepBehind", "exp_alerts": []},  # not yet for 10m
            fired("SignerFinishStepBehind", "13m", "The oldest due marker has waited 6m 40s: uploads are not checked or "
                  "reported in time. Look at the store's errors (signer_store_request_seconds_count by outcome) and "
                  'the service log ("finish step").'),
            {"eval_time": "19m", "alertname": "SignerWebhooksFailing", "exp_alerts": []},  # over 900 s from 16m
            fired("SignerWebhooksFailing", "21m", "The oldest undelivered event is 21m 0s old; events are given up "
                  "after three days. Check SIGNER_WEBHOOK_URL's receiver (the service log says what it answered)."),
        ],
    }]}


def test_promtool_checks_the_rules_fires_them_on_made_up_series_and_parses_the_dashboard(tmp_path) -> None:
    import json
    import subprocess

    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the YAML checks above ran")
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = tmp_path / "alerts_test.yaml"
    cases.write_text(yaml.safe_dump(alert_tests(str(ALERTS))))
    fired = subprocess.run([tool, "test", "rules", str(cases)], capture_output=True, text=True, timeout=60)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    # Every panel's query is valid PromQL: each made a recording rule that promtool parses.
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    recording = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{n}", "expr": expr}
                                                            for n, expr in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(recording))
    parsed = subprocess.run([tool, "check", "rules", str(tmp_path / "dashboard.yaml")], capture_output=True, text=True,
                            timeout=60)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
