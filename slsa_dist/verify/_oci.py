"""Models in OCI registries, with their provenance attached as referrers (OCI 1.1).

:func:`push` uploads a model directory as an OCI artifact (one layer per file,
titled with its path inside the model) and attaches signed bundles to it: each a
manifest whose ``subject`` is the model's manifest, typed by ``artifactType``
(``application/vnd.dev.sigstore.bundle.v0.3+json`` for a Sigstore bundle,
``application/vnd.dsse.envelope.v1+json`` for ``.intoto.jsonl``). :func:`pull`
downloads the model and every attached bundle by its digest, for
``slsa-dist verify oci://...``.

A large job's record ledger (ADR 0011) and its index travel in the same
referrer as its bundle, as two more layers titled by the ledger's digest
(``<sha256>.ledger.jsonl``), so a pulled bundle finds its ledger beside it
and ``verify`` checks every record.

Registries without the referrers API (Distribution 2.8, Debian's
``docker-registry``) get the OCI 1.1 fallback: an image index tagged
``sha256-<digest>`` listing the referrers, updated on each attach and read when
the API answers 404. Blobs and manifests move through ``oras`` (the ORAS
project's Python client); only that index, which oras does not write, is a
plain request through oras's own session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slsa_dist.errors import InputError
from slsa_dist.model._ledger import MEDIA_LEDGER
from slsa_dist.sign._formats import FORMATS

__all__ = ["ARTIFACT_TYPES", "OciRef", "Pulled", "RegistryStore", "parse", "pull", "push"]

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MODEL_TYPE = "application/vnd.slsa-dist.model.v1"
# A bundle's OCI artifact type, by the suffix of its format (slsa_dist.sign.FORMATS).
ARTIFACT_TYPES = {f.suffix: f.media_type for f in FORMATS.values()}
TITLE = "org.opencontainers.image.title"
LEDGER_INDEX_TYPE = "application/vnd.slsa-dist.ledger-index.v1"
SUBJECT_TAG = "slsa-sha256-"


@dataclass(frozen=True)
class OciRef:
    """``oci://registry/repository[:tag|@sha256:...]``."""

    registry: str
    repository: str
    reference: str  # a tag, or a digest

    @property
    def name(self) -> str:
        separator = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{separator}{self.reference}"


def parse(uri: str) -> OciRef:
    if not uri.startswith("oci://"):
        raise InputError(f"OCI reference: expected oci://REGISTRY/REPO[:TAG|@sha256:...], "
                         f"found {uri!r}")
    rest = uri[len("oci://"):]
    registry, _, path = rest.partition("/")
    if not registry or not path:
        raise InputError(f"OCI reference: expected a registry and a repository, found {uri!r}")
    if "@" in path:
        repository, _, reference = path.partition("@")
    elif ":" in path.rsplit("/", 1)[-1]:
        repository, _, reference = path.rpartition(":")
    else:
        repository, reference = path, "latest"
    return OciRef(registry, repository, reference)


def _client(ref: OciRef) -> Any:
    try:
        import oras.provider
    except ImportError:
        raise InputError("OCI registries: expected the oras package (pip install "
                         "'slsa-dist[oci]'), found it missing") from None

    # Plain HTTP only on loopback (a registry a test or a developer started).
    insecure = ref.registry.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")
    return oras.provider.Registry(hostname=ref.registry, insecure=insecure,
                                  auth_backend="basic")


def _check(response: Any, what: str) -> Any:
    if response.status_code >= 300:
        raise InputError(f"registry: {what} failed: HTTP {response.status_code} "
                         f"{response.text[:200]}")
    return response


def _url(client: Any, ref: OciRef, kind: str, reference: str | None = None) -> str:
    """``/v2/<repository>/<kind>/<reference>`` on ``ref``'s registry."""
    return (f"{client.prefix}://{ref.registry}/v2/{ref.repository}/{kind}/"
            f"{reference or ref.reference}")


def _upload_manifest(client: Any, ref: OciRef, manifest: dict[str, Any], *,
                     tag: str | None = None) -> dict[str, Any]:
    """PUT ``manifest`` under ``tag`` (default: its own digest); its descriptor (the
    digest of the exact bytes sent)."""
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    _check(client.do_request(_url(client, ref, "manifests", tag or digest), "PUT",
                             headers={"Content-Type": manifest["mediaType"]}, data=body),
           f"pushing {ref.registry}/{ref.repository}:{tag or digest}")
    return {"mediaType": manifest["mediaType"], "digest": digest, "size": len(body)}


def _layers(client: Any, ref: OciRef, root: Path, files: list[Path],
            media_type: str) -> list[dict[str, Any]]:
    import oras.oci

    container = client.get_container(ref.name)
    layers = []
    for path in files:
        layer = oras.oci.NewLayer(str(path), media_type=media_type)
        layer["annotations"] = {TITLE: path.relative_to(root).as_posix()}
        _check(client.upload_blob(str(path), container, layer), f"uploading {path.name}")
        layers.append(layer)
    return layers


