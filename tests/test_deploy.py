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
