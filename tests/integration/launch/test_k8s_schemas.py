"""The Kubernetes manifests under launch/k8s validate offline against real schemas.

No cluster is reachable here, so each manifest is checked with a JSON Schema
validator (``jsonschema``) against published schemas, strictly (an unknown field
is an error, as ``kubectl apply --validate=strict`` makes it):

- core kinds (Deployment, Service): the Kubernetes 1.37 strict schemas that
  ``kubernetes-validate`` ships;
- ``TrainJob`` (Kubeflow Trainer v2): the JSON Schema of the models
  ``kubeflow-trainer-api`` generates from Trainer's OpenAPI spec, made strict;
- ``PyTorchJob`` (Training Operator v1): the types of the models
  ``kubeflow-training`` generates from its OpenAPI spec, with the pod template
  checked against the Kubernetes core schema.

cert-manager's ``Issuer`` has no published schema package; it is checked for
its kind and the fields the coordinator's certificates depend on
(test_manifests.py).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

LAUNCH = Path(__file__).parents[3] / "launch" / "k8s"
K8S_VERSION = "1.37.0"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((LAUNCH / name).read_text()) if d]


def core_definitions() -> dict[str, Any]:
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = folder / f"v{K8S_VERSION}-local-strict" / "_definitions.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def strict(schema: Any) -> Any:
    """Every object with declared properties refuses others (``additionalProperties``)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Every violation, each at its deepest cause (an ``anyOf [X, null]`` that fails says
    why it failed against X)."""
    found = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(document):
        cause = error
        while cause.context:
            cause = max(cause.context, key=lambda e: len(e.absolute_path))
        found.append(f"{'/'.join(map(str, cause.absolute_path))}: {cause.message[:300]}")
    return found


def test_core_manifests_validate_strictly_against_kubernetes() -> None:
    found = []
    for name in ("coordinator.yaml",):
        for document in documents(name):
            kubernetes_validate.validate(document, K8S_VERSION, strict=True)
            found.append(document["kind"])
    assert found == ["Deployment", "Service"]


def test_a_misspelled_field_fails_the_core_schema() -> None:
    deployment = copy.deepcopy(documents("coordinator.yaml")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# Kubernetes declares a quantity a string or a number (int-or-string); the generated
# Python models give it an object type, which no manifest could satisfy.
QUANTITY = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}]}


def trainjob_schema() -> dict[str, Any]:
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    schema = TrainerV1alpha1TrainJob.model_json_schema(by_alias=True)
    schema["$defs"]["IoK8sApimachineryPkgApiResourceQuantity"] = QUANTITY
    return strict(schema)  # type: ignore[no-any-return]


def test_the_trainjob_validates_against_kubeflow_trainers_schema() -> None:
    (trainjob,) = documents("trainjob.yaml")
    assert (trainjob["apiVersion"], trainjob["kind"]) == ("trainer.kubeflow.org/v1alpha1",
                                                          "TrainJob")
    assert errors(trainjob_schema(), trainjob) == []
    broken = copy.deepcopy(trainjob)
    broken["spec"]["trainer"]["numNode"] = 2  # a typo of numNodes
    assert any("numNode" in e for e in errors(trainjob_schema(), broken))


def pytorchjob_schema() -> dict[str, Any]:
    """JSON Schema from the kubeflow-training models' declared types (``openapi_types``,
    ``attribute_map``); Kubernetes types (``V1...``) refer to the core definitions."""
    import kubeflow.training.models as models

    core = core_definitions()["$defs"]
    definitions: dict[str, Any] = dict(core)

    def core_ref(name: str) -> dict[str, Any]:
        kind = name[len("V1"):]
        for prefix in ("io.k8s.api.core.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1.",
                       "io.k8s.api.autoscaling.v2."):
            if prefix + kind in core:
                return {"$ref": f"#/$defs/{prefix}{kind}"}
        raise AssertionError(f"no Kubernetes definition for {name}")

    def of(type_name: str) -> dict[str, Any]:
        simple = {"str": {"type": "string"}, "int": {"type": "integer"},
                  "bool": {"type": "boolean"}, "float": {"type": "number"},
                  "datetime": {"type": "string"}, "object": {}, "Quantity": QUANTITY}
        if type_name in simple:
            return simple[type_name]
        if (inner := re.fullmatch(r"list\[(.+)\]", type_name)) is not None:
            return {"type": "array", "items": of(inner.group(1))}
        if (inner := re.fullmatch(r"dict\(str, (.+)\)", type_name)) is not None:
            return {"type": "object", "additionalProperties": of(inner.group(1))}
        if re.fullmatch(r"V\d.*", type_name):
            return core_ref(type_name)
        if type_name.startswith("K8sIoApi"):  # K8sIoApiAutoscalingV2MetricSpec
            group, version, kind = re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d\w*?)([A-Z]\w+)",
                                                type_name).groups()  # type: ignore[union-attr]
            return {"$ref": f"#/$defs/io.k8s.api.{group.lower()}.{version.lower()}.{kind}"}
        if type_name not in definitions:
            model = getattr(models, type_name)
            definitions[type_name] = {}  # recursion guard
            definitions[type_name] = {
                "type": "object", "additionalProperties": False,
                "properties": {model.attribute_map[a]: of(t)
                               for a, t in model.openapi_types.items()}}
        return {"$ref": f"#/$defs/{type_name}"}

    root = of("KubeflowOrgV1PyTorchJob")
    return {**root, "$defs": definitions}


def test_the_pytorchjob_validates_against_the_training_operators_schema() -> None:
    (job,) = documents("pytorchjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    schema = pytorchjob_schema()
    assert errors(schema, json.loads(json.dumps(job))) == []
    broken = copy.deepcopy(job)
    broken["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
        "imagePullPolicy"] = 3  # a number where Kubernetes wants a string
    broken["spec"]["elasticPolicy"] = {"minReplica": 1}  # a typo of minReplicas
    found = errors(schema, broken)
    assert any("imagePullPolicy" in e for e in found), found
    assert any("minReplica" in e for e in found), found
