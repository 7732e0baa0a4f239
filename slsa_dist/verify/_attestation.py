"""``slsa-dist verify --require-attestation KIND``: every node has valid evidence of KIND.

"Every node" is every node a rank ran on (from the rank records, so a rank on
a node that never reported is caught), plus every node record when no rank
names one. A node record that hosted no rank (the Ray Train controller) is
not asked for evidence.

No verdict the coordinator wrote is taken on trust: every piece of evidence
is re-appraised here from the raw evidence the bundle carries, against the
nonce recorded with it and the job and node named in the signed statement.
Evidence without its raw bytes (bundles written before they were carried)
does not count, and the check says why. Only cryptographically verified
evidence counts, for ``any`` too: an outcome a node reports of a check it ran
itself (NVIDIA's local verifier) is shown as "reported by node X" and never
satisfies a requirement.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import replace

from slsa_dist.attest._reference import ReferenceValues
from slsa_dist.attest._reference import appraise as appraise_reference
from slsa_dist.attest._registry import KINDS
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.verify._result import Check

__all__ = ["REQUIREMENTS", "Appraiser", "check_reference_kinds", "job_time", "reappraise",
           "require_attestation"]

# What --require-attestation accepts: one evidence kind, or any kind at all.
REQUIREMENTS = (*KINDS, "any")


def job_time(provenance: Provenance) -> dt.datetime | None:
    """When the job ran (its finish, else its start): what evidence is judged as of."""
    for key in ("finishedOn", "startedOn"):
        value = provenance.metadata.get(key)
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def reappraise(evidence: EvidenceRecord, *, job_id: str, node_id: str,
               appraisal: Appraisal | None = None) -> EvidenceVerdict:
    """This verifier's own verdict on the raw evidence a record carries."""
    from slsa_dist.attest._registry import verify_evidence

    if evidence.status == "unavailable":  # the node's own reason there is none
        return EvidenceVerdict(status="unavailable", reason=evidence.reason)
    if not evidence.blob:
        return EvidenceVerdict(status="unverified", reason=(
            f"expected the raw evidence in the bundle to re-appraise, found only the "
            f"coordinator's verdict ({evidence.status or 'none'})"))
    try:
        blob = base64.b64decode(evidence.blob, validate=True)
        nonce = bytes.fromhex(evidence.nonce)
    except (binascii.Error, ValueError) as exc:
        return EvidenceVerdict(status="failed", reason=f"raw evidence: malformed ({exc})")
    if len(nonce) == 0:  # the coordinator records only a nonce it issued to the node
        return EvidenceVerdict(status="failed", reason="raw evidence: expected the nonce the "
                               "coordinator issued for it, found none recorded"
                               + (f" ({evidence.reason[:200]})" if evidence.reason else ""))
    if len(blob) != evidence.size:
        return EvidenceVerdict(status="failed", reason="raw evidence: expected the recorded "
                               f"size {evidence.size}, found {len(blob)} bytes")
    if evidence.tpm_challenge:  # the coordinator's credential challenge, re-made, not trusted
        appraisal = replace(appraisal or Appraisal(), challenge=json.dumps(
            dict(evidence.tpm_challenge), sort_keys=True).encode())
    return verify_evidence(evidence.kind, blob, nonce, job_id, node_id, appraisal=appraisal)


def _counts(verdict: EvidenceVerdict, kind: str, node_id: str,
            trusted_aks: frozenset[tuple[str, str]] | None,
            tcb_statuses: Collection[str] | None = None, *, ek_roots: bool = False
            ) -> str | None:
    """None when this (re-appraised) evidence counts for ``node_id``, else why not.

    It counts when it was verified up to a pinned root (a vendor's, or the EK roots
    given for TPMs), or, for a TPM quote with ``trusted_aks``, signed by the AK enrolled
    for that node; and, with ``tcb_statuses``, when its TCB status is one of them.
    """
    if verdict.status == "reported":  # the node's own word: shown, never counted
        return (f"reported by node {node_id}, not cryptographically verified, so it does "
                f"not count ({verdict.reason or 'no reason given'})")
    if verdict.status != "verified":
        what = f"{verdict.status} ({verdict.failure})" if verdict.failure else verdict.status
        return f"{what}: {verdict.reason}"
    if tcb_statuses is not None and kind == "tdx" and not verdict.tcb_status:
        return (f"verified up to {verdict.root}, but it carries no TCB status, and the policy "
                f"accepts only {', '.join(sorted(tcb_statuses))}")
    if tcb_statuses is not None and verdict.tcb_status and \
            verdict.tcb_status not in tcb_statuses:
        return (f"verified up to {verdict.root}, but its TCB status {verdict.tcb_status} "
                f"(advisories: {', '.join(verdict.advisory_ids) or 'none'}) is not one the "
                f"policy accepts ({', '.join(sorted(tcb_statuses))})")
    if trusted_aks is not None and kind == "tpm":
        ak = str(verdict.claims.get("akSha256", ""))
        if (ak, node_id) in trusted_aks:
            return None
        vouches = sorted(node for fingerprint, node in trusted_aks if fingerprint == ak)
        if vouches:
            return (f"verified, but signed by AK {ak}, trusted for node(s) "
                    f"{', '.join(vouches)}, not for {node_id}")
        return f"verified, but signed by AK {ak or '(none recorded)'}, not a trusted AK"
    # A TPM quote counts when its AK was activated by an EK certified up to one of the
    # EK roots given (its verdict then names the root), or with a trusted AK list, by the
    # AK enrolled for the node (above). An AK signature alone proves only that some key
    # signed: anyone can make one, so it counts for nothing (docs/attestation.md). Every
    # other kind counts only when verified up to a pinned vendor root.
    if not verdict.root and kind == "tpm":
        return ("verified, but not up to any of the EK roots given" if ek_roots else
                "its quote is signed by an AK no root vouches for: give the EK roots its "
                "TPM's EK certificate chains to (--ek-roots) or the AKs enrolled per node "
                "(--trusted-aks)")
    if not verdict.root:
        return "verified, but not up to a pinned vendor root"
    return None


