"""NVIDIA GPUs: identity through NVML, confidential-computing evidence when CC is on.

Device identity (name, UUID, serial, VBIOS, driver, CC mode) is in the node
inventory (:func:`slsa_dist.capture._inventory.gpu_inventory`). Evidence (format
``nvidia-spdm/v1``): per GPU the SPDM GET_MEASUREMENTS request and signed response
(hex), its certificate chain (PEM, leaf first), the driver and VBIOS RIMs (base64 of the
signed SWID tags) and OCSP answers (base64 DER), collected by the node at job time
(:mod:`._nvidia_collect`), so that appraisal here is offline (:func:`verify_report`):

- the response's ECDSA P-384 signature over SHA-384 of request and response by the
  GPU's attestation key, and that key's chain up to the pinned NVIDIA Device Identity CA;
- each RIM's XML signature and chain up to the pinned NVIDIA CoRIM signing Root CA
  (:mod:`._nvidia_rim`), its version = the driver / VBIOS version the report states,
  and the report's measurement blocks = the RIMs' active golden values;
- carried OCSP answers for every certificate of those chains (:mod:`._ocsp`): a bad,
  stale or revoked answer fails;
- the request's nonce = this job's binding (checked last).

Evidence without the RIMs, or without an OCSP answer for some certificate, is
``unverified`` (counted by no requirement, as NVIDIA's own verifier refuses it by
default), naming what is missing; what was verified is still listed. What the node could
not fetch it records with the reason, which the verdict repeats. When nv-attestation-sdk
is installed, its local verifier's outcome is carried too, labelled as reported by the
node; nothing counts it.
The older ``nvidia-cc/v1`` format (that outcome alone) stays ``reported``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import ocsp as x509_ocsp

from slsa_dist._internal.nvml import gpu_inventory
from slsa_dist.attest import _nvidia_rim as rim
from slsa_dist.attest import _ocsp as ocsp
from slsa_dist.attest import _pki as pki
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._nvidia_collect import Reader, Sources, collect_spdm
from slsa_dist.attest._nvidia_spdm import (
    NVDEC0_STATUS,
    REQUEST,
    SIGNATURE,
    SPDM_FORMAT,
    driver_version,
    measurements,
    opaque_data,
    vbios_version,
)
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict, Failure
from slsa_dist.errors import InputError

__all__ = ["FORMAT", "SPDM_FORMAT", "NvidiaAttester", "available", "collect", "driver_version",
           "measurements", "opaque_data", "spdm_evidence", "vbios_version", "verify",
           "verify_report"]

FORMAT = "nvidia-cc/v1"
_RIMS = "the measurements against NVIDIA's driver and VBIOS RIMs"


def verify_report(report: bytes, chain_pem: bytes, nonce: bytes, job_id: str, node_id: str,
                  *, appraisal: Appraisal | None = None, rims: Mapping[str, bytes] | None = None,
                  ocsp_answers: Sequence[bytes] = (), rims_missing: str = "") -> EvidenceVerdict:
    """One GPU's SPDM GET_MEASUREMENTS request and signed response, with its certificate
    chain (leaf first), and when carried the driver and VBIOS RIMs (``rims``: component ->
    the signed SWID tag) and OCSP answers (DER) for the GPU's and the RIMs' chains. Never
    raises on bad evidence."""
    appraisal = appraisal or Appraisal()
    not_verified: list[str] = []
    unchecked: list[str] = []  # what verify could not check: the verdict then counts for nothing

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               not_verified=not_verified)

    if len(report) <= REQUEST + 4 + SIGNATURE or report[:2] != b"\x11\xe0" \
            or report[REQUEST:REQUEST + 2] != b"\x11\x60":
        return fail("malformed", f"SPDM report: expected a GET_MEASUREMENTS request (11 e0) "
                    f"and response (11 60) and a signature, found {len(report)} bytes starting "
                    f"{report[:2].hex()} / {report[REQUEST:REQUEST + 2].hex()}")
    try:
        certs = pki.load_certificates(chain_pem)
        answers = [ocsp.load(answer) for answer in ocsp_answers]
    except pki.ChainError as exc:
        return fail("malformed", f"GPU certificate chain or OCSP answers: {exc}")
    root = pki.load_certificates(roots.NVIDIA_DEVICE_ROOT.encode())[0]
    at = appraisal.when()
    chain = [c for c in certs if pki.fingerprint(c) != pki.fingerprint(root)]
    try:
        path = pki.verify_chain(certs[0], chain[1:], root, at)
    except pki.ChainError as exc:
        return fail("certificate chain", f"GPU certificate chain: {exc}")
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        return fail("signature", "GPU attestation key: expected ECDSA P-384")
    signature = report[-SIGNATURE:]
    try:
        key.verify(encode_dss_signature(int.from_bytes(signature[:48], "big"),
                                        int.from_bytes(signature[48:], "big")),
                   report[:-SIGNATURE], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return fail("signature", "SPDM report signature: not valid for the GPU's attestation "
                    "key certificate")
    label = pki.root_label("NVIDIA Device Identity CA", root)
    verified = ["SPDM GET_MEASUREMENTS response signed (ECDSA P-384, SHA-384 over request "
                "and response) by the GPU attestation key", f"its certificate chain up to "
                f"{label}"]
    request_nonce = report[4:36]
    claims: dict[str, object] = {"requestNonce": request_nonce.hex(),
                                 "leaf": certs[0].subject.rfc4514_string()}
    try:
        claims["measurements"] = runtime = measurements(report)
        fields = opaque_data(report)
        claims["driverVersion"] = driver_version(fields)
        claims["vbiosVersion"] = vbios_version(fields)
    except InputError as exc:
        return fail("malformed", f"SPDM measurement record: {exc}")
    try:
        _revocation("GPU certificate chain", path, answers=answers, at=at, verified=verified,
                    not_verified=not_verified, unchecked=unchecked)
    except (pki.ChainError, ValueError) as exc:
        return fail("certificate chain", f"GPU certificate chain: {exc}")
    if rims:
        try:
            claims["rims"] = _appraise_rims(rims, runtime, fields, answers=answers, at=at,
                                            verified=verified, not_verified=not_verified,
                                            unchecked=unchecked)
        except rim.RimError as exc:
            return fail(_FAILURES.get(exc.failure, "collateral"), str(exc))
    else:
        missing = f"{_RIMS} ({rims_missing or 'no RIMs carried'})"
        not_verified.append(missing)
        unchecked.append(missing)
    if appraisal.check_binding:
        expected = report_data(nonce, job_id, node_id)
        if request_nonce != expected:
            return fail("binding mismatch", f"nonce binding: expected the SPDM request nonce "
                        f"{expected.hex()[:16]}... for this nonce, job and node, found "
                        f"{request_nonce.hex()[:16]}...")
        verified.append("nonce, job and node binding (the SPDM request nonce)")
    else:
        not_verified.append("the nonce, job and node binding (no nonce given)")
    if unchecked:
        # Fail closed: a node that leaves out RIMs or revocation answers must not get a
        # verdict that counts (NVIDIA's own verifier refuses both by default).
        return EvidenceVerdict(status="unverified", verified=verified, not_verified=not_verified,
                               root=label, as_of=at.isoformat(), claims=claims,
                               reason="not counted: expected RIMs and OCSP answers for every "
                                      "certificate, missing " + "; ".join(unchecked))
    return EvidenceVerdict(status="verified", verified=verified, not_verified=not_verified,
                           root=label, as_of=at.isoformat(), claims=claims)


_FAILURES: dict[str, Failure] = {"malformed": "malformed", "signature": "signature",
                                 "certificate chain": "certificate chain",
                                 "collateral": "collateral",
                                 "reference values": "reference values"}


def _revocation(what: str, path: Sequence[x509.Certificate], *,
                answers: Sequence[x509_ocsp.OCSPResponse], at: dt.datetime,
                verified: list[str], not_verified: list[str], unchecked: list[str]) -> None:
    done, left = ocsp.check_chain(what, path, answers, at)
    if done:
        verified.append(done)
    if left:
        not_verified.append(left)
        unchecked.append(left)


def _appraise_rims(rims: Mapping[str, bytes], runtime: dict[str, str], fields: dict[int, bytes],
                   *, answers: Sequence[x509_ocsp.OCSPResponse], at: dt.datetime,
                   verified: list[str], not_verified: list[str],
                   unchecked: list[str]) -> dict[str, object]:
    """Both RIMs up to the pinned RIM root, their versions against the report's, and the
    report's measurements against their golden values. Raises :class:`rim.RimError`."""
    missing = [c for c in rim.COMPONENTS if c not in rims]
    if missing:
        raise rim.RimError("collateral", f"RIMs: expected the driver and the VBIOS RIM, "
                           f"found no {' and no '.join(missing)} RIM")
    rim_root = pki.root_label("NVIDIA CoRIM signing Root CA",
                              pki.load_certificates(roots.NVIDIA_RIM_ROOT.encode())[0])
    found = {c: rim.verify_rim(rims[c], c, at) for c in rim.COMPONENTS}
    wanted = {"driver": driver_version(fields), "vbios": vbios_version(fields)}
    for component, manifest in found.items():
        verified.append(f"the {manifest.label()}: XML signature (ECDSA P-384, SHA-384) by "
                        f"{manifest.signer}, its chain up to {rim_root}")
        if manifest.version != wanted[component]:
            raise rim.RimError("collateral", f"the {manifest.label()} is for {component} "
                               f"version {manifest.version}, the report states "
                               f"{wanted[component]}")
        try:
            _revocation(f"{component} RIM signing chain", manifest.chain, answers=answers,
                        at=at, verified=verified, not_verified=not_verified,
                        unchecked=unchecked)
        except (pki.ChainError, ValueError) as exc:
            raise rim.RimError("certificate chain", f"{component} RIM signing chain: "
                               f"{exc}") from None
    verified.append(f"the driver RIM is for the report's driver {wanted['driver']}, the "
                    f"VBIOS RIM for its VBIOS {wanted['vbios']}")
    mismatches, skipped = rim.compare(runtime, found["driver"], found["vbios"],
                                      fields.get(NVDEC0_STATUS) == b"\x55")
    if mismatches:
        raise rim.RimError("reference values", f"{len(mismatches)} measurement(s) not as "
                           f"the RIMs say: {'; '.join(mismatches)}")
    active = sum(m.active for r in found.values() for m in r.measurements.values())
    verified.append(f"the report's measurements equal the RIMs' golden values ({active} "
                    f"active entries{f', {len(skipped)} not compared' if skipped else ''})")
    not_verified.extend(f"{s}: not compared, as NVIDIA's verifier does" for s in skipped)
    return {c: {"version": r.version, "tagId": r.tag_id, "signer": r.signer,
                "root": rim_root, "matched": True} for c, r in found.items()}