def _config(client: Any, ref: OciRef) -> dict[str, Any]:
    """The empty config (``{}``) OCI 1.1 artifacts use."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_bytes(b"{}")
        config = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                  "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}
        _check(client.upload_blob(str(path), client.get_container(ref.name), config),
               "uploading the config")
    return config


def push(model: str | os.PathLike[str], uri: str, *,
         attachments: Sequence[str | os.PathLike[str]] = (),
         warnings: list[str] | None = None) -> str:
    """Upload ``model`` (a directory or one file) to ``uri`` and attach each signed bundle
    (with its record ledger, when it has one beside it; when it is not there, that is
    appended to ``warnings``); returns the model manifest's digest."""
    root = Path(model)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    if not files:
        raise InputError(f"push: expected files in {root}, found none")
    base = root if root.is_dir() else root.parent
    ref = parse(uri)
    client = _client(ref)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": MODEL_TYPE,
                "config": _config(client, ref),
                "layers": _layers(client, ref, base, files, "application/octet-stream")}
    model_descriptor = _upload_manifest(client, ref, manifest, tag=ref.reference)
    for attachment in map(Path, attachments):
        kind = next((t for suffix, t in ARTIFACT_TYPES.items()
                     if attachment.name.endswith(suffix)), None)
        if kind is None:
            raise InputError(f"push: expected a bundle ending in {list(ARTIFACT_TYPES)}, "
                             f"found {attachment.name!r}")
        with tempfile.TemporaryDirectory() as scratch:
            layers = _layers(client, ref, attachment.parent, [attachment], kind)
            for ledger in _ledgers(attachment, Path(scratch), warnings):
                layers += _layers(client, ref, Path(scratch), [ledger], MEDIA_LEDGER)
                layers += _layers(client, ref, Path(scratch),
                                  [ledger.with_name(ledger.name + ".idx")], LEDGER_INDEX_TYPE)
        annotations = _bundle_annotations(attachment)
        referrer = {"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": kind,
                    "config": _config(client, ref), "layers": layers,
                    "subject": model_descriptor, "annotations": annotations}
        descriptor = _upload_manifest(client, ref, referrer)
        _add_to_fallback(client, ref, model_descriptor["digest"],
                         {**descriptor, "artifactType": kind, "annotations": annotations})
        # A tag per digest the bundle says it produced, so a chain can find this model
        # (and so its bundles) by that digest: the registry as an attestation store.
        for subject in _subject_digests(attachment):
            _upload_manifest(client, ref, manifest, tag=f"{SUBJECT_TAG}{subject}")
    return str(model_descriptor["digest"])


def _bundle_annotations(bundle: Path) -> dict[str, str]:
    """The annotations Sigstore-aware tools filter referrers on (cosign's bundle
    referrers): what the bundle holds, its statement's predicate type, and when it was
    made (the run's finish, else now), RFC 3339."""
    from slsa_dist.sign._formats import read_bundle

    statement: dict[str, Any] = {}
    for envelope in read_bundle(bundle):
        try:
            data = json.loads(envelope.payload)
        except ValueError:
            continue
        if isinstance(data, dict):
            statement = data
            break
    predicate = statement.get("predicate")
    finished = ((predicate.get("runDetails") or {}).get("metadata") or {}).get(
        "finishedOn") if isinstance(predicate, dict) else None
    created = finished if isinstance(finished, str) and finished else \
        dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": str(statement.get("predicateType", "")),
            "org.opencontainers.image.created": created}


def _ledgers(bundle: Path, scratch: Path, warnings: list[str] | None) -> list[Path]:
    """The record ledgers ``bundle``'s statements bind, each checked against its statement
    and copied into ``scratch`` under its digest's name (with its index)."""
    from slsa_dist.model._provenance import Provenance
    from slsa_dist.model._statement import Statement
    from slsa_dist.sign._formats import read_bundle

    found = []
    for envelope in read_bundle(bundle):
        try:
            ledger = Provenance.from_statement(
                Statement.from_dict(json.loads(envelope.payload))).ledger()
        except (ValueError, InputError):
            continue  # not a provenance: nothing of ours to carry
        copied = None if ledger is None else ledger.carry(
            bundle, scratch, what="push", warnings=warnings,
            without="attached without it, so verify cannot check its records")
        if copied is not None:
            found.append(copied)
    return found


def _subject_digests(bundle: Path) -> list[str]:
    """The sha256 digests a bundle's statements name as subjects (unverified: a store only
    proposes candidates; the chain verifies)."""
    from slsa_dist.sign._formats import read_bundle

    found = []
    for envelope in read_bundle(bundle):
        try:
            statement = json.loads(envelope.payload)
        except ValueError:
            continue
        for subject in statement.get("subject") or []:
            digest = (subject.get("digest") or {}).get("sha256")
            if isinstance(digest, str) and len(digest) == 64:
                found.append(digest)
    return list(dict.fromkeys(found))


