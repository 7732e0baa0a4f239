"""Readable one-screen summaries of provenance bundles (``slsa-dist inspect``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slsa_dist._internal import canonical
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.model._statement import Statement
from slsa_dist.sign._dsse import verify_envelope
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._attestation import job_time, reappraise

__all__ = ["attestation_verdicts", "printable", "summarize_bundle", "summarize_provenance",
           "verdict_line", "verdict_status"]

# C0 controls, DEL and C1 controls: what a terminal acts on instead of showing.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN``: a name, host or
    command line a tenant chose cannot move the cursor, recolour or forge a line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _short(digest: Mapping[str, str]) -> str:
    if not digest:
        return "-"
    algorithm, value = sorted(digest.items())[0]
    return f"{algorithm}:{value[:16]}"


# Columns a wrapped value fills before it goes on on the next line.
_WIDTH = 100


def _wrapped(head: str, text: str, width: int = _WIDTH) -> list[str]:
    """``head`` and ``text`` (a value's canonical JSON, as signed), whole: wrapped after
    a comma where one falls in the line, else at the width; continuation lines are
    indented, and joined back without what indents them they give ``text`` again."""
    indent = " " * len(head)
    room = max(width - len(head), 20)
    lines: list[str] = []
    while len(text) > room:
        cut = text.rfind(",", 0, room) + 1 or room
        lines.append(text[:cut])
        text = text[cut:]
    lines.append(text)
    return [head + lines[0], *(indent + line for line in lines[1:])]


def attestation_verdicts(provenance: Provenance
                         ) -> list[tuple[str, EvidenceRecord, EvidenceVerdict]]:
    """(node, evidence record, this reader's own verdict) for each piece of node evidence:
    re-appraised from the raw evidence in the bundle as of the job's finish (as ``verify``
    does, with no EK roots, trusted AKs or offline collateral), never the coordinator's
    recorded status taken on its word."""
    appraisal = Appraisal(at=job_time(provenance))
    return [(node.node, e, reappraise(e, job_id=provenance.job_id or "", node_id=node.node,
                                      appraisal=appraisal))
            for node in provenance.node_records() for e in node.evidence]


def verdict_status(verdict: EvidenceVerdict, node: str) -> str:
    """``verified``, ``failed (KIND)``, or ``reported by node N`` (the node's own word)."""
    if verdict.status == "reported":
        return f"reported by node {node}"
    return verdict.status + (f" ({verdict.failure})" if verdict.failure else "")


def verdict_line(verdict: EvidenceVerdict, node: str) -> str:
    """A verdict's status, root and as-of time in one phrase."""
    return (f"{verdict_status(verdict, node)}; root: {verdict.root or 'none reached'}; "
            f"as of: {verdict.as_of or '-'}")


def summarize_provenance(provenance: Provenance) -> list[str]:
    """Lines describing job, ranks, nodes, datasets, subjects and attestations."""
    lines: list[str] = []
    meta = provenance.metadata
    ext = provenance.external_parameters
    lines.append(f"job:         {provenance.job_id or '-'} (invocation "
                 f"{provenance.invocation_id or '-'})")
    lines.append(f"builder:     {provenance.builder_id}")
    lines.append(f"buildType:   {provenance.build_type or '-'}")
    if meta.get("startedOn"):
        lines.append(f"ran:         {meta.get('startedOn')} -> {meta.get('finishedOn', '?')}")
    if ext:
        lines.append("parameters:")
        for key in sorted(ext):
            lines.extend(_wrapped(f"  {key}: ", canonical.dumps(ext[key])))
    lines.append(f"subjects ({len(provenance.statement.subjects)}):")
    for subject in provenance.statement.subjects:
        lines.append(f"  {subject.name or '-'}  {_short(subject.digest)}")
    for checkpoint in provenance.checkpoints():
        lines.append(f"  checkpoint {checkpoint.name}: {len(checkpoint.resources)} file(s)")
    deps = provenance.dependencies
    kinds: dict[str, int] = {}
    for dep in deps:
        kind = str(dep.annotations.get("slsadist_kind", "other"))
        kinds[kind] = kinds.get(kind, 0) + 1
    lines.append(f"dependencies ({len(deps)}): "
                 + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"))
    for dep in deps:
        if dep.annotations.get("slsadist_kind") in ("dataset", "model", "input"):
            lines.append(f"  {dep.annotations['slsadist_kind']:<8}{dep.name or dep.uri}  "
                         f"{_short(dep.digest)}")
    ranks = provenance.rank_records()
    world = provenance.world_size
    done = sum(1 for r in ranks if r.completed)
    if ranks or world is not None:
        lines.append(f"ranks:       {done}/{world if world is not None else len(ranks)} "
                     "completed")
    for rank in ranks[:16]:
        shards = rank.shard_count if rank.shards is None else len(rank.shards)
        lines.append(f"  rank {rank.rank}: node {rank.node or '-'}, "
                     f"{len(rank.attempts)} attempt(s), {shards} shard(s) read, "
                     f"{len(rank.files)} file(s) written")
    if len(ranks) > 16:
        lines.append(f"  ... {len(ranks) - 16} more ranks")
    records = provenance.node_records()
    # A launcher that ran no rank and reported nothing of a host (Ray's Train controller,
    # ``ray-controller``) is no node of the job's: listed apart, not counted
    launchers = [n.node for n in records if n.attempts and not any(a.ranks for a in n.attempts)
                 and not n.inventory and not n.evidence]
    nodes = [n for n in records if n.node not in launchers]
    appraised = attestation_verdicts(provenance) if nodes else []
    if nodes:
        lines.append(f"nodes ({len(nodes)}):")
    for node in nodes:
        gpus = node.inventory.get("gpus")
        devices = gpus.get("devices") or [] if isinstance(gpus, Mapping) else []
        verdicts = ", ".join(f"{e.kind}=reported by node {node.node}" if e.status == "reported"
                             else f"{e.kind}={e.status}" for e in node.evidence) or "none"
        seen = f" (connected from {node.connected_from})" if node.connected_from else ""
        lines.append(f"  {node.node}{seen}: {len(devices)} device(s); attestations: {verdicts}")
        for _, evidence, verdict in (v for v in appraised if v[0] == node.node):
            lines.append(f"    {evidence.kind} re-appraised here: "
                         f"{verdict_line(verdict, node.node)}")
            if verdict.reason:
                lines.extend(_wrapped("      reason: ", verdict.reason))
            if verdict.not_verified:
                lines.extend(_wrapped("      not verified: ", "; ".join(verdict.not_verified)))
    if launchers:
        lines.append(f"launchers without ranks ({len(launchers)}): {', '.join(launchers)}")
    completeness = provenance.completeness()
    if completeness is not None:
        gaps = {k: v for k, v in completeness.to_dict().items()
                if v and k not in ("complete", "formatVersion")}
        lines.append("completeness: " + ("complete" if not gaps else json.dumps(gaps)[:300]))
    return lines


def summarize_bundle(path: str | os.PathLike[str], *, key_paths: Sequence[Any] = ()) -> str:
    """Summarize every envelope in a bundle. With keys, the bundle is also verified as
    ``slsa-dist verify`` does with no flags (:func:`~slsa_dist.verify._bundle.check_bundle`,
    the default policy) and its :class:`~slsa_dist.verify._result.Result` is shown first:
    what is summarized below is then the verified provenance, records and all."""
    from slsa_dist.verify._bundle import check_bundle

    keys = [load_verifier(p) for p in key_paths]
    out: list[str] = []
    result = check_bundle(path, keys=keys) if keys else None
    if result is not None:
        out.append("verification (`slsa-dist verify` with no requirement beyond the default):")
        out.extend(f"  {'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in result.checks)
        out.extend(f"  WARN  {note}" for note in result.notes)
        out.append(f"  {'verified' if result.ok else 'NOT verified'}")
    for index, envelope in enumerate(read_bundle(path), start=1):
        header = f"envelope {index}: {envelope.payload_type}"
        if keys:
            try:
                verify_envelope(envelope, keys, payload_type=None)
                header += " (signature verified)"
            except VerificationError as exc:
                header += f" (SIGNATURE INVALID: {exc})"
        else:
            header += " (signature not checked; pass --key)"
        out.append(header)
        try:
            statement = Statement.from_dict(json.loads(envelope.payload))
            provenance = Provenance.from_statement(statement)
        except (ValueError, InputError) as exc:
            out.append(f"  not a provenance this tool reads: {exc}")
            continue
        if result is not None and result.provenance is not None \
                and result.provenance.statement == statement:
            provenance = result.provenance  # verified, with its record ledger
        out.extend("  " + line for line in summarize_provenance(provenance))
    return "\n".join(printable(line) for line in out)
