"""TPM 2.0 quotes: collected with tpm2-tools, verified in Python with ``cryptography``.

Collection (on the node): quote PCRs 0-7 (SHA-256 bank) with the binding
of :func:`slsa_dist.attest._binding.report_data` as qualifying data, by the
node's enrolled attestation key (AK) when it has one, else by a throwaway
ECDSA P-256 AK made under the endorsement key for this quote. The TPM is
reached through ``TPM2TOOLS_TCTI`` (e.g. a software TPM:
``swtpm:host=127.0.0.1,port=2321``) or the kernel resource manager.

Enrollment (:func:`enroll`, ``slsa-dist tpm enroll``): make the AK once,
keep it at the persistent handle :data:`AK_HANDLE`, and print its
fingerprint (``sha256:`` of its DER SubjectPublicKeyInfo) for the
verifier's list of trusted AKs (``verify --trusted-aks``). A throwaway AK
proves only that *some* key signed the quote; anyone can make one. An AK on
the trusted list, enrolled while the operator controlled the node, ties the
quote to that node's TPM. Enrollment is only as strong as that moment.

Endorsement (:mod:`._credential`): a node with an enrolled AK and an EK certificate
(RSA 2048, else ECC P-256) sends both with its request for a nonce; the coordinator answers with a
credential challenge made to that EK for that AK's name, the node unwraps it with
``TPM2_ActivateCredential`` (possible only in the TPM that owns the EK, with the AK
loaded in it) and returns an HMAC with the unwrapped secret over its quote. The
coordinator records the challenge with its opening; a verifier given EK roots
(``verify --ek-roots``) re-makes the challenge from the EK certificate and the AK's
public area, checks the HMAC, checks the AK is a restricted signing key fixed to its
TPM that signed the quote, and chains the EK certificate to one of the roots.

Verification (on the coordinator, no TPM needed): parse TPMS_ATTEST, check
the magic and type, the AK's signature over it, that ``extraData`` equals the
expected binding (fresh nonce, this job, this node), and that the quoted PCR
digest equals the SHA-256 of the reported PCR values.

Boot event log (:mod:`._eventlog`): the node sends the firmware's measured-boot log
(``EVENT_LOG_ENV``, default securityfs) with the quote; the verifier replays its SHA-256
bank and fails (``event log``) naming a quoted PCR the log does not replay to. The
events of quoted PCRs then count as proven (``claims["events"]``) for reference values.

Not verified, and recorded as such: that the AK lives in a genuine TPM when no EK
roots are given or no challenge was recorded (a trusted AK list stands in for it),
that the PCR values match known-good reference values (none are configured), and
without an event log, which boot events produced them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from slsa_dist.attest import _credential as credential_
from slsa_dist.attest import _eventlog as eventlog
from slsa_dist.attest import _pki as pki
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict, Failure
from slsa_dist.errors import InputError

__all__ = ["AK_HANDLE", "EK_CHAIN_ENV", "EK_CRLS_ENV", "EVENT_LOG_ENV", "FORMAT", "Quote",
           "TpmAttester", "ak_fingerprint", "check_ak_fingerprint", "collect", "enroll", "identity",
           "load_crls", "load_trusted_aks", "parse_attest", "verify"]

FORMAT = "tpm2-quote/v1"
PCRS = tuple(range(8))
# The enrolled AK's persistent handle: owner range 0x81000000-0x817FFFFF, clear of the
# EK (0x81010001/0x81010002) and SRK (0x81000001) handles the TCG guidance assigns.
AK_HANDLE = 0x81010051
_MAGIC = 0xFF544347  # TPM_GENERATED_VALUE
_ST_ATTEST_QUOTE = 0x8018
_ALG_SHA256 = 0x000B
_ALG_ECDSA = 0x0018
_TIMEOUT = 30
# The TCG EK Credential Profile's NV indices of EK certificates, in the order they are
# tried: RSA 2048 (L-1, H-1), then ECC P-256 (L-2, H-2) and P-384 (H-3, what swtpm makes).
_EK_CERTS = ("0x01c00002", "0x01c00012", "0x01c0000a", "0x01c00014", "0x01c00016")
# The EKs' persistent handles (TCG EK Credential Profile), where they were made persistent,
# by key: RSA 2048, ECC P-256, ECC P-384.
_EK_HANDLES = {"rsa": 0x81010001, "ecc": 0x81010002, "ecc384": 0x81010016}
# A PEM file of the EK certificate's intermediate CAs, carried with the evidence (a TPM
# keeps only its own certificate; the manufacturer publishes the intermediates).
EK_CHAIN_ENV = "SLSA_TPM_EK_CHAIN"
# A PEM file of CRLs for the EK chain, carried with the evidence (the node fetched them
# from the certificates' distribution points; each is checked against its issuer).
EK_CRLS_ENV = "SLSA_TPM_EK_CRLS"
# The measured-boot event log the node sends with its quote (where the kernel exposes
# the firmware's log; the variable points elsewhere, e.g. a test's fixture log).
EVENT_LOG_ENV = "SLSA_TPM_EVENT_LOG"
EVENT_LOG_PATH = "/sys/kernel/security/tpm0/binary_bios_measurements"
# Real logs are tens of KB; the cap keeps the evidence under the coordinator's 1 MiB
# evidence bound once base64-encoded, with room for the rest.
MAX_EVENT_LOG_BYTES = 512 * 1024


@dataclass(frozen=True)
class Quote:
    """The fields of a TPMS_ATTEST of type quote that verification needs."""

    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    firmware_version: int
    selections: tuple[tuple[int, tuple[int, ...]], ...]  # (hash alg, PCR indices)
    pcr_digest: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise InputError(f"TPMS_ATTEST: expected {count} more bytes at offset "
                             f"{self.offset}, found {len(self.data) - self.offset}")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def sized(self) -> bytes:
        return self.take(self.u16())


def parse_attest(data: bytes) -> Quote:
    """Parse a TPMS_ATTEST holding a quote. Raises :class:`InputError`."""
    reader = _Reader(data)
    magic = reader.u32()
    if magic != _MAGIC:
        raise InputError(f"TPMS_ATTEST.magic: expected {_MAGIC:#x}, found {magic:#x}")
    kind = reader.u16()
    if kind != _ST_ATTEST_QUOTE:
        raise InputError(f"TPMS_ATTEST.type: expected a quote ({_ST_ATTEST_QUOTE:#x}), "
                         f"found {kind:#x}")
    signer = reader.sized()
    extra = reader.sized()
    clock, resets, restarts = reader.u64(), reader.u32(), reader.u32()
    reader.u8()  # safe
    firmware = reader.u64()
    selections = []
    for _ in range(reader.u32()):
        algorithm = reader.u16()
        bitmap = reader.take(reader.u8())
        pcrs = tuple(i * 8 + bit for i, byte in enumerate(bitmap) for bit in range(8)
                     if byte & (1 << bit))
        selections.append((algorithm, pcrs))
    digest = reader.sized()
    if reader.offset != len(data):
        raise InputError(f"TPMS_ATTEST: expected {reader.offset} bytes, found {len(data)}")
    return Quote(qualified_signer=signer, extra_data=extra, clock=clock, reset_count=resets,
                 restart_count=restarts, firmware_version=firmware,
                 selections=tuple(selections), pcr_digest=digest)


def _der_signature(data: bytes) -> bytes:
    """TPMT_SIGNATURE (ECDSA) -> DER (r, s)."""
    reader = _Reader(data)
    algorithm, digest = reader.u16(), reader.u16()
    if algorithm != _ALG_ECDSA or digest != _ALG_SHA256:
        raise InputError(f"TPMT_SIGNATURE: expected ECDSA with SHA-256, found algorithm "
                         f"{algorithm:#x} hash {digest:#x}")
    r, s = reader.sized(), reader.sized()
    return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


def ak_fingerprint(pem: str | bytes) -> str:
    """``sha256:<hex>`` of an AK's DER SubjectPublicKeyInfo (independent of PEM layout).

    Raises:
        InputError: not a PEM public key.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise InputError(f"AK: expected a PEM public key, found {exc}") from None
    return _fingerprint(key)