def spdm_evidence(report_hex: str, files: Sequence[bytes]) -> bytes:
    """An ``nvidia-spdm/v1`` blob of one GPU from a hex report and loose files: PEM
    certificates (the chain, leaf first), RIMs (SWID XML; driver or VBIOS by the shape of
    their version, unverified: each is then held to the version the report states) and
    DER OCSP answers. Raises :class:`InputError` on two RIMs of one kind."""
    chain, rims, answers = b"", {}, []
    for data in files:
        if b"-----BEGIN CERTIFICATE-----" in data:
            chain += data
        elif data.lstrip().startswith(b"<"):
            document, _ = rim.parse_unverified(data)
            meta = document.find(f"{rim.SWID}Meta")
            version = str(meta.get("colloquialVersion", "")) if meta is not None else ""
            parts = version.split(".")
            component = "vbios" if len(parts) == 5 and all(len(p) == 2 for p in parts) \
                else "driver"
            if component in rims:
                raise InputError(f"NVIDIA collateral: expected one {component} RIM, found two")
            rims[component] = base64.b64encode(data).decode()
        else:
            answers.append(base64.b64encode(data).decode())
    gpu: dict[str, object] = {"report": report_hex, "certChain": chain.decode("ascii", "replace")}
    if rims:
        gpu["rims"] = rims
    if answers:
        gpu["ocsp"] = answers
    return json.dumps({"format": SPDM_FORMAT, "gpus": [gpu]}).encode()


