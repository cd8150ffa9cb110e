"""The admission policies under deploy/admission match their CRD schemas (vendored in
tests/deploy/data, see its README), require a signature by the release key, and cover
every image the chart runs."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_helpers import CHART, DEPLOY, REPO, pod_specs, render

ADMISSION = DEPLOY / "admission"
DATA = Path(__file__).parent / "data"
POLICY_CONTROLLER = ADMISSION / "policy-controller.yaml"
KYVERNO = ADMISSION / "kyverno.yaml"
SCHEMAS = {
    ("policy.sigstore.dev/v1beta1", "ClusterImagePolicy"): (
        "policy-controller-clusterimagepolicy-v1beta1.schema.json"
    ),
    ("kyverno.io/v1", "ClusterPolicy"): "kyverno-clusterpolicy-v1.schema.json",
}

Doc = dict[str, Any]


def strict(schema: Any) -> Any:
    """The schema as the API server applies it with fieldValidation=Strict (kubectl's
    default): an object field the schema does not name is an error, except where the
    schema says x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def problems(doc: Doc) -> list[str]:
    """Every way doc breaks the strict schema of its kind ("path: message")."""
    name = SCHEMAS[(doc["apiVersion"], doc["kind"])]
    schema = strict(json.loads((DATA / name).read_text()))
    # Every object has these at its root, whether its CRD's schema names them or not.
    root = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
    schema["properties"] = root | {"metadata": {"type": "object"}} | schema["properties"]
    validator = jsonschema.Draft7Validator(schema)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(doc)
    )


def load(path: Path) -> Doc:
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("path", [POLICY_CONTROLLER, KYVERNO], ids=lambda p: p.name)
def test_each_admission_policy_matches_its_crd_schema_strictly(path: Path) -> None:
    doc = load(path)
    assert (doc["apiVersion"], doc["kind"]) in SCHEMAS
    assert problems(doc) == []


def test_a_broken_policy_controller_policy_fails_the_schema() -> None:
    doc = load(POLICY_CONTROLLER)
    broken = copy.deepcopy(doc)
    broken["spec"]["images"] = "ghcr.io/paymesh/paymesh:**"  # a string, not a list
    key = broken["spec"]["authorities"][0]["key"]
    key["secretref"] = key.pop("secretRef")  # field names are case-sensitive
    found = problems(broken)
    assert any(p.startswith("spec/images: ") and "is not of type 'array'" in p for p in found)
    assert any(
        p.startswith("spec/authorities/0/key: ") and "'secretref' was unexpected" in p
        for p in found
    ), found


def test_a_broken_kyverno_policy_fails_the_schema() -> None:
    doc = load(KYVERNO)
    broken = copy.deepcopy(doc)
    verify = broken["spec"]["rules"][0]["verifyImages"][0]
    verify["mutateDigest"] = "yes"  # a string, not a boolean
    verify["verifyDigests"] = True  # no such field
    found = problems(broken)
    assert any(
        p.startswith("spec/rules/0/verifyImages/0/mutateDigest: ") and "'boolean'" in p
        for p in found
    ), found
    assert any("'verifyDigests' was unexpected" in p for p in found), found


def test_policy_controller_requires_the_release_key_signature() -> None:
    spec = load(POLICY_CONTROLLER)["spec"]
    assert spec["mode"] == "enforce"
    (authority,) = spec["authorities"]
    # What policy-controller's own webhook checks and the schema does not: one kind of
    # authority, and a key given one way.
    assert {"key", "keyless", "static"} & set(authority) == {"key"}
    assert {"data", "kms", "secretRef"} & set(authority["key"]) == {"secretRef"}
    assert authority["key"]["secretRef"] == {"name": "paymesh-release-key"}
    # The release workflow signs in cosign's classic format.
    assert authority["signatureFormat"] == "legacy"


def test_kyverno_requires_the_release_key_signature_and_pins_the_digest() -> None:
    (rule,) = load(KYVERNO)["spec"]["rules"]
    (verify,) = rule["verifyImages"]
    assert verify["failureAction"] == "Enforce"
    assert verify["required"] is True
    assert verify["mutateDigest"] is True
    assert verify["verifyDigest"] is True
    (attestor,) = verify["attestors"]
    (entry,) = attestor["entries"]
    assert set(entry) == {"keys"}
    assert entry["keys"]["secret"] == {"namespace": "kyverno", "name": "paymesh-release-key"}
    assert "publicKeys" not in entry["keys"]


def policy_controller_matches(glob: str, image: str) -> bool:
    """policy-controller's glob (pkg/apis/glob, v0.15.1): `*` is any run of characters but
    `/`, `**` any run of characters; the whole reference must match."""
    pattern = re.escape(glob).replace(r"\*\*", "#").replace(r"\*", "[^/]*").replace("#", ".*")
    return re.fullmatch(pattern, image) is not None


def chart_images() -> set[str]:
    """The image of every container the chart runs, by tag (defaults) and by digest."""
    images = set()
    for values in (None, {"image": {"digest": "sha256:" + "ab" * 32}}):
        for _, spec in pod_specs(render(values)):
            for container in spec["containers"] + spec.get("initContainers", []):
                images.add(container["image"])
    return images


def test_both_policies_cover_every_image_the_chart_runs_and_no_other_repository() -> None:
    images = chart_images()
    assert any("@sha256:" in image for image in images)
    assert any(re.search(r":[\w.-]+$", image) for image in images)
    repository = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]
    globs = [i["glob"] for i in load(POLICY_CONTROLLER)["spec"]["images"]]
    (rule,) = load(KYVERNO)["spec"]["rules"]
    references = rule["verifyImages"][0]["imageReferences"]
    others = [f"{repository}-debug:1.0", "ghcr.io/paymesh/other:1.0", f"docker.io/{repository}"]
    for image in images:
        assert image.startswith(repository)
        assert any(policy_controller_matches(g, image) for g in globs), image
        assert any(fnmatch.fnmatchcase(image, r) for r in references), image
    for image in others:
        assert not any(policy_controller_matches(g, image) for g in globs), image
        assert not any(fnmatch.fnmatchcase(image, r) for r in references), image


def test_the_release_workflow_signs_the_repository_the_policies_verify() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    signed = f"{workflow['env']['IMAGE']}@sha256:{'0' * 64}"
    globs = [i["glob"] for i in load(POLICY_CONTROLLER)["spec"]["images"]]
    assert any(policy_controller_matches(glob, signed) for glob in globs)
    (rule,) = load(KYVERNO)["spec"]["rules"]
    assert any(fnmatch.fnmatchcase(signed, r) for r in rule["verifyImages"][0]["imageReferences"])
