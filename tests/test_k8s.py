"""The Kubernetes manifests (k8s/): every kustomization renders, every object matches the
schemas of one pinned Kubernetes version, every YAML file passes yamllint, and what
k8s/README.md promises holds in the rendered objects (patches and components change the
source files, so the checks read what `kubectl apply -k` would send).

checkov is slow and has its own environment: `make check-infra` runs it on the same
rendered output. Nothing here needs a cluster or the network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
BIN = Path(sys.executable).parent
INSTALL = "pip install -e '.[test]'"

# Every schema check is against this one version; the namespace's PSA enforce-version follows it.
# The one Kubernetes version the manifests are validated against: the Makefile's, which
# `make check-infra` uses too.
KUBERNETES_VERSION = re.search(r"^K8S_VERSION \?= (\S+)$", (Path(__file__).resolve().parent.parent / "Makefile").read_text(), re.M)[1]
TARGETS = ["base"] + sorted(f"overlays/{p.name}" for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
EXAMPLES = sorted(K8S.rglob("*.example.yaml"))
PLACEHOLDER = "REPLACE_ME"
NAMESPACE = "taletune"
METADATA_SERVICE = ipaddress.ip_address("169.254.169.254")
CLUSTER_SCOPED = {"Namespace", "Profile", "PriorityClass", "ClusterRole", "ClusterRoleBinding"}
POD_TEMPLATES = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
UNITS = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to this Python ({INSTALL})")
    return str(path)


def kustomize(directory: Path) -> list[dict]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def quantity(value) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match and match[2] in UNITS, f"not a quantity: {value!r}"
    return float(match[1]) * UNITS[match[2]]


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict]):
    for obj in objects:
        if obj["kind"] in POD_TEMPLATES:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]
        elif obj["kind"] == "Pod":
            yield f"Pod/{obj['metadata']['name']}", obj


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {target: kustomize(K8S / target) for target in TARGETS}


@pytest.fixture(scope="module")
def kv():
    return pytest.importorskip("kubernetes_validate.utils", reason=f"kubernetes-validate is not installed ({INSTALL})")


def schema_errors(kv, obj: dict) -> str | None:
    """Why `obj` fails the pinned version's strict schema, or None. A kind without a schema
    (a custom resource) is an error here: the kubernetes-validate CLI only warns about one
    and passes, which would let a typo in a CRD object through."""
    try:
        kv.validate(obj, KUBERNETES_VERSION, strict=True)
    except kv.SchemaNotFoundError as e:
        return e.message
    except kv.ValidationError as e:
        return f"{'.'.join(map(str, e.path))}: {e.message}"
    return None


def test_overlays_exist():
    assert {"overlays/kind", "overlays/cloud"} <= set(TARGETS)


def test_every_rendered_object_matches_the_pinned_schemas(rendered, kv):
    failures = [f"{target}: {o['kind']}/{o['metadata']['name']}: {error}"
                for target, objects in rendered.items() for o in objects if (error := schema_errors(kv, o))]
    assert not failures, "\n".join(failures)


def test_example_files_match_the_pinned_schemas(kv):
    assert {p.name for p in EXAMPLES} >= {"s3-secret.example.yaml", "hf-token-secret.example.yaml", "owner.example.yaml"}
    failures = [f"{p.relative_to(ROOT)}: {error}" for p in EXAMPLES for o in load(p) if (error := schema_errors(kv, o))]
    assert not failures, "\n".join(failures)


def test_yamllint_passes_on_every_file_under_k8s():
    result = subprocess.run([tool("yamllint"), "--strict", "-c", str(K8S / ".yamllint"), str(K8S)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_namespaced_objects_live_in_taletune(rendered):
    for target, objects in rendered.items():
        for o in objects:
            expected = None if o["kind"] in CLUSTER_SCOPED else NAMESPACE
            assert o["metadata"].get("namespace") == expected, f"{target}: {o['kind']}/{o['metadata']['name']}"
        assert one(objects, "Namespace")["metadata"]["name"] == NAMESPACE


def test_pod_security_enforces_baseline_and_warns_and_audits_restricted(rendered):
    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    for target, objects in rendered.items():
        labels = one(objects, "Namespace", NAMESPACE)["metadata"]["labels"]
        prefix = "pod-security.kubernetes.io/"
        assert labels[prefix + "enforce"] == "baseline", target
        assert labels[prefix + "enforce-version"] == f"v{minor}", target
        assert labels[prefix + "warn"] == "restricted", target
        assert labels[prefix + "audit"] == "restricted", target


def test_default_service_account_gets_no_token(rendered):
    for target, objects in rendered.items():
        assert one(objects, "ServiceAccount", "default")["automountServiceAccountToken"] is False, target


def test_ingress_is_denied_except_from_kubeflow_and_this_namespace(rendered):
    for target, objects in rendered.items():
        policies = find(objects, "NetworkPolicy")
        deny = [p for p in policies if p["spec"]["podSelector"] == {} and "Ingress" in p["spec"]["policyTypes"]]
        assert deny and all(not p["spec"].get("ingress") for p in deny), f"{target}: no deny-all ingress policy"
        for p in policies:
            for rule in p["spec"].get("ingress", []):
                # A rule without `from` admits every source; an ipBlock admits outside ones.
                assert rule.get("from"), f"{target}: {p['metadata']['name']} admits every source"
                for peer in rule["from"]:
                    namespaces = peer.get("namespaceSelector")
                    same_namespace = "podSelector" in peer and namespaces is None and "ipBlock" not in peer
                    from_kubeflow = namespaces == {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}
                    assert same_namespace or from_kubeflow, f"{target}: {p['metadata']['name']} admits {peer}"
        kfp_ui = one(objects, "NetworkPolicy", "allow-kfp-ui")["spec"]
        assert "ml-pipeline-ui-artifact" in kfp_ui["podSelector"]["matchExpressions"][0]["values"]
        assert {"port": 3000, "protocol": "TCP"} in kfp_ui["ingress"][0]["ports"]


def test_egress_is_open_except_the_cloud_metadata_service(rendered):
    for target, objects in rendered.items():
        egress = [p for p in find(objects, "NetworkPolicy") if "Egress" in p["spec"]["policyTypes"]]
        assert any(p["spec"]["podSelector"] == {} for p in egress), f"{target}: no egress policy for every pod"
        # Policies add up: one rule anywhere that reaches the metadata address opens it to the pods it selects.
        external = False
        for p in egress:
            for rule in p["spec"].get("egress", []):
                assert rule.get("to"), f"{target}: {p['metadata']['name']} allows egress to everything"
                for peer in rule["to"]:
                    if "ipBlock" not in peer:
                        assert set(peer) <= {"namespaceSelector", "podSelector"}, peer
                        continue
                    block = peer["ipBlock"]
                    cidr = ipaddress.ip_network(block["cidr"])
                    excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                    assert all(e.subnet_of(cidr) for e in excepted), f"{target}: except outside {cidr}"
                    if cidr.version == 4:
                        external |= cidr.prefixlen == 0
                        if METADATA_SERVICE in cidr:
                            assert any(METADATA_SERVICE in e for e in excepted), f"{target}: {cidr} reaches {METADATA_SERVICE}"
        assert external, f"{target}: the tasks cannot reach the internet (gutenberg.org, the model hub)"


def test_limitrange_gives_every_container_cpu_memory_and_ephemeral_storage(rendered):
    for target, objects in rendered.items():
        (limits,) = [lim for lim in one(objects, "LimitRange")["spec"]["limits"] if lim["type"] == "Container"]
        for resource in ("cpu", "memory", "ephemeral-storage"):
            request, limit = limits["defaultRequest"][resource], limits["default"][resource]
            assert quantity(request) <= quantity(limit), f"{target}: {resource} {request} > {limit}"


def test_quotas_count_only_what_the_limitrange_fills_in(rendered):
    """A quota on requests.X rejects every pod that does not request X; KFP's own containers
    request no ephemeral-storage, so the LimitRange must default whatever a quota counts."""
    for target, objects in rendered.items():
        defaults = [lim for lim in one(objects, "LimitRange")["spec"]["limits"] if lim["type"] == "Container"][0]
        quotas = find(objects, "ResourceQuota")
        assert quotas, target
        for quota in quotas:
            for key in quota["spec"]["hard"]:
                resource = key.removeprefix("requests.").removeprefix("limits.")
                if resource in ("cpu", "memory", "ephemeral-storage"):
                    side = "defaultRequest" if key.startswith("requests.") else "default"
                    assert resource in defaults[side], f"{target}: quota {key} without a LimitRange {side}"


def test_cloud_overlay_counts_gpus(rendered):
    hard = {k: v for q in find(rendered["overlays/cloud"], "ResourceQuota") for k, v in q["spec"]["hard"].items()}
    assert quantity(hard["requests.nvidia.com/gpu"]) >= 1
    for target in set(TARGETS) - {"overlays/cloud"}:
        assert not any("nvidia.com/gpu" in k for q in find(rendered[target], "ResourceQuota") for k in q["spec"]["hard"])


def test_every_container_is_hardened_and_sized(rendered):
    seen = 0
    for target, objects in rendered.items():
        for where, template in pod_specs(objects):
            spec, seen = template["spec"], seen + 1
            pod = spec.get("securityContext", {})
            assert spec.get("automountServiceAccountToken") is False, f"{target} {where}"
            assert spec.get("serviceAccountName", "default") != "default", f"{target} {where}"
            assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{target} {where}"
            for c in spec.get("initContainers", []) + spec["containers"]:
                name = f"{target} {where} {c['name']}"
                sc = c.get("securityContext", {})
                assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
                assert sc.get("runAsUser", pod.get("runAsUser")) not in (0, None), name
                assert sc.get("allowPrivilegeEscalation") is False, name
                assert sc.get("readOnlyRootFilesystem") is True, name
                assert sc.get("capabilities") == {"drop": ["ALL"]}, name
                assert not sc.get("privileged"), name
                requests, limits = c["resources"]["requests"], c["resources"]["limits"]
                assert set(requests) == set(limits) == {"cpu", "memory", "ephemeral-storage"}, name
                assert all(quantity(requests[r]) == quantity(limits[r]) for r in requests), name
                assert re.fullmatch(r"[^@\s]+:[^@:/\s]+@sha256:[0-9a-f]{64}", c["image"]), f"{name}: {c['image']}"
                assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in c.get("env", [])), \
                    f"{name}: a secret in an environment variable"
    assert seen, "no pod template was checked"


def test_minio_serves_s3_with_probes_from_the_example_secret(rendered):
    objects = rendered["overlays/kind"]
    deployment = one(objects, "Deployment", "taletune-minio")
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    credentials = next(name for name, v in volumes.items() if v.get("secret", {}).get("secretName") == "taletune-s3")
    assert env["MINIO_ROOT_USER_FILE"] == f"{mounts[credentials]}/AWS_ACCESS_KEY_ID"
    assert env["MINIO_ROOT_PASSWORD_FILE"] == f"{mounts[credentials]}/AWS_SECRET_ACCESS_KEY"
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    claim = volumes[next(n for n, p in mounts.items() if p == "/data")]["persistentVolumeClaim"]["claimName"]
    one(objects, "PersistentVolumeClaim", claim)

    # The Service, the example Secret's endpoint and the NetworkPolicy all point at this pod's S3 port.
    service = one(objects, "Service", "taletune-minio")
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in [p["name"] for p in container["ports"]]
    secret = one(load(K8S / "s3-secret.example.yaml"), "Secret")
    endpoint = urlsplit(secret["stringData"]["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == f"taletune-minio.{NAMESPACE}.svc.cluster.local" and endpoint.port == port["port"]
    policy = one(objects, "NetworkPolicy", "allow-minio-s3")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert policy["ingress"][0]["ports"] == [{"port": 9000, "protocol": "TCP"}] == [
        {"port": p["containerPort"], "protocol": "TCP"} for p in container["ports"] if p["name"] == port["targetPort"]]


def test_bucket_job_creates_a_versioned_bucket_with_the_lifecycle(rendered):
    objects = rendered["overlays/kind"]
    job = one(objects, "Job", "taletune-minio-bucket")
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    script = "\n".join(container["command"] + container["args"])
    assert "mc mb --ignore-existing taletune/taletune" in script
    assert "mc version enable taletune/taletune" in script
    assert "http://taletune-minio:9000" in script
    import_line = re.search(r"mc ilm rule import taletune/taletune < (\S+)/(\S+)", script)
    assert import_line, script
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == import_line[1])
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = one(objects, "ConfigMap", volume["configMap"]["name"])
    lifecycle = json.loads(config_map["data"][import_line[2]])
    (rule,) = lifecycle["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}, "the rule covers the whole bucket"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert 1 <= rule["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 90
    # MinIO drops AbortIncompleteMultipartUpload: its server setting does that job.
    (minio,) = one(objects, "Deployment", "taletune-minio")["spec"]["template"]["spec"]["containers"]
    assert {"name": "MINIO_API_STALE_UPLOADS_EXPIRY", "value": "24h"} in minio["env"]
    assert job["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] > 0


def test_minio_is_only_in_the_kind_overlay(rendered):
    for target, objects in rendered.items():
        assert bool(find(objects, "Deployment", "taletune-minio")) == (target == "overlays/kind"), target


def test_example_secrets_hold_only_placeholders():
    expected = {
        "taletune-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"},
        "taletune-hf-token": {"HF_TOKEN"},
    }
    secrets = {o["metadata"]["name"]: o for p in K8S.glob("*.example.yaml") for o in load(p) if o["kind"] == "Secret"}
    assert set(secrets) == set(expected)
    for name, secret in secrets.items():
        assert secret["metadata"]["namespace"] == NAMESPACE
        # stringData only: base64 `data` would hide what is committed from a reviewer.
        assert "data" not in secret and set(secret["stringData"]) == expected[name], name
        for key, value in secret["stringData"].items():
            if key == "AWS_ENDPOINT_URL":  # not a secret, but must carry none either
                url = urlsplit(value)
                assert url.scheme in ("http", "https") and not url.username and not url.password, value
            else:
                assert value == PLACEHOLDER, f"{name}.{key} holds something other than {PLACEHOLDER}"


def test_code_points_at_the_example_secret_that_exists():
    mentions = [p for d in ("pipelines", "components") for p in (ROOT / d).rglob("*.py")
                if "k8s/s3-secret.example.yaml" in p.read_text(errors="replace")]
    assert mentions, "the code's messages name k8s/s3-secret.example.yaml"
    assert (K8S / "s3-secret.example.yaml").is_file()


def profile_schema(kv) -> tuple[dict, object]:
    """A strict schema for kubeflow.org/v1 Profile (no Kubernetes release ships it): its
    spec as the CRD defines it, built from the pinned version's own definitions of
    ObjectMeta, rbac/v1 Subject (the owner) and ResourceQuotaSpec."""
    from referencing import Registry, Resource

    version = f"v{KUBERNETES_VERSION}-local-strict"
    definitions = kv.schema_contents(f"kubernetes-json-schema/{version}/_definitions.json", KUBERNETES_VERSION)

    def ref(name):
        return {"$ref": f"/api/_definitions.json#/$defs/{name}"}

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/profile/v1",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kubeflow.org/v1"},
            "kind": {"const": "Profile"},
            "metadata": ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["owner"],
                "properties": {
                    "owner": ref("io.k8s.api.rbac.v1.Subject"),
                    "resourceQuotaSpec": ref("io.k8s.api.core.v1.ResourceQuotaSpec"),
                    "plugins": {"type": "array", "items": {"type": "object", "required": ["kind"]}},
                },
            },
        },
    }
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return schema, registry


def test_profile_component_owns_the_namespace_with_the_owner_given(kv, tmp_path):
    import jsonschema

    owner = tmp_path / "owner.yaml"
    owner.write_text((K8S / "components/kubeflow-profile/owner.example.yaml").read_text().replace(
        f"{PLACEHOLDER}@example.com", "ada@example.com"))
    rel = os.path.relpath(K8S, tmp_path)  # kustomize takes no absolute paths
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": [f"{rel}/overlays/cloud", "owner.yaml"], "components": [f"{rel}/components/kubeflow-profile"]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = kustomize(tmp_path)

    profile = one(objects, "Profile", NAMESPACE)
    schema, registry = profile_schema(kv)
    jsonschema.Draft202012Validator(schema, registry=registry).validate(profile)
    assert profile["spec"]["owner"] == {"kind": "User", "name": "ada@example.com"}
    assert "namespace" not in profile["metadata"], "a Profile is cluster-scoped"
    # The profile controller adopts an existing namespace only when this annotation names the owner.
    assert one(objects, "Namespace", NAMESPACE)["metadata"]["annotations"]["owner"] == "ada@example.com"
    assert not find(objects, "ConfigMap", "taletune-profile-owner"), "the owner ConfigMap is build-time only"
    assert not [o for o in objects if o["kind"] != "Profile" and schema_errors(kv, o)]

    # Without the owner, the build fails rather than send a profile with a placeholder owner.
    kustomization["resources"].remove("owner.yaml")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run([tool("kubectl"), "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "taletune-profile-owner" in result.stderr