def _resolve(value: object, shared: Mapping[str, object]) -> bytes:
    """A carried RIM or OCSP answer: base64, or ``sha256:<hex>`` naming one in ``shared``
    (whose bytes must hash to that name). Raises ValueError or KeyError."""
    text = str(value)
    if not text.startswith("sha256:"):
        return base64.b64decode(text, validate=True)
    data = base64.b64decode(str(shared[text]), validate=True)
    if "sha256:" + hashlib.sha256(data).hexdigest() != text:
        raise ValueError(f"shared {text[:23]}...: its bytes hash to another digest")
    return data


def _verify_spdm(evidence: dict[str, object], nonce: bytes, job_id: str, node_id: str,
                 appraisal: Appraisal | None) -> EvidenceVerdict:
    gpus = evidence.get("gpus")
    if not isinstance(gpus, list) or not gpus:
        return EvidenceVerdict(status="failed", failure="malformed",
                               reason="nvidia-spdm evidence: expected a list of GPUs")
    shared = evidence.get("shared") or {}
    if not isinstance(shared, dict):
        return EvidenceVerdict(status="failed", failure="malformed",
                               reason="nvidia-spdm evidence: expected \"shared\" to be an "
                                      "object of sha256 names to base64")
    verdicts = []
    for index, gpu in enumerate(gpus):
        try:
            report = bytes.fromhex(str(gpu["report"]))
            chain = str(gpu["certChain"]).encode()
            rims = {str(c): _resolve(v, shared) for c, v in dict(gpu.get("rims") or {}).items()}
            answers = [_resolve(a, shared) for a in gpu.get("ocsp") or []]
            rims_missing = str(gpu.get("rimsUnavailable", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return EvidenceVerdict(status="failed", failure="malformed",
                                   reason=f"GPU {index}: malformed ({exc})")
        unknown = sorted(set(rims) - set(rim.COMPONENTS))
        if unknown:
            return EvidenceVerdict(status="failed", failure="malformed",
                                   reason=f"GPU {index}: expected driver and vbios RIMs, "
                                          f"found {', '.join(unknown)}")
        verdict = verify_report(report, chain, nonce, job_id, node_id, appraisal=appraisal,
                                rims=rims, ocsp_answers=answers,
                                rims_missing=f"the node: {rims_missing}" if rims_missing
                                else "")
        if verdict.status != "verified":
            return EvidenceVerdict(status=verdict.status, failure=verdict.failure,
                                   reason=f"GPU {index}: {verdict.reason}",
                                   verified=[f"GPU {index}: {v}" for v in verdict.verified],
                                   not_verified=[f"GPU {index}: {v}"
                                                 for v in verdict.not_verified],
                                   root=verdict.root, as_of=verdict.as_of)
        verdicts.append(verdict)
    first = verdicts[0]

    def each(lines: str) -> list[str]:  # what one GPU lacks is said of that GPU
        if len(verdicts) == 1:
            return list(getattr(first, lines))
        return [f"GPU {i}: {line}" for i, v in enumerate(verdicts) for line in getattr(v, lines)]

    return EvidenceVerdict(status="verified", verified=each("verified"),
                           not_verified=each("not_verified"), root=first.root, as_of=first.as_of,
                           claims={"gpus": [dict(v.claims) for v in verdicts],
                                   "reportedByNode": evidence.get("localVerifier", "none")})


def available() -> str | None:
    gpus = gpu_inventory()
    if not gpus["available"]:
        return str(gpus.get("reason", "NVML not available"))
    if not gpus["devices"]:
        return "NVML reports no GPUs"
    mode = gpus.get("confidentialComputing", {}).get("mode")
    if mode != "enabled":
        return f"GPU confidential computing mode is {mode!r}, not 'enabled'"
    return None


def collect(nonce: bytes, job_id: str, node_id: str, *, read: Reader | None = None,
            sources: Sources | None = None) -> bytes:
    """Every GPU's raw SPDM evidence bound to this job, with its RIMs and OCSP answers
    (:mod:`._nvidia_collect`); when nv-attestation-sdk is installed, its local verifier's
    outcome too, labelled as the node's report. ``read`` replaces the NVML call (tests)."""
    if read is None:
        why = available()
        if why is not None:
            raise InputError(why)
    try:
        evidence = collect_spdm(nonce, job_id, node_id, read=read, sources=sources)
    except OSError as exc:
        raise InputError(f"NVIDIA GPU attestation report: {exc}") from None
    if read is None and importlib.util.find_spec("nv_attestation_sdk") is not None:
        evidence["localVerifier"] = _local_verifier(nonce, job_id, node_id)
    return json.dumps(evidence, sort_keys=True).encode()


def _local_verifier(nonce: bytes, job_id: str, node_id: str) -> dict[str, object]:
    """NVIDIA's local GPU verifier's outcome, as the node reports it (never verified)."""
    try:
        from nv_attestation_sdk import attestation  # type: ignore[import-not-found]

        client = attestation.Attestation()
        client.set_name(node_id)
        client.set_nonce(report_data(nonce, job_id, node_id).hex())
        client.add_verifier(attestation.Devices.GPU, attestation.Environment.LOCAL, "", "")
        return {"reportedBy": node_id, "passed": bool(client.attest())}
    except Exception as exc:  # the SDK's failures are its report, not ours
        return {"reportedBy": node_id, "error": f"{type(exc).__name__}: {exc}"[:300]}


def verify(blob: bytes, nonce: bytes, job_id: str, node_id: str) -> EvidenceVerdict:
    """Record the outcome the node's SDK reported; nothing here re-verifies the GPU.

    NVIDIA's local verifier runs on the node and signs its token with a fixed
    HS256 key, so the outcome is the node's own report: a pass is ``reported``
    (by ``node_id``), never ``verified``, and counts for no ``--require-attestation``.
    """
    del nonce, job_id
    try:
        evidence = json.loads(blob)
        passed = evidence["passed"]
    except (ValueError, KeyError, TypeError) as exc:
        return EvidenceVerdict(status="failed", reason=f"malformed NVIDIA evidence: {exc}")
    not_verified = [
        "the GPU's attestation report and certificate chain, by the coordinator (the node's "
        "local verifier checked them; its token is signed with a fixed HS256 key, so the "
        "outcome is the node's report)",
        "the nonce binding inside the token"]
    if passed is True:  # the node's word, bound to nothing: never "verified"
        return EvidenceVerdict(
            status="reported", not_verified=not_verified,
            reason=f"reported by node {node_id}: NVIDIA's local GPU verifier passed (a "
                   "self-reported outcome, not verified here: it satisfies no requirement)",
            claims={"reportedBy": node_id, "outcome": "passed"})
    return EvidenceVerdict(status="failed", reason="the node reports that NVIDIA's local GPU "
                           "verifier "
            "did not pass", not_verified=not_verified)


class NvidiaAttester:
    """The ``nvidia-cc`` attester (:class:`~slsa_dist.attest.Attester`)."""

    name = "nvidia-cc"
    kinds = ("nvidia-cc",)
    proves = ("raw SPDM reports: signed by the GPU's attestation key, chained to the pinned "
              "NVIDIA Device Identity CA, answering this job's nonce; measurements equal to "
              "the golden values of driver and VBIOS RIMs verified up to the pinned NVIDIA "
              "CoRIM signing Root CA; a good, current OCSP answer for every certificate "
              "(without RIMs or an answer: unverified, never counted); otherwise the node's "
              "own report, never counted")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        del challenge  # the nonce is all this kind answers
        return self.name, collect(nonce, job_id, node_id)

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        del kind
        try:
            evidence = json.loads(blob)
        except ValueError:
            evidence = None
        if isinstance(evidence, dict) and evidence.get("format") == SPDM_FORMAT:
            return _verify_spdm(evidence, nonce, job_id, node_id, appraisal)
        return verify(blob, nonce, job_id, node_id)
