"""What the rendered chart promises: the restricted pod security profile, network
paths allowed only where the architecture draws them, probes, hooks, secrets by
reference. Each runs on the default and on the production-like values."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from deploy_helpers import CHART, DEPLOY, VALUES_FILES, load_values, of_kind, pod_specs, render

SERVICES = {
    "accounts": 50051, "payments": 50052, "risk": 50053, "webhooks": 50054, "gateway": 8000,
}  # fmt: skip
# The allowed calls between paymesh pods (caller, callee): nothing else.
ALLOWED_CALLS = {
    ("gateway", "accounts"), ("gateway", "payments"), ("gateway", "risk"), ("gateway", "webhooks"),
    ("payments", "accounts"), ("payments", "risk"),
}  # fmt: skip
GATEWAY_PORT = 8000
# Every pod's admin listener: /metrics, /healthz, /readyz.
ADMIN_PORT = 9100
# What a webhook must never reach, whatever a merchant's URL resolves to.
FORBIDDEN_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
        "127.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10",
    )
]  # fmt: skip
RISK_RULES_FILE = "/etc/paymesh-risk/risk-rules.yaml"

Objects = list[dict[str, Any]]


@pytest.fixture(scope="module", params=sorted(VALUES_FILES))
def manifests(request: pytest.FixtureRequest) -> Objects:
    """The chart rendered with each values file."""
    return render(load_values(request.param))


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def by_component(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {component(o): o for o in of_kind(objects, kind)}


def test_every_container_runs_under_the_restricted_profile(manifests: Objects) -> None:
    specs = pod_specs(manifests)
    assert len(specs) == 6  # five services and the migration Job
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        assert "hostNetwork" not in spec, name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] != 0, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"], where


def test_writable_paths_are_empty_dirs(manifests: Objects) -> None:
    for name, spec in pod_specs(manifests):
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for path in ("/tmp", "/var/lib/paymesh"):
            assert "emptyDir" in volumes[mounts[path]["name"]], (name, path)
        env = {e["name"]: e for e in container["env"]}
        assert env["PAYMESH_VAR_DIR"]["value"] == "/var/lib/paymesh", name
        for path, mount in mounts.items():
            if path not in ("/tmp", "/var/lib/paymesh"):
                assert mount.get("readOnly") is True, (name, path)


def test_each_service_has_a_deployment_service_pdb_and_probes(manifests: Objects) -> None:
    deployments = by_component(manifests, "Deployment")
    services = by_component(manifests, "Service")
    pdbs = by_component(manifests, "PodDisruptionBudget")
    assert set(deployments) == set(services) == set(pdbs) == set(SERVICES)
    for name, port in SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["paymesh", "serve", name]
        # The probes ask the admin listener: alive, and ready (database, Kafka, Redis).
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        for probe in ("readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"] == {"path": "/readyz", "port": "metrics"}, probe
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == ADMIN_PORT
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] == f"0.0.0.0:{ADMIN_PORT}"
        svc = services[name]["spec"]
        assert svc["ports"][0]["port"] == port
        (metrics,) = [p for p in svc["ports"] if p["name"] == "metrics"]
        assert (metrics["port"], metrics["targetPort"]) == (ADMIN_PORT, "metrics")
        # gRPC clients balance over pods themselves: headless Services.
        assert (svc.get("clusterIP") == "None") is (name != "gateway"), name


def test_grpc_targets_are_dns_round_robin_over_headless_services(manifests: Objects) -> None:
    deployments = by_component(manifests, "Deployment")
    services = {component(s): s["metadata"]["name"] for s in of_kind(manifests, "Service")}
    for caller, callee in ALLOWED_CALLS:
        (container,) = deployments[caller]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        target = env[f"PAYMESH_{callee.upper()}__TARGET"]
        assert target.startswith(f"dns:///{services[callee]}.paymesh.svc."), target
        assert target.endswith(f":{SERVICES[callee]}"), target


def test_secrets_are_referenced_never_embedded(manifests: Objects) -> None:
    assert of_kind(manifests, "Secret") == []
    for name, spec in pod_specs(manifests):
        (container,) = spec["containers"]
        env = {var["name"]: var for var in container["env"]}
        # Least privilege: only the gateway, which signs tokens, gets its secret;
        # only webhooks, which seals the endpoints' signing secrets, gets its own.
        assert ("PAYMESH_GATEWAY__SECRET_KEY" in env) == name.endswith("gateway"), name
        assert ("PAYMESH_WEBHOOKS__SECRET_KEY" in env) == name.endswith("webhooks"), name
        for var in env.values():
            if var["name"].endswith(("__DATABASE_URL", "__SECRET_KEY")):
                assert "value" not in var, (name, var)
                assert var["valueFrom"]["secretKeyRef"]["name"], (name, var)


def test_settings_and_risk_rules_come_from_a_mounted_config_map(manifests: Objects) -> None:
    import yaml

    (config_map,) = [c for c in of_kind(manifests, "ConfigMap") if "config.yaml" in c["data"]]
    settings = yaml.safe_load(config_map["data"]["config.yaml"])
    assert settings["environment"] == "production"
    assert settings["risk"]["amount_limits"]["USD"] > 0
    for name, deployment in by_component(manifests, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PAYMESH_CONFIG_FILE"] == "/etc/paymesh/config.yaml", name
        volumes = {v["name"]: v for v in spec["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/paymesh"]
        # A whole-directory mount (no subPath), so edits reach running pods.
        assert "subPath" not in mount, name
        assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]


def test_the_migration_job_runs_before_install_and_upgrade(manifests: Objects) -> None:
    (job,) = of_kind(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["paymesh", "migrate"]
    env = {e["name"] for e in container["env"]}
    assert {f"PAYMESH_{s.upper()}__DATABASE_URL" for s in SERVICES} <= env


def test_autoscaling_replaces_fixed_replicas(manifests: Objects) -> None:
    hpas = by_component(manifests, "HorizontalPodAutoscaler")
    for name, deployment in by_component(manifests, "Deployment").items():
        assert (name in hpas) is ("replicas" not in deployment["spec"]), name
        if name in hpas:
            target = hpas[name]["spec"]["scaleTargetRef"]
            assert target["name"] == deployment["metadata"]["name"]


# --- network policies --------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # no matchExpressions in this chart
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(objects: Objects) -> dict[str, dict[str, str]]:
    """component -> the labels of its pods (services and the migration Job)."""
    return {
        component(o): o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in {"Deployment", "Job"}
    }


def policies_for(objects: Objects, labels: dict[str, str]) -> list[dict[str, Any]]:
    specs = [p["spec"] for p in of_kind(objects, "NetworkPolicy")]
    return [s for s in specs if selects(s["podSelector"], labels)]


def allows(rules: list[dict[str, Any]], direction: str, peer: dict[str, str], port: int) -> bool:
    """Whether any rule lets the pod labelled `peer` through on `port`."""
    for rule in rules:
        if not any(p["port"] == port for p in rule.get("ports", [])):
            continue
        peers = rule.get(direction)
        if peers is None:
            return True  # any address
        for p in peers:
            # A pod of this release: a podSelector alone (same namespace).
            same_namespace = "namespaceSelector" not in p and "ipBlock" not in p
            if same_namespace and "podSelector" in p and selects(p["podSelector"], peer):
                return True
    return False


def test_a_default_deny_policy_covers_every_pod(manifests: Objects) -> None:
    deny = [
        p["spec"]
        for p in of_kind(manifests, "NetworkPolicy")
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"
    for name, labels in pod_labels(manifests).items():
        assert any(selects(d["podSelector"], labels) for d in deny), name
        for spec in policies_for(manifests, labels):
            assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, name


def test_pods_talk_to_each_other_only_along_the_allowed_paths(manifests: Objects) -> None:
    labels = pod_labels(manifests)
    grpc = {n: p for n, p in SERVICES.items() if n != "gateway"}
    allowed = set()
    for caller in labels:
        for callee, port in grpc.items():
            out = [r for s in policies_for(manifests, labels[caller]) for r in s.get("egress", [])]
            inn = [r for s in policies_for(manifests, labels[callee]) for r in s.get("ingress", [])]
            if allows(out, "to", labels[callee], port) and allows(
                inn, "from", labels[caller], port
            ):
                allowed.add((caller, callee))
    assert allowed == ALLOWED_CALLS


def test_only_the_gateway_port_is_open_to_the_outside(manifests: Objects) -> None:
    values = manifests
    outsider = {"app.kubernetes.io/name": "somebody-else"}
    for name, pod in pod_labels(values).items():
        rules = [r for s in policies_for(values, pod) for r in s.get("ingress", [])]
        ports = {p["port"] for r in rules for p in r.get("ports", [])}
        assert not allows(rules, "from", outsider, ADMIN_PORT), name
        if name == "gateway":
            assert ports == {GATEWAY_PORT, ADMIN_PORT}
        else:
            assert not any(allows(rules, "from", outsider, p) for p in SERVICES.values()), name
            assert GATEWAY_PORT not in ports, name


def test_prometheus_alone_may_scrape_the_admin_port_of_every_service(manifests: Objects) -> None:
    for name, pod in pod_labels(manifests).items():
        if name == "migrate":
            continue
        rules = [r for s in policies_for(manifests, pod) for r in s.get("ingress", [])]
        admin = [r for r in rules if any(p["port"] == ADMIN_PORT for p in r["ports"])]
        assert len(admin) == 1, name
        assert [p["port"] for p in admin[0]["ports"]] == [ADMIN_PORT]
        (peer,) = admin[0]["from"]  # never "any source"
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        assert namespace == "monitoring", name


def test_without_scrapers_named_nobody_may_reach_the_admin_port() -> None:
    objects = render({"networkPolicy": {"metricsFrom": []}})
    for name, pod in pod_labels(objects).items():
        rules = [r for s in policies_for(objects, pod) for r in s.get("ingress", [])]
        assert not any(p["port"] == ADMIN_PORT for r in rules for p in r["ports"]), name


def test_egress_is_dns_and_the_datastores_each_service_needs(manifests: Objects) -> None:
    needs = {
        "accounts": {53, 5432, 9092}, "payments": {53, 5432, 9092, 50051, 50053},
        "risk": {53, 5432, 9092, 6379}, "webhooks": {53, 5432, 9092, 443},
        "gateway": {53, 5432, 9092, 6379, 50051, 50052, 50053, 50054},
        "migrate": {53, 5432},
    }  # fmt: skip
    for name, pod in pod_labels(manifests).items():
        rules = [r for s in policies_for(manifests, pod) for r in s.get("egress", [])]
        ports = {p["port"] for r in rules for p in r["ports"]}
        assert ports == needs[name], name
        assert all(r.get("ports") for r in rules), name  # never "any port"


def test_the_gateway_keeps_its_rate_limit_buckets_in_the_shared_redis(
    manifests: Objects,
) -> None:
    for name, spec in pod_specs(manifests):
        (container,) = spec["containers"]
        names = {var["name"] for var in container.get("env", [])}
        assert ("PAYMESH_GATEWAY__REDIS_URL" in names) == name.endswith("gateway"), name


def test_webhooks_reach_merchants_only_on_https_to_public_addresses(manifests: Objects) -> None:
    labels = pod_labels(manifests)
    for name, pod in labels.items():
        rules = [r for s in policies_for(manifests, pod) for r in s.get("egress", [])]
        to_blocks = [r for r in rules if any("ipBlock" in p for p in r.get("to", []))]
        if name != "webhooks":
            # Only webhooks may reach arbitrary addresses by IP block (production
            # pins the databases by ipBlock: those rules carry their own ports).
            assert all({p["port"] for p in r["ports"]} <= {5432} for r in to_blocks), name
            continue
        (https,) = [r for r in rules if {p["port"] for p in r["ports"]} == {443}]
        assert all(p["protocol"] == "TCP" for p in https["ports"])
        blocks = [p["ipBlock"] for p in https["to"]]
        assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}
        for block in blocks:
            whole = ipaddress.ip_network(block["cidr"])
            excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
            for forbidden in FORBIDDEN_NETWORKS:
                if forbidden.version != whole.version:
                    continue
                covered = any(forbidden.subnet_of(e) for e in excepted)  # type: ignore[arg-type]
                assert covered, (forbidden, block)
        # Public addresses stay reachable (a merchant at 93.184.216.34, 2606:2800::1).
        for public in ("93.184.216.34", "2606:2800:220:1::1"):
            ip = ipaddress.ip_address(public)
            assert any(
                ip in ipaddress.ip_network(b["cidr"])
                and not any(ip in ipaddress.ip_network(e) for e in b.get("except", []))
                for b in blocks
            ), public


def test_only_the_gateway_may_call_webhooks(manifests: Objects) -> None:
    labels = pod_labels(manifests)
    rules = [r for s in policies_for(manifests, labels["webhooks"]) for r in s.get("ingress", [])]
    callers = {name for name, pod in labels.items() if allows(rules, "from", pod, 50054)}
    assert callers == {"gateway"}


def test_risk_reads_its_rules_from_a_mounted_config_map_and_counts_in_redis(
    manifests: Objects,
) -> None:
    from paymesh.risk.rules import parse_rules

    deployments = by_component(manifests, "Deployment")
    spec = deployments["risk"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PAYMESH_RISK__RULES_FILE"] == RISK_RULES_FILE
    assert env["PAYMESH_RISK__REDIS_URL"].startswith("redis://")
    directory, _, filename = RISK_RULES_FILE.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    # A directory mount (no subPath): Kubernetes then updates the file in place.
    assert "subPath" not in mount
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    maps = {c["metadata"]["name"]: c for c in of_kind(manifests, "ConfigMap")}
    rules_map = maps[volumes[mount["name"]]["configMap"]["name"]]
    # What risk will load is a valid rule set (the parser risk itself uses).
    rule_set = parse_rules(rules_map["data"][filename].encode())
    assert rule_set.rules
    # Nobody else gets the rules or risk's Redis.
    for name, deployment in deployments.items():
        if name == "risk":
            continue
        (other,) = deployment["spec"]["template"]["spec"]["containers"]
        names = {e["name"] for e in other["env"]}
        assert not names & {"PAYMESH_RISK__RULES_FILE", "PAYMESH_RISK__REDIS_URL"}, name
        assert all(m["mountPath"] != directory for m in other["volumeMounts"]), name


def test_the_webhooks_service_is_deployed_like_the_others(manifests: Objects) -> None:
    deployments = by_component(manifests, "Deployment")
    spec = deployments["webhooks"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["paymesh", "serve", "webhooks"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["PAYMESH_WEBHOOKS__LISTEN"]["value"] == "0.0.0.0:50054"
    assert "PAYMESH_KAFKA__BOOTSTRAP_SERVERS" in env  # it consumes the public events
    # Never the development escape hatch of the SSRF guard.
    assert "PAYMESH_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES" not in env
    (job,) = of_kind(manifests, "Job")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert "PAYMESH_WEBHOOKS__DATABASE_URL" in {e["name"] for e in migrate["env"]}


def test_the_charts_default_risk_rules_are_the_documented_example() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["risk"]["rules"] == (DEPLOY / "risk-rules.yaml").read_text()


# Its module-scoped fixture (a platform, a rendered chart, a browser) is made once, on one
# worker (`make test` runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_deploy_chart")
