"""The deployment artefacts pass their linters and schemas, offline."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_helpers import CHART, DEPLOY, REPO, VALUES_FILES, load_values, render, tool

KUBERNETES_VERSION = "1.30.0"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_yaml_file_under_deploy_passes_yamllint() -> None:
    # From deploy/: the config's ignore patterns are relative to it.
    result = run(tool("yamllint"), "--strict", "-c", ".yamllint", ".", cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


def compose_config(*extra: str) -> dict[str, Any]:
    result = run(
        tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"), *extra,
        "config", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_file_is_valid_and_starts_in_order() -> None:
    services = compose_config("--profile", "tools")["services"]
    assert {"postgres", "kafka", "redis", "migrate", "bootstrap"} <= set(services)
    for name in ("accounts", "payments", "risk", "webhooks", "gateway"):
        svc = services[name]
        assert svc["command"] == ["paymesh", "serve", name]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["healthcheck"]["test"] == ["CMD", "paymesh", "health", name]
        # The admin listener (/metrics, /readyz the healthcheck asks) on every interface.
        assert svc["environment"][f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] == "0.0.0.0:9100"
        assert [str(port) for port in svc["expose"]] == ["9100"]
        assert svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        assert svc["user"] == "10001:10001"
    assert services["migrate"]["command"] == ["paymesh", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for callee in ("accounts", "risk"):
        assert services["payments"]["depends_on"][callee]["condition"] == "service_healthy"
    for callee in ("accounts", "payments", "risk", "webhooks"):
        assert services["gateway"]["depends_on"][callee]["condition"] == "service_healthy"
    for infra in ("postgres", "kafka", "redis"):
        assert services[infra]["healthcheck"]["test"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_gives_each_service_its_own_database() -> None:
    services = compose_config()["services"]
    urls = {
        name: services[name]["environment"][f"PAYMESH_{name.upper()}__DATABASE_URL"]
        for name in ("accounts", "payments", "risk", "webhooks", "gateway")
    }
    assert len({url.rsplit("/", 1)[1] for url in urls.values()}) == 5
    init = (DEPLOY / "compose" / "postgres-init.sql").read_text()
    for url in urls.values():
        assert f"CREATE DATABASE {url.rsplit('/', 1)[1]} " in init


def test_compose_gives_risk_its_rules_file_and_redis() -> None:
    risk = compose_config()["services"]["risk"]
    env = risk["environment"]
    assert env["PAYMESH_RISK__REDIS_URL"].startswith("redis://redis:6379/")
    mounted = {c["target"]: c["source"] for c in risk["configs"]}
    assert mounted[env["PAYMESH_RISK__RULES_FILE"]] == "risk-rules"
    assert mounted[risk["environment"]["PAYMESH_CONFIG_FILE"]] == "paymesh-config"


def test_compose_keeps_the_webhooks_ssrf_guard_on_and_its_secret_to_itself() -> None:
    services = compose_config()["services"]
    env = services["webhooks"]["environment"]
    assert env["PAYMESH_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES"] == "false"
    for name, svc in services.items():
        has_secret = "PAYMESH_WEBHOOKS__SECRET_KEY" in (svc.get("environment") or {})
        assert has_secret is (name == "webhooks"), name


@pytest.mark.parametrize("values_name", sorted(VALUES_FILES))
def test_chart_passes_helm_lint_strictly(values_name: str) -> None:
    import helm_python as helm

    report = helm.lint(
        CHART, load_values(values_name), strict=True, namespace="paymesh",
        kube_version=f"v{KUBERNETES_VERSION}",
    )  # fmt: skip
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, report
    assert not report["errors"], report


@pytest.mark.parametrize("values_name", sorted(VALUES_FILES))
def test_every_rendered_object_matches_the_kubernetes_schema_strictly(values_name: str) -> None:
    objects = render(load_values(values_name))
    assert len(objects) > 15
    for obj in objects:
        for version in (KUBERNETES_VERSION, kubernetes_validate.latest_version()):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {exc}")


def test_chart_refuses_to_render_without_the_database_secret() -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError, match=r"database\.existingSecret"):
        render({"database": {"existingSecret": ""}})


def test_the_image_installs_the_runtime_lock_with_hashes_then_paymesh_alone() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"COPY [^\n]*\brequirements\.lock\b", dockerfile)
    install = re.search(
        r"pip install --require-hashes -r requirements\.lock \\\n"
        r"\s*--report /var/tmp/pip-report\.json \\\n"  # what the Python SBOM's hashes come from
        r"\s*&& \S+pip install --no-deps \. ",
        dockerfile,
    )
    assert install, "the build stage installs the lock with hashes, then paymesh with --no-deps"
    # The third: cyclonedx-bom, from the dev lock with hashes, into the SBOM tools' own venv.
    assert len(re.findall(r"pip install", dockerfile)) == 3
    assert "/sbom-tool/venv/bin/pip install --require-hashes -r" in dockerfile
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!requirements.lock" in ignore
    # The dev lock and the SBOM tools enter the build stage only: the final stage takes
    # from it the venv and the SBOMs, nothing else.
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert re.findall(r"COPY --from=\S+ \S+", runtime) == [
        "COPY --from=build /opt/paymesh",
        "COPY --from=build /sbom/",
    ]
    assert "requirements-dev.lock" not in runtime
    # One chain of stages (build, runtime): a stage built on another stage's image made
    # podman's build with --layers=false exit 125 after tagging (f71f3c9, reverted).
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


WORKFLOWS = REPO / ".github" / "workflows"


def test_workflows_pass_the_github_workflow_schema() -> None:
    # GitHub's workflow schema, as check-jsonschema ships it, offline; actionlint runs in
    # test_workflow_lint.py (docs/release.md, "Checking the workflow").
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def release_workflow() -> dict[str, Any]:
    import yaml

    workflow: dict[str, Any] = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    return workflow


def make_targets(job: dict[str, Any]) -> list[str]:
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    return re.findall(r"\$SUDO_MAKE (\w+)", scripts)


def step_index(job: dict[str, Any], needle: str) -> int:
    """The index of the one step whose `uses` or `run` contains needle."""
    found = [i for i, s in enumerate(job["steps"]) if needle in s.get("uses", s.get("run", ""))]
    assert len(found) == 1, (needle, found)
    return found[0]


def test_the_release_workflow_checks_first_then_publishes_with_make_targets_that_exist() -> None:
    workflow = release_workflow()
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    check, publish = workflow["jobs"]["check"], workflow["jobs"]["publish"]
    assert set(workflow["jobs"]) == {"check", "publish"}
    assert publish["needs"] == ["check"]
    assert make_targets(check) == ["install", "lint", "test", "lock", "audit"]
    assert make_targets(publish) == ["install", "sbom"]  # sbom builds the image first
    makefile = (REPO / "Makefile").read_text()
    for target in make_targets(check) + make_targets(publish):
        assert re.search(rf"(?m)^{target}:", makefile), target
    scripts = "\n".join(step.get("run", "") for step in check["steps"])
    assert "git diff --exit-code -- requirements.lock requirements-dev.lock" in scripts


def test_the_release_workflow_asks_for_the_least_permissions() -> None:
    workflow = release_workflow()
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["check"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["publish"]["permissions"] == {
        "contents": "read", "packages": "write", "id-token": "write", "attestations": "write",
    }  # fmt: skip
    text = (WORKFLOWS / "release.yml").read_text()
    assert set(re.findall(r"secrets\.(\w+)", text)) == {
        "GITHUB_TOKEN", "COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD",
    }  # fmt: skip


def test_every_action_of_the_release_workflow_is_pinned_by_commit_sha() -> None:
    lines = [
        line.strip()
        for line in (WORKFLOWS / "release.yml").read_text().splitlines()
        if re.match(r"\s*(- )?uses:", line)
    ]
    assert len(lines) >= 7
    for line in lines:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


def test_the_release_scans_before_it_pushes_then_signs_and_attests_by_digest() -> None:
    workflow = release_workflow()
    publish = workflow["jobs"]["publish"]
    steps = publish["steps"]
    sbom = step_index(publish, "$SUDO_MAKE sbom")
    save = step_index(publish, "podman save")
    scan = step_index(publish, "aquasecurity/trivy-action@")
    push = step_index(publish, "podman push")
    sign = step_index(publish, "cosign sign")
    provenance = step_index(publish, "actions/attest-build-provenance@")
    assert sbom < save < scan < push < sign < provenance
    # The scan reads the file the image was saved to, and fails the job on a fixable
    # HIGH or CRITICAL finding.
    scanned = steps[scan]["with"]
    assert f"-o {scanned['input']} " in steps[save]["run"]
    assert scanned["severity"] == "HIGH,CRITICAL"
    assert scanned["ignore-unfixed"] is True
    assert scanned["exit-code"] == "1"
    assert "continue-on-error" not in steps[scan]
    # Signed and attested by the digest the push reported, never by tag.
    assert steps[sign]["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    assert steps[push]["id"] == "push"
    signing = steps[sign]["run"]
    sign_by_digest = (
        'cosign sign --yes "${classic[@]}" --key env://COSIGN_PRIVATE_KEY "$IMAGE@$DIGEST"'
    )
    assert sign_by_digest in signing
    assert '--type cyclonedx --predicate "$sbom" "$IMAGE@$DIGEST"' in signing
    for sbom_file in ("dist/sbom/python.cdx.json", "dist/sbom/debian.cdx.json"):
        assert sbom_file in signing
        assert f"test -s {sbom_file}" in steps[sbom]["run"]
    provenance_with = steps[provenance]["with"]
    assert provenance_with["subject-digest"] == "${{ steps.push.outputs.digest }}"
    assert provenance_with["subject-name"] == "${{ env.IMAGE }}"
    assert provenance_with["push-to-registry"] is True


def test_the_release_publishes_the_image_repository_the_chart_pulls() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert release_workflow()["env"]["IMAGE"] == values["image"]["repository"]
