"""Reference values: what the measured registers of verified evidence must hold.

A reference-value file (``slsa-dist verify --reference-values FILE``, JSON or YAML) names,
per evidence kind, the registers a node's evidence must carry and the values each may
hold (one value, or a list of accepted values)::

    {"version": 1,
     "tpm": {"pcrs": {"0": "3d45...", "7": ["b5a1...", "65ca..."]},
             "events": {"4": ["a5ce...", "4f2c..."],
                        "7": {"EV_EFI_VARIABLE_DRIVER_CONFIG": ["ccfc..."],
                              "EV_SEPARATOR": ["df3f..."], "*": ["..."]}}},
     "tdx": {"mrtd": "...", "rtmr0": "...", "rtmr1": "...", "rtmr2": "...", "rtmr3": "...",
             "debug": false, "minTcbEvaluationDataNumber": 17},
     "snp": {"measurement": "...", "hostData": "...", "policy": {"debug": false}},
     "nvidia-cc": {"measurements": {"2": "8048..."}, "rims": "matched",
                   "driverVersion": ["550.90.07"], "vbiosVersion": "96.00.9f.00.01"}}

Values are compared with what the evidence *proves*, never with what a node reports of
itself: :func:`appraise` is given only a verdict already ``verified`` (and the caller
holds that verdict to its root or trusted key first). Those are the claims each verifier
read out of the signed structure: the TD report body of a quote signed by a PCK chained
to Intel's root; the SNP report signed by a VCEK chained to AMD's ARK; the TPM PCR values
that hash to the digest in a quote signed by the AK; the SPDM measurement blocks in a
response signed by the GPU's attestation key (and for ``rims: matched``, the outcome of
comparing them with RIMs verified up to NVIDIA's pinned RIM root). A register the file
names that the evidence does not carry fails (fail closed), and so does a name this
module does not know: a typo is not a register nobody checks.

TPM boot events (Keylime-style): ``tpm.events`` names, per PCR, the SHA-256 digests its
events may have, as one list for every event of that PCR or as lists by event type
(``"*"``: any type not listed; a type neither listed nor covered by ``"*"`` fails).
Only events proven by the quote count: the evidence's boot event log must replay to
the quoted PCRs (``_tpm``), and a PCR outside the quote cannot be named. A mismatch
names the PCR, the event's index in the log and its type. When the log does not
replay to the quote at all (the evidence failed: ``event log``), :func:`appraise`
adds to that failure the events the reference values do not allow: the likely
culprits, though none of the log's events is then proven.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from slsa_dist.attest._eventlog import TYPES_BY_NAME
from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.errors import InputError

__all__ = ["KINDS", "ReferenceValues", "appraise"]

# The kinds reference values can be given for, and per kind its registers:
# the file's name (case-insensitive) -> (the claim's name, its name in messages, bytes).
_TDX = {name.lower(): (name, label, 48) for name, label in (
    ("mrTd", "MRTD"), ("rtmr0", "RTMR0"), ("rtmr1", "RTMR1"), ("rtmr2", "RTMR2"),
    ("rtmr3", "RTMR3"), ("mrConfigId", "MRCONFIGID"), ("mrOwner", "MROWNER"),
    ("mrOwnerConfig", "MROWNERCONFIG"), ("mrSeam", "MRSEAM"),
    ("mrSignerSeam", "MRSIGNERSEAM"), ("mrServiceTd", "MRSERVICETD"))}
_SNP = {name.lower(): (name, label, size) for name, label, size in (
    ("measurement", "measurement", 48), ("hostData", "HOST_DATA", 32),
    ("idKeyDigest", "ID_KEY_DIGEST", 48))}
# SNP guest policy fields: booleans and the minimum ABI version, as _snp decodes them.
_SNP_POLICY = {"debug": bool, "smt": bool, "migrateMa": bool, "singleSocket": bool,
               "abiMajor": int, "abiMinor": int}
KINDS = ("tpm", "tdx", "snp", "nvidia-cc")
# TDX: the least TCB evaluation data number the collateral may have (a floor)
_MIN_EVALUATION = "min.tcbEvaluationDataNumber"
# nvidia-cc beyond measurement indices: the outcome of the RIM comparison (only "matched":
# the verdict compared every active golden value of both RIMs) and the driver and VBIOS
# versions the signed report states (each a string or a list of accepted ones)
_NVIDIA = {"rims": "driver and VBIOS RIM comparison", "driverVersion": "driver version",
           "vbiosVersion": "VBIOS version"}


def _hex_values(value: Any, size: int | None, where: str) -> tuple[str, ...]:
    """A hex string or a non-empty list of them, each ``size`` bytes, lowercased."""
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        text = item.lower().removeprefix("0x") if isinstance(item, str) else None
        if not text or len(text) % 2 or text.strip("0123456789abcdef") or (
                size is not None and len(text) != 2 * size):
            wanted = f"{size} bytes of hex" if size else "hex"
            raise InputError(f"reference values {where}: expected {wanted} (or a list of "
                             f"them), found {item!r:.120}")
        out.append(text)
    if not out:
        raise InputError(f"reference values {where}: expected at least one value, found []")
    return tuple(out)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict) or not value:
        raise InputError(f"reference values {where}: expected a non-empty object, found "
                         f"{value!r:.80}")
    return value


@dataclass(frozen=True)
class ReferenceValues:
    """Expected register values per evidence kind (see the module's docstring).

    ``registers`` maps a kind to {claim name: accepted values}: for ``tpm`` the
    SHA-256 PCR index (``"7"``), for ``tdx`` ``mrTd``, ``rtmr0``..., for ``snp``
    ``measurement``, ``hostData``, ``idKeyDigest`` and ``policy.<field>``, for
    ``nvidia-cc`` the SPDM measurement index. Build it with :meth:`from_json` or
    :meth:`load`, which check every name and value.
    """

    registers: Mapping[str, Mapping[str, tuple[Any, ...]]]
    source: str = field(default="", compare=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The evidence kinds this names registers of, in :data:`KINDS` order."""
        return tuple(kind for kind in KINDS if kind in self.registers)

    @classmethod
    def from_json(cls, data: Any, *, source: str = "") -> ReferenceValues:
        """From the parsed file. Raises :class:`InputError` naming what is wrong."""
        where = f"{source}: " if source else ""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise InputError(f"reference values {where}expected an object with "
                             f"\"version\": 1, found "
                             f"{data.get('version') if isinstance(data, dict) else data!r:.40}")
        unknown = sorted(set(data) - {"version", *KINDS})
        if unknown:
            raise InputError(f"reference values {where}expected only {', '.join(KINDS)} "
                             f"(and version), found {', '.join(map(repr, unknown))}")
        registers: dict[str, dict[str, tuple[Any, ...]]] = {}
        for kind in KINDS:
            if kind in data:
                registers[kind] = _parse_kind(kind, _object(data[kind], f"{where}{kind}"),
                                              f"{where}{kind}")
        if not registers:
            raise InputError(f"reference values {where}expected registers of at least one "
                             f"of {', '.join(KINDS)}, found none")
        return cls(registers=registers, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceValues:
        """Read a JSON (or, with PyYAML, ``.yaml``/``.yml``) file. Raises InputError."""
        file = Path(path)
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise InputError(f"reference values: expected a readable file at {file}, found "
                             f"{exc}") from None
        data: Any
        if file.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError("reference values: YAML needs PyYAML (pip install pyyaml); "
                                 "or write them as JSON") from None
            try:
                data = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise InputError(f"reference values {file}: expected YAML, found "
                                 f"{exc}") from None
        else:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise InputError(f"reference values {file}: expected JSON, found "
                                 f"{exc}") from None
        return cls.from_json(data, source=str(file))

    def check(self, kind: str, claims: Mapping[str, Any]) -> list[str]:
        """Each register of ``kind`` whose proven value is not an accepted one (or that
        the evidence does not carry), as ``REGISTER: expected ..., found ...``."""
        wanted = self.registers.get(kind, {})
        if kind == "nvidia-cc":
            gpus = claims.get("gpus")
            if not isinstance(gpus, list) or not gpus:
                return ["GPU measurements: expected SPDM measurements of at least one GPU, "
                        "found none in the evidence"]
            return [f"GPU {i} {problem}" for i, gpu in enumerate(gpus)
                    for problem in _compare(wanted, _nvidia_claims(gpu), _label(kind))]
        if kind == "tpm":
            registers = {k: v for k, v in wanted.items() if not k.startswith("events.")}
            return (_compare(registers, _flat(kind, claims), _label(kind))
                    + _check_events(wanted, claims))
        return _compare(wanted, _flat(kind, claims), _label(kind))


def _check_events(wanted: Mapping[str, tuple[Any, ...]], claims: Mapping[str, Any]
                  ) -> list[str]:
    """Each proven boot event of a PCR the reference values name whose digest they do
    not allow, as ``PCR p event i (TYPE): ...``; fail closed without a proven log."""
    named = {int(k.removeprefix("events.")): dict(v) for k, v in wanted.items()
             if k.startswith("events.")}
    if not named:
        return []
    pcrs = {int(p) for p in claims.get("pcrs", {})} if isinstance(claims.get("pcrs"), dict) \
        else set()
    events = claims.get("events")
    if not isinstance(events, list):
        return [f"events of PCR {', '.join(map(str, sorted(named)))}: expected a boot event "
                "log in the evidence that replays to the quote, found none"]
    problems = []
    for pcr, allowed in sorted(named.items()):
        if pcr not in pcrs:
            problems.append(f"events of PCR {pcr}: expected PCR {pcr} in the quote, found it "
                            "not quoted (its events are not proven)")
            continue
        for event in events:
            if not isinstance(event, (list, tuple)) or len(event) != 4 or event[1] != pcr:
                continue
            index, _, kind, digest = event
            accepted = allowed.get(kind, allowed.get("*"))
            if accepted is None:
                problems.append(f"PCR {pcr} event {index} ({kind}): expected an event type "
                                f"among {', '.join(sorted(allowed))}, found {kind}")
            elif digest not in accepted:
                problems.append(f"PCR {pcr} event {index} ({kind}): expected a digest among "
                                f"the {len(accepted)} allowed, found {digest}")
    return problems


def _parse_events(spec: Any, where: str) -> dict[str, tuple[Any, ...]]:
    """``{"4": [digests]}`` or ``{"7": {"EV_...": [digests], "*": [...]}}``."""
    out: dict[str, tuple[Any, ...]] = {}
    for index, value in _object(spec, where).items():
        if not str(index).isdigit() or not 0 <= int(index) <= 23:
            raise InputError(f"reference values {where}: expected PCR indices 0-23, found "
                             f"{index!r}")
        if isinstance(value, dict):
            by_type = []
            for kind, digests in _object(value, f"{where}.{index}").items():
                if kind != "*" and kind not in TYPES_BY_NAME:
                    raise InputError(f"reference values {where}.{index}: expected event "
                                     f"types (EV_...) or \"*\", found {kind!r}")
                by_type.append((kind, frozenset(_hex_values(digests, 32,
                                                            f"{where}.{index}.{kind}"))))
            out[f"events.{int(index)}"] = tuple(by_type)
        else:
            out[f"events.{int(index)}"] = (("*", frozenset(_hex_values(
                value, 32, f"{where}.{index}"))),)
    return out


def _parse_kind(kind: str, spec: Mapping[str, Any], where: str) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    if kind == "tpm":
        unknown = sorted(set(spec) - {"pcrs", "events"})
        if unknown:
            raise InputError(f"reference values {where}: expected only \"pcrs\" (SHA-256 PCR "
                             f"values by index) and \"events\" (boot event digests by PCR), "
                             f"found {', '.join(map(repr, unknown))}")
        if "events" in spec:
            out.update(_parse_events(spec["events"], f"{where}.events"))
        # "pcrs" is required unless "events" is given
        pcr_values = _object(spec.get("pcrs"), f"{where}.pcrs") \
            if "pcrs" in spec or "events" not in spec else {}
        for index, value in pcr_values.items():
            if not str(index).isdigit() or not 0 <= int(index) <= 23:
                raise InputError(f"reference values {where}.pcrs: expected PCR indices 0-23, "
                                 f"found {index!r}")
            out[str(int(index))] = _hex_values(value, 32, f"{where}.pcrs.{index}")
    elif kind == "nvidia-cc":
        unknown = sorted(set(spec) - {"measurements", *_NVIDIA})
        if unknown:
            raise InputError(f"reference values {where}: expected only \"measurements\" (SPDM "
                             f"measurement values by index), \"rims\", \"driverVersion\" and "
                             f"\"vbiosVersion\", found {', '.join(map(repr, unknown))}")
        if spec.get("rims", "matched") != "matched":
            raise InputError(f"reference values {where}.rims: expected \"matched\" (every "
                             f"GPU's measurements held to its verified RIMs), found "
                             f"{spec['rims']!r:.40}")
        for key in _NVIDIA:
            if key in spec:
                out[key] = _strings(spec[key], f"{where}.{key}")
        if "measurements" not in spec:
            return out
        for index, value in _object(spec.get("measurements"),
                                    f"{where}.measurements").items():
            if not str(index).isdigit() or not 1 <= int(index) <= 254:
                raise InputError(f"reference values {where}.measurements: expected SPDM "
                                 f"measurement indices 1-254, found {index!r}")
            out[str(int(index))] = _hex_values(value, None, f"{where}.measurements.{index}")
    else:
        names = _TDX if kind == "tdx" else _SNP
        for key, value in spec.items():
            if kind == "tdx" and key == "minTcbEvaluationDataNumber":
                if type(value) is not int or value < 0:
                    raise InputError(f"reference values {where}.{key}: expected a "
                                     f"non-negative integer, found {value!r:.40}")
                out[_MIN_EVALUATION] = (value,)
                continue
            if kind == "tdx" and key == "debug":
                if type(value) is not bool:
                    raise InputError(f"reference values {where}.debug: expected a bool, "
                                     f"found {value!r:.40}")
                out["debug"] = (value,)
                continue
            if kind == "snp" and key == "policy":
                for bit, expected in _object(value, f"{where}.policy").items():
                    typ = _SNP_POLICY.get(bit)
                    if typ is None:
                        raise InputError(f"reference values {where}.policy: expected one of "
                                         f"{', '.join(_SNP_POLICY)}, found {bit!r}")
                    if type(expected) is not typ:
                        raise InputError(f"reference values {where}.policy.{bit}: expected "
                                         f"a {typ.__name__}, found {expected!r:.40}")
                    out[f"policy.{bit}"] = (expected,)
                continue
            known = names.get(str(key).lower())
            if known is None:
                more = " and policy" if kind == "snp" else ", debug, minTcbEvaluationDataNumber"
                raise InputError(f"reference values {where}: expected registers among "
                                 f"{', '.join(label for _, label, _ in names.values())}"
                                 f"{more}, found {key!r}")
            out[known[0]] = _hex_values(value, known[2], f"{where}.{key}")
    return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise InputError(f"reference values {where}: expected a string or a non-empty list "
                         f"of them, found {value!r:.80}")
    return tuple(v.lower() for v in values)


def _label(kind: str) -> Mapping[str, str]:
    if kind == "tpm":
        return {str(i): f"PCR {i}" for i in range(24)} | {
            f"events.{i}": f"events of PCR {i}" for i in range(24)}
    if kind == "nvidia-cc":
        return {str(i): f"measurement {i}" for i in range(1, 255)} | _NVIDIA
    if kind == "tdx":
        return {claim: label for claim, label, _ in _TDX.values()} | {
            "debug": "TD_ATTRIBUTES.DEBUG",
            _MIN_EVALUATION: "TCB evaluation data number (TCB info and QE identity)"}
    return {claim: label for claim, label, _ in _SNP.values()} | {
        f"policy.{bit}": f"policy.{bit}" for bit in _SNP_POLICY}


def _flat(kind: str, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The claims a verifier proved, by the names the reference values use."""
    if kind == "tpm":
        pcrs = claims.get("pcrs")
        return {str(k): str(v).lower() for k, v in pcrs.items()} \
            if isinstance(pcrs, dict) else {}
    out = {k: str(v).lower() for k, v in claims.items() if isinstance(v, str)}
    policy = claims.get("policy")
    if kind == "snp" and isinstance(policy, dict):
        out.update({f"policy.{k}": v for k, v in policy.items() if k in _SNP_POLICY})
    if kind == "tdx" and isinstance(claims.get("debug"), bool):
        out["debug"] = claims["debug"]  # TD_ATTRIBUTES.DEBUG, signed with the TD report
    if kind == "tdx" and type(claims.get("tcbEvaluationDataNumber")) is int:
        out[_MIN_EVALUATION] = claims["tcbEvaluationDataNumber"]  # of Intel-signed collateral
    return out


def _nvidia_claims(gpu: Any) -> dict[str, Any]:
    if not isinstance(gpu, dict):
        return {}
    found = gpu.get("measurements")
    out = {str(k): str(v).lower() for k, v in found.items()} if isinstance(found, dict) else {}
    out.update({k: str(gpu[k]).lower() for k in ("driverVersion", "vbiosVersion") if k in gpu})
    rims = gpu.get("rims")
    if isinstance(rims, dict) and all(isinstance(rims.get(c), dict) and rims[c].get("matched")
                                      is True for c in ("driver", "vbios")):
        out["rims"] = "matched"  # both RIMs verified and every active value compared equal
    return out


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _compare(wanted: Mapping[str, tuple[Any, ...]], found: Mapping[str, Any],
             labels: Mapping[str, str]) -> list[str]:
    problems = []
    for name, accepted in wanted.items():
        label = labels.get(name, name)
        expected = _show(accepted[0]) if len(accepted) == 1 else \
            "one of " + ", ".join(map(_show, accepted))
        if name not in found:
            problems.append(f"{label}: expected {expected}, found no such register in the "
                            "evidence")
        elif name == _MIN_EVALUATION:  # a floor, not a value
            if found[name] < accepted[0]:
                problems.append(f"{label}: expected at least {accepted[0]}, found "
                                f"{found[name]} (collateral from before a TCB recovery)")
        elif found[name] not in accepted:
            problems.append(f"{label}: expected {expected}, found {_show(found[name])}")
    return problems


def appraise(verdict: EvidenceVerdict, kind: str,
             reference: ReferenceValues) -> EvidenceVerdict:
    """``verdict`` (verified) held to ``reference``'s registers of ``kind``.

    Matching, the verdict stays verified and says which registers equal their
    reference values; otherwise it fails (``reference values``) naming each register,
    the expected and the found value. A verdict not verified, or a kind the reference
    values do not name, is returned as it is.
    """
    wanted = reference.registers.get(kind)
    if verdict.failure == "event log" and wanted and isinstance(
            verdict.claims.get("events"), list):
        culprits = _check_events(wanted, verdict.claims)
        return replace(verdict, reason=verdict.reason + (
            "; events the reference values do not allow: " + "; ".join(culprits)
            if culprits else ""))
    if verdict.status != "verified" or not wanted:
        return verdict
    labels = _label(kind)
    names = ", ".join(labels.get(name, name) for name in wanted)
    not_verified = (*(n for n in verdict.not_verified if "against reference values" not in n),
                    f"registers other than {names} against reference values (not named in "
                    "them)")
    problems = reference.check(kind, verdict.claims)
    if problems:
        return replace(verdict, status="failed", failure="reference values",
                       reason="reference values: " + "; ".join(problems),
                       not_verified=not_verified)
    return replace(verdict, verified=(*verdict.verified,
                                      f"{names} equal the reference values"),
                   not_verified=not_verified)