class RegistryStore:
    """A repository as the attestation store ``verify chain`` follows: ``find(digest)``
    returns the bundles attached to the model tagged ``slsa-sha256-<digest>``."""

    def __init__(self, uri: str) -> None:
        self.ref = parse(uri)
        self._tmp = tempfile.TemporaryDirectory(prefix="slsa-oci-store-")
        self._origins: dict[Path, str] = {}

    def origin(self, bundle: Path) -> str | None:
        """Where a bundle ``find`` returned lives in the registry (its referrer)."""
        return self._origins.get(bundle)

    def find(self, digest: str) -> list[Path]:
        tag = f"{SUBJECT_TAG}{digest}"
        uri = f"oci://{self.ref.registry}/{self.ref.repository}:{tag}"
        client = _client(self.ref)
        url = _url(client, self.ref, "manifests", tag)
        if client.do_request(url, "HEAD", headers={"Accept": MANIFEST}).status_code == 404:
            return []
        pulled = pull(uri, Path(self._tmp.name) / digest)
        self._origins.update(pulled.origins)
        return pulled.bundles


def _referrers(client: Any, ref: OciRef, digest: str) -> tuple[dict[str, Any], bool]:
    """The index of ``digest``'s referrers, and whether the registry's referrers API gave
    it (else the OCI 1.1 fallback: an index tagged ``sha256-<hex>``, empty when absent)."""
    answer = client.do_request(_url(client, ref, "referrers", digest), "GET",
                               headers={"Accept": INDEX})
    if answer.status_code == 200:
        return answer.json(), True
    found = client.do_request(_url(client, ref, "manifests", digest.replace(":", "-")), "GET",
                              headers={"Accept": INDEX})
    if found.status_code == 404:
        return {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}, False
    return _check(found, f"reading the referrers of {digest}").json(), False


def _add_to_fallback(client: Any, ref: OciRef, digest: str, descriptor: dict[str, Any]) -> None:
    index, kept_by_registry = _referrers(client, ref, digest)
    if kept_by_registry:
        return  # the registry keeps its own list
    index["manifests"] = [m for m in index.get("manifests", [])
                          if m.get("digest") != descriptor["digest"]] + [descriptor]
    _upload_manifest(client, ref, index, tag=digest.replace(":", "-"))


@dataclass(frozen=True)
class Pulled:
    model: Path
    digest: str
    bundles: list[Path]
    # each bundle's home in the registry: oci://REGISTRY/REPOSITORY@<referrer digest>
    origins: dict[Path, str] = field(default_factory=dict)


def pull(uri: str, dest: str | os.PathLike[str]) -> Pulled:
    """Download the model at ``uri`` into ``dest/model`` and every bundle attached to it
    into ``dest/attached``."""
    ref = parse(uri)
    client = _client(ref)
    answer = _check(client.do_request(_url(client, ref, "manifests"), "GET",
                                      headers={"Accept": MANIFEST}), f"reading {ref.name}")
    body = answer.content
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if ref.reference.startswith("sha256:") and ref.reference != digest:
        raise InputError(f"registry: expected manifest {ref.reference}, found {digest}")
    manifest = json.loads(body)
    out = Path(dest)
    model = out / "model"
    container = client.get_container(ref.name)
    for layer in manifest.get("layers", []):
        _download(client, container, layer, model)
    bundles = []
    origins: dict[Path, str] = {}
    for referrer in _referrers(client, ref, digest)[0].get("manifests", []):
        if referrer.get("artifactType") not in ARTIFACT_TYPES.values():
            continue
        url = _url(client, ref, "manifests", referrer["digest"])
        attached = _check(client.do_request(url, "GET", headers={"Accept": MANIFEST}),
                          f"reading referrer {referrer['digest']}").json()
        if (attached.get("subject") or {}).get("digest") != digest:
            continue  # listed under this model but naming another: not its bundle
        for layer in attached.get("layers", []):
            path = _download(client, container, layer, out / "attached")
            if layer.get("mediaType") in ARTIFACT_TYPES.values():
                bundles.append(path)  # else a bundle's ledger, downloaded beside it
                origins[path] = f"oci://{ref.registry}/{ref.repository}@{referrer['digest']}"
    return Pulled(model=model, digest=digest, bundles=bundles, origins=origins)


def _download(client: Any, container: Any, layer: dict[str, Any], into: Path) -> Path:
    title = str((layer.get("annotations") or {}).get(TITLE, ""))
    target = (into / title).resolve()
    if not title or not target.is_relative_to(into.resolve()):
        raise InputError(f"registry: expected a file name inside the artifact, found {title!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    client.download_blob(container, layer["digest"], str(target))  # writes target
    data = target.read_bytes()
    if "sha256:" + hashlib.sha256(data).hexdigest() != layer["digest"]:
        raise InputError(f"registry: blob {title} does not match its digest")
    return target