def _ek(evidence: EvidenceRecord, verdict: EvidenceVerdict) -> tuple[str, str] | None:
    """(key, type) of the EK a counted TPM quote was activated by: ``sha256:`` of its
    public key (SubjectPublicKeyInfo: two certificates of one EK are one EK) and
    ``RSA 2048`` / ``ECC secp384r1``. Read from the EK certificate in the raw evidence the
    verdict came from; the verdict's own ``ekSha256`` (the certificate's digest) and an
    ``unreadable`` type when that cannot be read."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        blob = json.loads(base64.b64decode(evidence.blob, validate=True))
        key = x509.load_der_x509_certificate(
            base64.b64decode(str(blob["ekCertificate"]), validate=True)).public_key()
    except (ValueError, KeyError, TypeError, binascii.Error):
        fallback = verdict.claims.get("ekSha256")
        return (fallback, "unreadable") if isinstance(fallback, str) else None
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    kind = (f"RSA {key.key_size}" if isinstance(key, rsa.RSAPublicKey)
            else f"ECC {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey)
            else type(key).__name__)
    return "sha256:" + hashlib.sha256(spki).hexdigest(), kind


def _matches(verdict: EvidenceVerdict, kind: str, reference: ReferenceValues) -> str | None:
    """None when counted evidence holds the reference values of its kind, else why not."""
    if kind not in reference.kinds:
        return (f"verified, but the reference values name no {kind} register (with "
                "reference values, only evidence of a kind they name counts)")
    held = appraise_reference(verdict, kind, reference)
    if held.status != "verified":
        return f"verified up to {verdict.root or 'its trusted AK'}, but failed " \
            f"({held.failure}): {held.reason}"
    return None


Appraiser = Callable[[EvidenceRecord, str, str], EvidenceVerdict]  # (record, job, node)


def check_reference_kinds(kind: str, reference: ReferenceValues | None, *,
                          trusted_aks: frozenset[tuple[str, str]] | None,
                          ek_roots: tuple[bytes, ...]) -> None:
    """Raise InputError unless ``reference`` can be held to evidence of ``kind``.

    A kind-specific requirement needs reference values of its kind (any others the file
    names are for other requirements). TPM PCR values prove something only from a quote
    whose AK is tied to the node's TPM: reference values for ``tpm`` need ``ek_roots``
    or ``trusted_aks`` (without either, anyone's key could have quoted any values).
    """
    if reference is None:
        return
    if kind != "any" and kind not in reference.kinds:
        raise InputError(f"reference values: expected registers of {kind} for an attestation "
                         f"{kind} requirement, found only {', '.join(reference.kinds)}")
    if ("tpm" in reference.kinds and kind in ("tpm", "any")
            and trusted_aks is None and not ek_roots):
        raise InputError("reference values for tpm: expected --ek-roots or --trusted-aks "
                         "with them (PCR values quoted by an untrusted AK prove nothing: "
                         "anyone's key could have signed them), found neither")


def require_attestation(provenance: Provenance, kind: str, *,
                        trusted_aks: frozenset[tuple[str, str]] | None = None,
                        appraise: Appraiser | None = None,
                        tcb_statuses: Collection[str] | None = None,
                        ek_roots: tuple[bytes, ...] = (),
                        reference_values: ReferenceValues | None = None) -> Check:
    """Pass when every node recorded evidence of ``kind`` (``any``: of some kind) verified
    up to a pinned root, judged as of the job's time.

    With ``trusted_aks`` ((fingerprint, node id) pairs from ``slsa-dist tpm enroll``),
    TPM evidence counts only when its quote was signed by the AK enrolled for that node.
    With ``ek_roots`` (PEM), TPM evidence counts when its EK certificate chains to one
    of them and its AK was proven to live in that EK's TPM. With ``tcb_statuses``,
    evidence with a TCB status (TDX) counts only with one of those. With
    ``reference_values``, evidence counts only when, besides all that, the registers it
    proves hold the values they accept for its kind (for ``any``: only evidence of a kind
    they name counts); a register they name that the evidence lacks fails.

    Raises:
        InputError: ``trusted_aks`` given for a kind other than ``tpm``; reference values
            without registers of ``kind``, or for ``tpm`` without EK roots or trusted AKs.
    """
    if trusted_aks is not None and kind != "tpm":
        raise InputError(f"trusted AKs: expected them with a tpm requirement, found "
                         f"{kind!r}")
    check_reference_kinds(kind, reference_values, trusted_aks=trusted_aks, ek_roots=ek_roots)
    name = f"attestation {kind}" + (" (trusted AKs)" if trusted_aks is not None else "") \
        + (" (EK roots)" if ek_roots and kind in ("tpm", "any") else "") \
        + (" (reference values)" if reference_values is not None else "")
    job_id = provenance.job_id or ""
    appraisal = Appraisal(at=job_time(provenance), ek_roots=ek_roots)
    if appraise is None:
        def appraise(e: EvidenceRecord, job: str, node: str) -> EvidenceVerdict:
            return reappraise(e, job_id=job, node_id=node, appraisal=appraisal)
    records = {n.node: n for n in provenance.node_records()}
    ran_ranks = sorted({node for r in provenance.rank_records() for node in r.nodes()})
    nodes = ran_ranks or sorted(records)
    if not nodes:
        return Check(name, False, "expected node records with evidence, found no nodes")
    lacking = []
    # EK key (and "AK <fingerprint>") -> the nodes whose counted quote used it
    eks: dict[str, list[str]] = {}
    ek_types: dict[str, list[str]] = {}  # EK type -> the nodes whose quote it activated
    for node_id in nodes:
        node = records.get(node_id)
        if node is None:
            lacking.append(f"{node_id} (ran ranks, but no node agent reported for it)")
            continue
        reasons = []
        for e in node.evidence:
            if kind in ("any", e.kind):
                verdict = appraise(e, job_id, node_id)
                if reference_values is not None and verdict.failure == "event log":
                    # the log does not replay to the quote: name the events the
                    # reference values do not allow (the likely culprits)
                    verdict = appraise_reference(verdict, e.kind, reference_values)
                why = _counts(verdict, e.kind, node_id, trusted_aks, tcb_statuses,
                              ek_roots=bool(ek_roots))
                if why is None and reference_values is not None:
                    why = _matches(verdict, e.kind, reference_values)
                ek = _ek(e, verdict) if e.kind == "tpm" and why is None and verdict.root \
                    else None
                if ek is not None:
                    eks.setdefault(ek[0], []).append(node_id)
                    ek_types.setdefault(ek[1], []).append(node_id)
                    # An AK is fixed to its TPM: one AK answering for two nodes is one
                    # TPM, even through two EKs (a TPM holds an RSA and an ECC one).
                    ak = verdict.claims.get("akSha256")
                    if isinstance(ak, str) and ak:
                        eks.setdefault(f"AK {ak}", []).append(node_id)
                reasons.append((e, why))
        if any(why is None for _, why in reasons):
            continue
        why = "; ".join(f"{e.kind}: {reason}" for e, reason in reasons) \
            or f"no {kind} evidence recorded"
        lacking.append(f"{node_id} ({why})")
    # One TPM answering for two nodes (a relay: a node that quotes through another's
    # TPM) is refused: each node's quote must come from a TPM of its own. An EK is its
    # key, not its certificate: a CA may certify one EK twice.
    shared: dict[str, list[str]] = {}  # node -> what of its TPM also answered elsewhere
    for key, sharing in sorted(eks.items()):
        if len(set(sharing)) > 1:
            what = key[:26] if key.startswith("AK ") else f"EK key {key[:23]}"
            for node_id in sorted(set(sharing)):
                shared.setdefault(node_id, []).append(
                    f"its {what}... also answered for "
                    f"{', '.join(n for n in sorted(set(sharing)) if n != node_id)}")
    lacking += [f"{node_id} (tpm: {'; '.join(why)})" for node_id, why in sorted(shared.items())]
    # A TPM holds one certified EK per type (RSA 2048, ECC P-256, P-384...), each with AKs
    # of its own: nothing a verifier sees ties two of them to one chip. So the nodes of a
    # job must answer with EKs of one type, or one TPM could answer for two nodes.
    if len(ek_types) > 1:
        found = "; ".join(f"{t}: {', '.join(sorted(set(n)))}" for t, n in sorted(ek_types.items()))
        lacking.append(f"the job's TPM quotes (expected EKs of one type, found {found}: one "
                       "TPM holds an EK of each type and could answer for a node with each)")
    if lacking:
        return Check(name, False, f"expected verified {kind} evidence from every node, found "
                     f"none for: {', '.join(lacking)}")
    held = f", holding the reference values ({', '.join(reference_values.kinds)})" \
        if reference_values is not None else ""
    return Check(name, True, f"verified {kind} evidence from all {len(nodes)} node(s), "
                 f"re-appraised from the raw evidence in the bundle{held}")