def _fingerprint(key: PublicKeyTypes) -> str:
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def check_ak_fingerprint(value: str, where: str) -> str:
    """``value`` when it is ``sha256:<64 lowercase hex>``; else InputError naming ``where``."""
    digest = value.removeprefix("sha256:")
    if not value.startswith("sha256:") or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise InputError(f"{where}: expected 'sha256:<64 lowercase hex>', found {value!r:.80}")
    return value


def trusted_ak_entry(value: str, where: str) -> tuple[str, str]:
    """``sha256:<64 hex> NODE-ID`` -> (fingerprint, node id); else InputError naming ``where``.

    The node id is part of the trust: an AK vouches for the node it was enrolled on,
    and a quote by node A's AK does not count for node M.
    """
    fields = value.split()
    fingerprint = check_ak_fingerprint(fields[0] if fields else "", where)
    if len(fields) != 2:
        raise InputError(f"{where}: expected 'sha256:<64 hex> NODE-ID' (the node the AK was "
                         f"enrolled on), found {value!r:.100}")
    return fingerprint, fields[1]


def load_trusted_aks(path: str | os.PathLike[str]) -> frozenset[tuple[str, str]]:
    """Read a trusted AK list: one ``sha256:<64 hex> NODE-ID`` per line (what ``slsa-dist
    tpm enroll`` prints); blank lines and ``#`` comments are skipped.

    Returns:
        (fingerprint, node id) pairs: a quote counts only from its own node's AK.

    Raises:
        InputError: a missing file, a malformed line (named by number), or no entry.
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise InputError(f"trusted AKs: expected a readable file at {file}, found {exc}") \
            from None
    found = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            found.add(trusted_ak_entry(entry, f"trusted AKs {file} line {number}"))
    if not found:
        raise InputError(f"trusted AKs {file}: expected at least one 'sha256:...' line, "
                         "found none")
    return frozenset(found)


def verify(blob: bytes, nonce: bytes, job_id: str, node_id: str, *,
           appraisal: Appraisal | None = None) -> EvidenceVerdict:
    """Check a TPM evidence blob; returns the verdict fields. Never raises on bad evidence.

    With ``appraisal.challenge`` (the coordinator's credential challenge for this nonce)
    the activation is re-checked; with ``appraisal.ek_roots`` the EK certificate must
    chain to one of them and the activation must hold, and only then is a ``root``
    named. The nonce binding is checked last (a replayed genuine quote is a "binding
    mismatch", not a forgery).
    """
    appraisal = appraisal or Appraisal()
    not_verified = ["PCR values against reference values (none configured)"]

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               not_verified=not_verified)

    try:
        evidence = json.loads(blob)
        attest = base64.b64decode(evidence["attest"], validate=True)
        signature = _der_signature(base64.b64decode(evidence["signature"], validate=True))
        ak = serialization.load_pem_public_key(evidence["akPublicPem"].encode())
        quote = parse_attest(attest)
    except (ValueError, KeyError, TypeError, InputError) as exc:
        return fail("malformed", f"malformed TPM evidence: {exc}")
    if not isinstance(ak, ec.EllipticCurvePublicKey):
        return fail("malformed", f"AK: expected an ECDSA key, found {type(ak).__name__}")
    try:
        ak.verify(signature, attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return fail("signature", "quote signature: not valid for the reported AK")
    pcrs = evidence.get("pcrs", {}).get("sha256", {})
    selected = [p for algorithm, indices in quote.selections if algorithm == _ALG_SHA256
                for p in indices]
    try:
        values = b"".join(bytes.fromhex(pcrs[str(p)]) for p in selected)
    except (KeyError, ValueError, AttributeError) as exc:
        return fail("malformed", f"PCR values: missing or malformed {exc}")
    if hashlib.sha256(values).digest() != quote.pcr_digest:
        return fail("signature", "PCR digest: the reported PCR values do not hash to the "
                                 "quoted digest")
    verified = ["quote signed by the reported AK",
                "PCR digest matches the reported SHA-256 PCR values"]
    claims: dict[str, object] = {
        "pcrs": {str(p): pcrs[str(p)] for p in selected}, "clock": quote.clock,
        "resetCount": quote.reset_count, "firmwareVersion": f"{quote.firmware_version:#x}",
        "akSha256": _fingerprint(ak), "akEnrolled": evidence.get("akEnrolled") is True,
        "ekCertificate": "present" if evidence.get("ekCertificate") else "absent"}
    replayed = _event_log(evidence, {p: pcrs[str(p)] for p in selected}, verified=verified,
                          not_verified=not_verified, claims=claims)
    if isinstance(replayed, EvidenceVerdict):
        return replayed
    endorsed = _endorsement(evidence, attest, ak, appraisal, verified=verified,
                            not_verified=not_verified, claims=claims)
    if isinstance(endorsed, EvidenceVerdict):
        return endorsed
    if appraisal.check_binding:
        expected = report_data(nonce, job_id, node_id)
        if quote.extra_data != expected:
            return fail("binding mismatch", f"nonce binding: expected qualifying data "
                        f"{expected.hex()[:16]}... for this nonce, job and node, found "
                        f"{quote.extra_data.hex()[:16]}...")
        verified.append("nonce, job and node binding")
    else:
        not_verified.append("the nonce, job and node binding (no nonce given)")
    return EvidenceVerdict(status="verified", not_verified=not_verified, claims=claims,
                           verified=verified, root=endorsed,
                           as_of=appraisal.when().isoformat() if endorsed else "")


def _event_log(evidence: dict[str, object], quoted: dict[int, str], *, verified: list[str],
               not_verified: list[str], claims: dict[str, object]) -> EvidenceVerdict | None:
    """Replay the boot event log the evidence carries and compare it with the quoted
    SHA-256 PCRs; None when it matches (or there is none), else the failed verdict.

    A match proves the log's SHA-256 digests for the quoted PCRs: those events go into
    ``claims["events"]`` (index, PCR, type, digest) for reference values. On a mismatch
    the events are kept there too, marked unproven, to name the ones a reference-value
    policy does not allow (:func:`._reference.appraise`).
    """
    raw = evidence.get("eventLog")
    if not raw:
        why = evidence.get("eventLogError")
        not_verified.append("the boot events behind the PCR values (no event log in the "
                            "evidence" + (f": {str(why)[:200]}" if why else "") + ")")
        return None

    def fail(reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure="event log", reason=reason,
                               not_verified=not_verified, claims=claims)

    try:
        data = base64.b64decode(str(raw), validate=True)
        log = eventlog.parse(data)
    except (ValueError, InputError) as exc:
        return fail(f"event log: malformed ({exc})")
    summary: dict[str, object] = {"sha256": hashlib.sha256(data).hexdigest(),
                                  "size": len(data), "events": len(log.events),
                                  "banks": list(log.algorithms)}
    claims["eventLog"] = summary
    if "sha256" not in log.algorithms:
        return fail("event log: expected SHA-256 digests (the quoted bank), found only "
                    f"{', '.join(log.algorithms)}"
                    + (" (a legacy SHA-1 log, no Spec ID Event03 header)" if log.legacy
                       else ""))
    proven = [[e.index, e.pcr, e.type_name, e.digests["sha256"].hex()]
              for p in sorted(quoted) for e in log.extended(p) if "sha256" in e.digests]
    claims["events"] = proven
    missing = [e.index for p in quoted for e in log.extended(p) if "sha256" not in e.digests]
    if missing:
        return fail(f"event log: event {missing[0]} has no SHA-256 digest, so the quoted "
                    "SHA-256 bank cannot be replayed")
    bank = log.replay()["sha256"]
    for pcr in sorted(quoted):
        value = bank.get(pcr, log.reset_value("sha256", pcr)).hex()
        if value != quoted[pcr].lower():
            events = [e.index for e in log.extended(pcr)]
            span = (f"its {len(events)} event(s), indices {events[0]}-{events[-1]}"
                    if events else "no events")
            summary["replay"] = f"PCR {pcr} mismatch"
            return fail(f"event log: PCR {pcr}: the log ({span}) replays to {value}, the "
                        f"quote holds {quoted[pcr].lower()}")
    others = sorted({e.pcr for e in log.events if e.pcr not in quoted
                     and e.type != eventlog.EV_NO_ACTION})
    verified.append(f"boot event log replays to the quoted SHA-256 PCRs "
                    f"{', '.join(map(str, sorted(quoted)))} ({len(proven)} events)")
    not_verified.append("the event data beside each digest (only the digests are replayed)")
    if others:
        not_verified.append(f"the log's events for PCRs {', '.join(map(str, others))} (not "
                            "in the quote)")
    extra = [bank_name for bank_name in log.algorithms if bank_name != "sha256"]
    if extra:
        not_verified.append(f"the log's {', '.join(extra)} digests (only the SHA-256 bank "
                            "is quoted)")
    summary["replay"] = "matches"
    return None


def _endorsement(evidence: dict[str, object], attest: bytes, ak: ec.EllipticCurvePublicKey,
                 appraisal: Appraisal, *, verified: list[str], not_verified: list[str],
                 claims: dict[str, object]) -> str | EvidenceVerdict:
    """The EK root the quote's AK was proven under (its label), "" when that was not asked
    (no EK roots, no challenge), or the failed verdict. Appends what it checked."""
    wanted = bool(appraisal.ek_roots)

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               not_verified=not_verified)

    if not appraisal.challenge:
        not_verified.append("the AK lives in the TPM of a certified endorsement key (no "
                            "credential challenge recorded for this nonce: no enrolled AK or "
                            "no EK certificate on the node)")
        return fail("activation", "EK roots given, but no credential challenge was recorded "
                    "for this evidence, so the AK is not proven to live in the EK's TPM") \
            if wanted else ""
    try:
        record = json.loads(appraisal.challenge)
    except ValueError as exc:
        return fail("malformed", f"credential challenge: malformed ({exc})")
    if isinstance(record, dict) and record.get("error"):  # the coordinator could not make one
        not_verified.append(f"the AK lives in the TPM of a certified endorsement key (the "
                            f"coordinator made no challenge: {str(record['error'])[:200]})")
        return fail("activation", f"EK roots given, but the coordinator made no credential "
                    f"challenge: {str(record['error'])[:200]}") if wanted else ""
    try:
        ek_der = base64.b64decode(str(evidence["ekCertificate"]), validate=True)
        ak_public = credential_.parse_public(
            base64.b64decode(str(evidence["akPublic"]), validate=True))
    except (KeyError, ValueError, InputError) as exc:
        return fail("malformed", f"endorsement: expected the EK certificate and the AK's "
                    f"public area, found {exc}")
    if ak_public.key.public_numbers() != ak.public_numbers():
        return fail("activation", "AK public area: not the key that signed the quote")
    if ak_public.attributes & credential_.AK_ATTRIBUTES != credential_.AK_ATTRIBUTES \
            or ak_public.attributes & credential_.DECRYPT:
        return fail("activation", f"AK attributes {ak_public.attributes:#x}: expected fixedTPM, "
                    "fixedParent, sensitiveDataOrigin, restricted and sign, not decrypt (a key "
                    "that could leave its TPM or sign outside data proves nothing)")
    claims["akName"] = ak_public.name.hex()
    claims["ekSha256"] = "sha256:" + hashlib.sha256(ek_der).hexdigest()
    try:
        opened = credential_.open_challenge(appraisal.challenge, ek_der, ak_public.name)
    except InputError as exc:
        return fail("activation", str(exc))
    activation = evidence.get("activation")
    answer = activation.get("mac") if isinstance(activation, dict) else None
    if not isinstance(answer, str):
        why = activation.get("error") if isinstance(activation, dict) else None
        return fail("activation", "credential activation: the node returned no answer"
                    + (f" ({str(why)[:200]})" if why else ""))
    expected = credential_.activation_mac(opened.credential, attest)
    if not hmac.compare_digest(answer, expected.hex()):
        return fail("activation", "credential activation: the node's answer is not the "
                    "secret the challenge wrapped for this EK and AK (the AK is not in that "
                    "EK's TPM)")
    verified += ["AK public area: a restricted signing key fixed to its TPM (fixedTPM, "
                 "fixedParent, sensitiveDataOrigin), the key that signed the quote",
                 "credential challenge re-made from its opening for the EK certificate's key "
                 "and the AK's name",
                 "credential activated: the node's HMAC over the quote with the unwrapped "
                 "secret"]
    not_verified.append("that the coordinator kept the challenge's secret until the node "
                        "answered (the coordinator's word, as its signature on the bundle)")
    claims["akActivated"] = True
    if not wanted:
        not_verified.append("the EK certificate chain (no EK roots given: --ek-roots)")
        return ""
    try:
        leaf = pki.load_certificates(ek_der)[0]
        chain_pem = evidence.get("ekChain")
        intermediates = pki.load_certificates(str(chain_pem).encode()) if chain_pem else []
        roots = [cert for pem in appraisal.ek_roots for cert in pki.load_certificates(pem)]
    except InputError as exc:
        return fail("malformed", f"EK certificate chain: {exc}")
    not_ek = ek_profile(leaf)
    if not_ek:
        return fail("certificate chain", f"EK certificate {leaf.subject.rfc4514_string()}: "
                    f"{not_ek}")
    try:
        crls = [crl for pem in (*appraisal.ek_roots, str(evidence.get("ekCrls") or "").encode())
                for crl in load_crls(pem)]
    except InputError as exc:
        return fail("malformed", f"EK CRLs: {exc}")
    at = appraisal.when()
    errors = []
    for root in roots:
        try:
            chain = pki.verify_chain(leaf, intermediates, root, at)
        except InputError as exc:
            errors.append(str(exc))
            continue
        label = pki.root_label(f"TPM EK root {root.subject.rfc4514_string()}", root)
        try:
            checked, unchecked = _revocation(chain, crls, at)
        except InputError as exc:
            return fail("certificate chain", f"EK certificate chain up to {label}: {exc}")
        verified.append(f"EK certificate chain up to {label}")
        verified.extend(checked)
        not_verified.extend(unchecked)
        claims["ekIssuer"] = leaf.issuer.rfc4514_string()
        return label
    return fail("certificate chain", "EK certificate: no valid chain to any of the "
                f"{len(roots)} EK root(s) given ({'; '.join(errors)[:400]})")


_EK_CERTIFICATE = x509.ObjectIdentifier("2.23.133.8.1")  # TCG EK Credential Profile EKU
_TPM_NAMES = {x509.ObjectIdentifier(f"2.23.133.2.{n}") for n in (1, 2, 3)}  # manufacturer,
# model, version in the subject alternative name's directoryName


def ek_profile(cert: x509.Certificate) -> str:
    """Why ``cert`` is no TPM EK certificate (TCG EK Credential Profile), "" when it is one.

    A chain to an EK root proves who issued a certificate, not what it certifies: a TLS
    certificate from the same CA would let its key holder answer the credential
    challenge in software. An EK certificate is no CA, may encipher (RSA) or agree keys
    (ECC), and says it is one: the EK certificate extended key usage, or the TPM's
    manufacturer, model and version in its subject alternative name.
    """
    def value(kind: type[x509.ExtensionType]) -> Any:
        try:
            return cert.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    constraints, usage = value(x509.BasicConstraints), value(x509.KeyUsage)
    if constraints is not None and constraints.ca:
        return "expected an end-entity EK certificate, found a CA certificate"
    if usage is not None and not (usage.key_encipherment or usage.key_agreement):
        return "expected a key usage with keyEncipherment or keyAgreement (an EK decrypts), " \
               "found neither"
    ekus = set(value(x509.ExtendedKeyUsage) or ())
    san = value(x509.SubjectAlternativeName)
    names = {attribute.oid for directory in san.get_values_for_type(x509.DirectoryName)
             for attribute in directory} if san is not None else set()
    if _EK_CERTIFICATE in ekus or names >= _TPM_NAMES:
        return ""
    return ("expected the EK certificate extended key usage (2.23.133.8.1) or the TPM's "
            "manufacturer, model and version (2.23.133.2.1-3) in the subject alternative "
            "name, found neither: not an EK certificate")


_CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def load_crls(pem: bytes) -> list[x509.CertificateRevocationList]:
    """The ``X509 CRL`` blocks of a PEM file (one also holding certificates, or none)."""
    try:
        return [x509.load_pem_x509_crl(block) for block in _CRL_PEM.findall(pem)]
    except ValueError as exc:
        raise InputError(f"expected PEM CRLs, found {exc}") from None


def _revocation(chain: list[x509.Certificate], crls: list[x509.CertificateRevocationList],
                at: dt.datetime) -> tuple[list[str], list[str]]:
    """Each certificate below the root against its issuer's CRL: (what was checked, what
    was not). Fail closed: a certificate that names a CRL distribution point needs a
    current CRL of its issuer (given with the EK roots or carried by the node).

    Raises:
        ChainError: revoked, a bad or stale CRL, or a CRL named but not given.
    """
    checked, unchecked = [], []
    for cert, issuer in itertools.pairwise(chain):
        subject = cert.subject.rfc4514_string()
        issued = [crl for crl in crls if crl.issuer == issuer.subject]
        # A delta or partitioned CRL lists only part of what the issuer revoked: it is
        # never the one in force (the newest complete one is), but a certificate an
        # authentic one lists is revoked all the same.
        mine = [crl for crl in issued if not pki.crl_scope(crl, cert)]
        key = issuer.public_key()
        for crl in issued:
            if crl in mine or crl.get_revoked_certificate_by_serial_number(
                    cert.serial_number) is None:
                continue
            if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) \
                    and crl.is_signature_valid(key):
                raise pki.ChainError(f"{subject} (serial {cert.serial_number:#x}) is revoked "
                                     f"({pki.crl_scope(crl, cert)} of "
                                     f"{issuer.subject.rfc4514_string()} lists it)")
        if not mine:
            try:
                points = cert.extensions.get_extension_for_class(
                    x509.CRLDistributionPoints).value
            except x509.ExtensionNotFound:
                unchecked.append(f"revocation of {subject} (no CRL distribution point, no "
                                 "CRL of its issuer given)")
                continue
            except ValueError as exc:
                raise pki.ChainError(f"{subject}: malformed extensions ({exc})") from None
            uris = [str(name.value) for point in points for name in point.full_name or ()]
            raise pki.ChainError(
                f"{subject} names a CRL distribution point ({', '.join(uris)[:200] or '?'}), "
                f"but no CRL of {issuer.subject.rfc4514_string()} was given (add it to an "
                f"--ek-roots PEM file, or carry it: {EK_CRLS_ENV})")
        # The newest CRL is the one in force. One issued after the time judged at (a
        # bundle re-checked later with today's CRL) is judged as of its own issue: it
        # still must be the issuer's, and listing the certificate still fails.
        current = max(mine, key=lambda c: c.last_update_utc)
        later = current.last_update_utc > at
        pki.check_crl(current.public_bytes(serialization.Encoding.DER), issuer, [cert],
                      current.last_update_utc if later else at)
        checked.append(f"{subject} not revoked (CRL of {issuer.subject.rfc4514_string()} "
                       f"of {current.last_update_utc.isoformat()}"
                       + (", issued after the time judged at)" if later else ")"))
    return checked, unchecked


def available() -> str | None:
    """None when a TPM can be used, else why not."""
    if shutil.which("tpm2_quote") is None:
        return "tpm2-tools not installed"
    if os.environ.get("TPM2TOOLS_TCTI") or Path("/dev/tpmrm0").exists():
        return None
    return "no TPM: /dev/tpmrm0 absent and TPM2TOOLS_TCTI unset"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InputError(f"TPM: expected {name} (tpm2-tools) on PATH, found none")
    return path


def _run(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([_tool(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise InputError(f"{args[0]}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return done


def _flush(cwd: Path) -> None:
    """Free transient objects and sessions: a TPM has only a few slots for each."""
    for kind in ("-t", "-l", "-s"):
        _run(["tpm2_flushcontext", kind], cwd, check=False)


def _enrolled_ak(cwd: Path) -> bool:
    """Write the enrolled AK's public key to ``ak.pem``; False when none is enrolled."""
    done = _run(["tpm2_readpublic", "-c", f"{AK_HANDLE:#x}", "-f", "pem", "-o", "ak.pem"], cwd,
                check=False)
    return done.returncode == 0 and (cwd / "ak.pem").exists()


def _create_ak(cwd: Path) -> None:
    """A new ECDSA P-256 AK under the EK: ``ak.ctx`` (transient) and ``ak.pem``."""
    _run(["tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"], cwd)
    _run(["tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256",
          "-s", "ecdsa", "-u", "ak.pem", "-f", "pem", "-n", "ak.name"], cwd)


def enroll() -> tuple[str, bool]:
    """Make this TPM's AK persistent once; returns (fingerprint, whether it was created now).

    Enrolling again returns the same fingerprint: the AK at :data:`AK_HANDLE` is kept.

    Raises:
        InputError: no TPM, or a tpm2-tools command failed.
    """
    why = available()
    if why is not None:
        raise InputError(f"TPM: {why}")
    with tempfile.TemporaryDirectory(prefix="slsa-tpm-") as tmp:
        cwd = Path(tmp)
        _flush(cwd)
        try:
            if _enrolled_ak(cwd):
                return ak_fingerprint((cwd / "ak.pem").read_bytes()), False
            _create_ak(cwd)
            _flush(cwd)
            _run(["tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", f"{AK_HANDLE:#x}"], cwd)
        finally:
            _flush(cwd)
        return ak_fingerprint((cwd / "ak.pem").read_bytes()), True


def _ek_certificate(cwd: Path) -> bytes | None:
    """The EK certificate (DER) from its NV index: RSA first (the EK activation uses)."""
    for index in _EK_CERTS:
        path = cwd / f"ek-{index}.der"
        if _run(["tpm2_nvread", index, "-o", path.name], cwd, check=False).returncode == 0 \
                and path.exists():
            return path.read_bytes()
    return None


def identity() -> tuple[bytes, bytes] | None:
    """(EK certificate DER, enrolled AK's TPM2B_PUBLIC) for a credential challenge: the
    RSA EK's certificate, else the ECC EK's; None when there is no TPM, no enrolled AK
    or no EK certificate."""
    if available() is not None:
        return None
    with tempfile.TemporaryDirectory(prefix="slsa-tpm-") as tmp:
        cwd = Path(tmp)
        try:
            _flush(cwd)
            if _run(["tpm2_readpublic", "-c", f"{AK_HANDLE:#x}", "-o", "ak.pub"], cwd,
                    check=False).returncode != 0:
                return None
            ek = _ek_certificate(cwd)
            return None if ek is None else (ek, (cwd / "ak.pub").read_bytes())
        except InputError:
            return None


def _ek_algorithm(cwd: Path) -> str:
    """``rsa``, ``ecc`` (P-256) or ``ecc384``: the EK whose certificate :func:`identity`
    sends."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec as ec_

    der = _ek_certificate(cwd)
    if der is None:
        raise InputError("TPM: expected an EK certificate in NV, found none")
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as exc:
        raise InputError(f"EK certificate: expected DER, found {exc}") from None
    if isinstance(key, ec_.EllipticCurvePublicKey):
        return "ecc384" if isinstance(key.curve, ec_.SECP384R1) else "ecc"
    return "rsa"


def _activate(cwd: Path, challenge: bytes) -> bytes:
    """TPM2_ActivateCredential of the coordinator's challenge by the EK whose certificate
    was sent (RSA, else ECC) and the enrolled AK; returns the unwrapped secret. Raises
    InputError when the TPM refuses (another TPM's EK, another AK)."""
    (cwd / "cred.bin").write_bytes(challenge)
    algorithm = _ek_algorithm(cwd)
    ek = f"{_EK_HANDLES[algorithm]:#x}"
    public = _run(["tpm2_readpublic", "-c", ek], cwd, check=False)
    if public.returncode != 0:
        if algorithm == "ecc384":
            raise InputError(f"TPM: expected the P-384 EK at {ek} (template H-3), found none")
        # the TCG default template: L-1 (RSA 2048) or L-2 (ECC P-256)
        _run(["tpm2_createek", "-G", algorithm, "-c", f"ek-{algorithm}.ctx"], cwd)
        ek = f"ek-{algorithm}.ctx"
    elif "userwithauth" in public.stdout.split("attributes:")[-1].split("\n", 3)[1]:
        # an EK whose user role takes its (empty) auth value: no policy session
        _run(["tpm2_activatecredential", "-c", f"{AK_HANDLE:#x}", "-C", ek, "-i", "cred.bin",
              "-o", "secret.bin"], cwd)
        return (cwd / "secret.bin").read_bytes()
    _run(["tpm2_startauthsession", "--policy-session", "-S", "session.ctx"], cwd)
    try:
        _run(["tpm2_policysecret", "-S", "session.ctx", "-c", "e"], cwd)
        _run(["tpm2_activatecredential", "-c", f"{AK_HANDLE:#x}", "-C", ek, "-i", "cred.bin",
              "-o", "secret.bin", "-P", "session:session.ctx"], cwd)
    finally:
        _run(["tpm2_flushcontext", "session.ctx"], cwd, check=False)
    return (cwd / "secret.bin").read_bytes()


def collect(nonce: bytes, job_id: str, node_id: str, *, challenge: bytes = b"") -> bytes:
    """Quote PCRs 0-7 with the job binding; returns the evidence blob (JSON).

    The enrolled AK signs when there is one (``akEnrolled``), else a throwaway AK.
    With ``challenge`` (the coordinator's credential, ``tpm2_makecredential`` format)
    the enrolled AK and the EK (RSA, else ECC) activate it, and the evidence carries an HMAC with
    the unwrapped secret over the quote (``activation``); a TPM that cannot activate
    it says why there, and the quote is still recorded.

    Raises:
        InputError: no TPM, or a tpm2-tools command failed.
    """
    why = available()
    if why is not None:
        raise InputError(f"TPM: {why}")
    qualifying = report_data(nonce, job_id, node_id).hex()
    selection = "sha256:" + ",".join(map(str, PCRS))
    with tempfile.TemporaryDirectory(prefix="slsa-tpm-") as tmp:
        cwd = Path(tmp)
        _flush(cwd)
        secret: bytes | None = None
        activation: dict[str, str] | None = None
        try:
            enrolled = _enrolled_ak(cwd)
            signer = f"{AK_HANDLE:#x}" if enrolled else "ak.ctx"
            if not enrolled:
                _create_ak(cwd)
            elif challenge:
                try:
                    secret = _activate(cwd, challenge)
                except InputError as exc:
                    activation = {"error": str(exc)[:300]}
                _flush(cwd)
            if enrolled:
                _run(["tpm2_readpublic", "-c", signer, "-o", "ak.pub"], cwd)
            _flush(cwd)
            _run(["tpm2_quote", "-c", signer, "-l", selection, "-q", qualifying,
                  "-m", "quote.msg", "-s", "quote.sig", "-o", "pcrs.bin", "-F", "values",
                  "-g", "sha256"], cwd)
        finally:
            _flush(cwd)
        values = (cwd / "pcrs.bin").read_bytes()
        pcrs = {str(p): values[i * 32:(i + 1) * 32].hex() for i, p in enumerate(PCRS)}
        ek_der = _ek_certificate(cwd)
        attest = (cwd / "quote.msg").read_bytes()
        if secret is not None:
            activation = {"mac": credential_.activation_mac(secret, attest).hex()}
        evidence: dict[str, object] = {
            "format": FORMAT,
            "attest": base64.b64encode(attest).decode(),
            "signature": base64.b64encode((cwd / "quote.sig").read_bytes()).decode(),
            "akPublicPem": (cwd / "ak.pem").read_text(),
            "akEnrolled": enrolled,
            "pcrs": {"sha256": pcrs},
            "ekCertificate": base64.b64encode(ek_der).decode() if ek_der else None,
        }
        if enrolled:
            evidence["akPublic"] = base64.b64encode((cwd / "ak.pub").read_bytes()).decode()
        if activation is not None:
            evidence["activation"] = activation
        _attach_event_log(evidence)
        for variable, key in ((EK_CHAIN_ENV, "ekChain"), (EK_CRLS_ENV, "ekCrls")):
            path = os.environ.get(variable)
            if path:
                try:
                    evidence[key] = Path(path).read_text()
                except OSError as exc:
                    raise InputError(f"{variable}: expected a readable PEM file at {path}, "
                                     f"found {exc}") from None
    return json.dumps(evidence, sort_keys=True).encode()


def _attach_event_log(evidence: dict[str, object]) -> None:
    """The boot event log (``eventLog``, base64) when the platform has one; a log that
    cannot be read is said why (``eventLogError``): the quote is still sent."""
    configured = os.environ.get(EVENT_LOG_ENV)
    path = Path(configured or EVENT_LOG_PATH)
    if not configured and not path.exists():
        return
    try:
        with path.open("rb") as file:  # securityfs reports no size: read to the cap
            data = file.read(MAX_EVENT_LOG_BYTES + 1)
    except OSError as exc:
        evidence["eventLogError"] = f"{path}: {exc}"[:300]
        return
    if len(data) > MAX_EVENT_LOG_BYTES:
        evidence["eventLogError"] = (f"{path}: expected at most {MAX_EVENT_LOG_BYTES} bytes, "
                                     "found more")
        return
    evidence["eventLog"] = base64.b64encode(data).decode()


class TpmAttester:
    """The ``tpm`` attester (:class:`~slsa_dist.attest.Attester`)."""

    name = "tpm"
    kinds = ("tpm",)
    proves = ("the quote answers this job's nonce for this node, signed by an AK the "
              "policy trusts, or one activated by an EK certified up to a given EK root; "
              "PCRs 0-7 as quoted, and the boot event log's events when it replays to them")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        return self.name, collect(nonce, job_id, node_id, challenge=challenge)

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        del kind
        return verify(blob, nonce, job_id, node_id, appraisal=appraisal)
