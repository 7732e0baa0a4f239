"""Assembly: the finalized state into typed records and ONE Statement (or its ledger).

Nothing here changes what was accepted (a sealed rank's details may be read back from
its record store): it judges the claims again with everything in hand
(``collect._authority``: what contradicts a claim accepted earlier is a conflict
now, so arrival order never matters), builds the records (checkpoints, inputs, nodes,
ranks, completeness) and the in-toto Statement with its SLSA Provenance predicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from slsa_dist.collect._ingest import reject
from slsa_dist.collect._state import ENDED, FINAL_ROLES, State, json_bytes
from slsa_dist.digest._descriptors import checkpoint_record
from slsa_dist.digest._manifest import Manifest, Resource, path_order
from slsa_dist.errors import InputError
from slsa_dist.model import _records as records
from slsa_dist.model._ledger import LEDGER_NAME, MEDIA_LEDGER, Ledger, LedgerEntry, order_key
from slsa_dist.model._records import (
    MEDIA_CHECKPOINT,
    MEDIA_COMPLETENESS,
    MEDIA_INPUT,
    MEDIA_NODE,
    MEDIA_RANK,
)
from slsa_dist.model._statement import (
    DEFAULT_BUILDER_ID,
    ProvenanceBuilder,
    ResourceDescriptor,
    Statement,
    invocation_id,
    record_descriptor,
    redact_url,
)

__all__ = ["LedgerWriter", "statement"]

# Writes the records it is handed (in ledger order) and says what it wrote.
LedgerWriter = Callable[[Iterable[LedgerEntry], Mapping[str, Any]], Ledger]

# Shards whose URI names an index space, not data: no input of the job.
INDEX_URI = records.INDEX_URI


def statement(state: State, *, builder_id: str = DEFAULT_BUILDER_ID,
              builder_version: Mapping[str, str] | None = None,
              internal: Mapping[str, Any] | None = None,
              ledger: LedgerWriter | None = None) -> Statement:
    """Merge everything into ONE Statement. Requires a finalized ``state``.

    With ``ledger`` the per-rank, per-node and per-checkpoint records are handed to it
    one at a time, in ledger order, and the statement carries the ledger's descriptor
    (digest, Merkle root, counts) instead of the records: its size no longer grows
    with the job. Without it every record is a byproduct of the statement.
    """
    if state.finalized is None:
        raise reject("FAILED_PRECONDITION", "statement: expected a finalized job, found open")
    reason, finished = state.finalized
    started = state.started or finished
    builder = ProvenanceBuilder(builder_id=builder_id,
                                invocation_id=invocation_id(state.job_id, state.run_id))
    _add_parameters(state, builder, internal)
    builder.set_builder(version=builder_version)
    builder.set_times(started=started, finished=max(finished, started))
    missing_files, conflicts, checkpoints, produced = _add_artifacts(state, builder)
    conflicts.extend(_add_dependencies(state, builder, produced))
    entries = _ledger_entries(state, checkpoints, refs=ledger is not None)
    if ledger is None:
        for entry in entries:
            builder.add_byproduct(record_descriptor(name=entry.name,
                                                    media_type=entry.media_type,
                                                    record=entry.mapping()))
    else:
        written = ledger(entries, _summary(state))
        builder.add_byproduct(ResourceDescriptor(
            name=LEDGER_NAME, uri=written.uri, digest={"sha256": written.sha256},
            media_type=MEDIA_LEDGER, annotations=written.annotations()))
    outputs = bool(_subject_artifacts(state))
    completeness = replace(_completeness(state, reason, missing_files, conflicts),
                           outputs_recorded=outputs)
    builder.add_byproduct(record_descriptor(name="completeness", media_type=MEDIA_COMPLETENESS,
                                            record=completeness.to_dict()))
    if not outputs:
        # A job that wrote nothing still gets a provenance: its subject stands for this
        # run (job, run id, completeness), so no two runs share it, and both the
        # coordinator and verify say out loud that no output was recorded.
        run = {"invocationId": invocation_id(state.job_id, state.run_id),
               "completeness": completeness.to_dict()}
        builder.add_subject(ResourceDescriptor(
            name=f"job/{state.job_id}",
            digest={"sha256": hashlib.sha256(
                json.dumps(run, sort_keys=True).encode()).hexdigest()}))
    return builder.build()


def _ledger_entries(state: State, checkpoints: list[LedgerEntry], *,
                    refs: bool) -> Iterator[LedgerEntry]:
    """Every checkpoint, input, node and rank record, in ledger order, built one at a
    time. With ``refs`` (a ledger) each shard read is written once, as an input, and
    rank records refer to it; without, every rank record names its shards in full."""
    yield from sorted(checkpoints, key=lambda e: order_key(e.name))
    if refs:
        for source in state.inputs:
            yield LedgerEntry(f"input/{source.ref}", MEDIA_INPUT, records.input_dict(
                name=source.name, uri=redact_url(source.uri), digest=source.digest,
                sampler=dict(source.sampler)))
    for name in sorted(state.nodes):
        yield LedgerEntry(f"node/{name}", MEDIA_NODE, state.nodes[name].record().to_dict())
    completed = state.completed_ranks()
    for number in sorted(state.ranks):
        rank = state.ranks[number]
        if refs and rank.sealed is not None \
                and rank.sealed_completed == (number in completed):
            yield LedgerEntry(f"rank/{number}", MEDIA_RANK,
                              raw=state.records.get(rank.sealed))
        else:
            if rank.sealed is not None:  # in full, or sealed before it completed
                state.unseal(rank)
            yield LedgerEntry(f"rank/{number}", MEDIA_RANK,
                              state.rank_record(rank, number in completed, refs=refs))


def _summary(state: State) -> dict[str, Any]:
    """Totals the statement keeps beside a ledger (checked against it by verify)."""
    return {"ranks": len(state.ranks), "completedRanks": len(state.completed_ranks()),
            "nodes": len(state.nodes), "checkpoints": len(state.artifacts),
            "events": state.events}


_COORDINATOR_KEYS = frozenset({"worldSize", "worldSizeRange", "nodes"})


def _add_parameters(state: State, builder: ProvenanceBuilder,
                    internal: Mapping[str, Any] | None) -> None:
    # The world size, its range and the node count are the coordinator's to say (the
    # operator's range, what it observed): a sender's value for them is dropped, or a
    # rank could mark a fixed-size job elastic and switch off verify's departed-node rule.
    external = {k: v for k, v in state.external.items() if k not in _COORDINATOR_KEYS}
    external["worldSize"] = state.final_world_size
    if state.elastic:
        external["worldSizeRange"] = [state.min_world_size, state.world_size]
    # The machines of the job: nodes that hosted a rank or reported their host (inventory,
    # evidence); a launcher that did neither (Ray's Train controller) is no node of it.
    hosting = {a.node for rank in state.ranks.values() for a in rank.attempts.values()}
    machines = [n for n in state.nodes.values()
                if n.node in hosting or n.inventory or n.evidence]
    if machines:
        external["nodes"] = len(machines)
    builder.set_external_parameters(external)
    builder.set_internal_parameters({**state.internal, **(internal or {})})


def _add_artifacts(state: State, builder: ProvenanceBuilder
                   ) -> tuple[list[str], list[str], list[LedgerEntry], set[tuple[str, str]]]:
    """Subjects; returns (missing files, conflicts, checkpoint records, what the job
    wrote: each artifact and each of its files as (name as recorded, SHA-256))."""
    produced: set[tuple[str, str]] = set()
    missing_files: list[str] = []
    checkpoints: list[LedgerEntry] = []
    conflicts = list(state.conflicts)
    subjects = _subject_artifacts(state)
    for artifact in sorted(state.artifacts.values(), key=lambda a: a.order):
        if not artifact.files:
            missing_files.extend(f"{artifact.name}/{p}" for p in sorted(artifact.planned))
            continue
        files = artifact.files
        manifest = Manifest(  # whole files only: the path orders them (Resource.sort_key)
            name=artifact.name, algorithm=artifact.algorithm, method="files",
            resources=tuple(Resource(path=p, digest=files[p][0],
                                     algorithm=artifact.algorithm, size=files[p][1])
                            for p in sorted(files, key=path_order)),
            ignore_paths=(),
        )
        if artifact.algorithm == "sha256":
            produced.add((artifact.name, manifest.identity))
            produced.update((artifact.name if p == "." else f"{artifact.name}/{p}", d)
                           for p, (d, _, _) in files.items())
        # The checkpoint record is built once (the manifest root with it) and its
        # dict too: for a 65,536-rank checkpoint each is a 65,536-file pass.
        record = replace(
            checkpoint_record(manifest, name=artifact.name),
            role="final" if artifact.name in subjects else "intermediate",
            written_by={p: r for p, (_, _, r) in artifact.files.items()},
            expected_files=tuple(sorted(artifact.planned)) if artifact.planned else None)
        missing_files.extend(f"{artifact.name}/{p}"
                             for p in sorted(artifact.planned - artifact.files.keys()))
        conflicts.extend(f"{artifact.name}/{c}" for c in artifact.conflicts)
        # Held as its JSON until the ledger takes it: four 65,536-file records as
        # dicts were a fifth of the coordinator's peak memory.
        checkpoints.append(LedgerEntry(f"checkpoint/{artifact.name}", MEDIA_CHECKPOINT,
                                       raw=json_bytes(record.to_dict())))
        if artifact.name in subjects:
            builder.add_subject(ResourceDescriptor(
                name=artifact.name, digest={"sha256": manifest.identity}))
    return missing_files, conflicts, checkpoints, produced


def _add_dependencies(state: State, builder: ProvenanceBuilder,
                      produced: set[tuple[str, str]]) -> list[str]:
    """Declared dependencies and every shard read; returns what had to be left out.

    A file capture saw read (``slsadist_captured: read``) whose name as recorded and
    digest are those of a file the job wrote, on any rank or node, is that output read
    back (rank 0 saved a checkpoint, rank 1 loaded it): no input. One read with another
    digest (the previous run's checkpoint, read before this job overwrote it) stays an
    input, so ``verify chain`` still follows it to the run that made it; so does what a
    rank declared itself (``record_input``)."""
    left_out: list[str] = []
    for dependency in state.dependencies:
        if dependency.annotations.get("slsadist_captured") == "read":
            if _read_back(state, dependency, produced):
                continue
            builder.add_dependency(_without(dependency, "slsadist_modified"))
            continue
        builder.add_dependency(dependency)
    # Each shard once, as first read (the builder merges equal digests read under
    # other names); an index space is no data: no input.
    for source in state.inputs:
        if source.uri.startswith(INDEX_URI):
            continue
        try:
            builder.add_dependency(ResourceDescriptor(
                name=source.name or None, uri=redact_url(source.uri) or None,
                digest=source.digest, annotations={"slsadist_kind": "dataset"}))
        except InputError as exc:  # journaled before ingest checked digests
            left_out.append(f"rank {source.first_rank}: shard {source.name!r} left out: "
                            f"{exc}")
    return left_out


def _read_back(state: State, dependency: ResourceDescriptor,
               produced: set[tuple[str, str]]) -> bool:
    """A captured read of a file the job wrote: the same name as recorded and digest as
    one of its outputs, and bytes last written after the job began (a file that was
    there before, even with those bytes, is an input: the job may have copied it onto
    itself). Without the time the reading rank sent, the read stays an input."""
    if (dependency.name or "", dependency.digest.get("sha256", "")) not in produced:
        return False
    modified = dependency.annotations.get("slsadist_modified")
    if not isinstance(modified, str) or state.started is None:
        return False
    try:
        when = dt.datetime.strptime(modified, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.timezone.utc)
    except ValueError:
        return False
    started = state.started if state.started.tzinfo is not None \
        else state.started.replace(tzinfo=dt.timezone.utc)
    return when >= started


def _without(dependency: ResourceDescriptor, key: str) -> ResourceDescriptor:
    if key not in dependency.annotations:
        return dependency
    return replace(dependency, annotations={k: v for k, v in dependency.annotations.items()
                                            if k != key})


def _completeness(state: State, reason: str, missing_files: list[str],
                  conflicts: list[str]) -> records.Completeness:
    gaps: list[str] = []
    for sender in state.senders.values():
        if sender.dropped:
            gaps.append(f"{sender.key}: {sender.dropped} event(s) dropped by the agent")
        if sender.lost:
            gaps.append(f"{sender.key}: {sender.lost} acknowledged event(s) lost by the "
                        "coordinator (its journal was lost)")
    failed_evidence = [f"{node.node}: {e.kind}: {e.reason}" for node in state.nodes.values()
                       for e in node.evidence if e.status == "failed"]
    claims = [c.line() for c in state.duplicate_claims.values()]
    if state.duplicate_claims_over:
        claims.append(f"{state.duplicate_claims_over} more claim(s) of a rank another "
                      "process holds")
    conflicts = [*conflicts, *claims, *_exit_disagreements(state), *_binding_disagreements(state),
                 *_world_disagreements(state), *_launcher_disagreements(state)]
    missing_ranks = state.missing_ranks()
    attempts, departed = _membership(state)
    capture_gaps, allowed_gaps = _capture_gap_lines(state)
    failed_ranks = _failed_ranks(state)
    return records.Completeness(
        complete=not (missing_ranks or missing_files or failed_evidence or gaps
                      or conflicts or capture_gaps or failed_ranks),
        failed_ranks=tuple(failed_ranks),
        capture_gaps=tuple(capture_gaps), allowed_capture_gaps=tuple(allowed_gaps),
        finalized_by=reason, missing_ranks=tuple(missing_ranks),
        missing_files=tuple(missing_files), failed_evidence=tuple(failed_evidence),
        sequence_gaps=tuple(gaps), conflicts=tuple(conflicts), events=state.events,
        attempts=tuple(attempts), departed_nodes=tuple(departed))


def _capture_gap_lines(state: State) -> tuple[list[str], list[str]]:
    """What capture could not follow, per rank: (gaps that make the job incomplete,
    gaps the job allowed), each ``rank R: capture gap: what (why)``, sorted by rank
    and then as reported; past the per-sender limit, a count."""
    refused: list[tuple[int, int, str]] = []
    allowed: list[tuple[int, int, str]] = []
    for order, (_key, rank, text, ok) in enumerate(state.capture_gaps):
        (allowed if ok else refused).append((rank, order, f"rank {rank}: capture gap: {text}"))
    limit = state.limits.max_capture_gaps_per_sender
    for order, sender in enumerate(state.senders.values(), start=len(state.capture_gaps)):
        if sender.rank is not None and sender.capture_gaps > limit:
            refused.append((sender.rank, order, f"rank {sender.rank}: capture gap: "
                            f"{sender.capture_gaps - limit} more from {sender.key}"))
    return [t for *_, t in sorted(refused)], [t for *_, t in sorted(allowed)]


def _membership(state: State) -> tuple[list[dict[str, Any]], list[str]]:
    """Who took part in each attempt and how each node's part ended; the nodes that
    left before the final attempt. Runs once, at finalization."""
    numbers = sorted({*state.attempt_world,
                      *(a for node in state.nodes.values() for a in node.attempts)})
    attempts = []
    for number in numbers:
        names = {n.node for n in state.nodes.values() if number in n.attempts}
        names.update(r.attempts[number].node for r in state.ranks.values()
                     if number in r.attempts)
        ended = {}
        for name in sorted(names):
            node = state.nodes.get(name)
            record = node.attempts.get(number) if node is not None else None
            how = record.state if record is not None else ""
            ended[name] = how if how in ENDED else "NO_FINAL_REPORT"
        succeeded = sum(1 for r in state.ranks.values()
                        if (a := r.attempts.get(number)) is not None
                        and a.completed is not None and a.completed[0] == 0)
        attempts.append({"attempt": number, "worldSize": state.attempt_world.get(number),
                         "nodes": ended, "ranksSucceeded": succeeded})
    departed = []
    for node in sorted(state.nodes.values(), key=lambda n: n.node):
        if node.attempts and max(node.attempts) < state.final:
            last = node.attempts[max(node.attempts)]
            how = last.state if last.state in ENDED \
                else f"{last.state or 'registered'}, no final report"
            departed.append(f"{node.node}: last in attempt {last.attempt} ({how}); not "
                            f"in the final attempt {state.final}")
    return attempts, departed


def _subject_artifacts(state: State) -> set[str]:
    with_files = [a for a in state.artifacts.values() if a.files]
    chosen = {a.name for a in with_files if a.role in FINAL_ROLES}
    if not any(a.role == "final" for a in with_files):
        # auxiliary files (optimizer, scheduler, RNG state) are never the model
        checkpoints = [a for a in with_files if a.role == "checkpoint"]
        if checkpoints:  # no final named: the last checkpoint written is the model
            chosen.add(max(checkpoints, key=lambda a: a.order).name)
    return chosen


# -- the claims judged again with everything in hand (collect._authority) ----------------


def _exit_disagreements(state: State) -> list[str]:
    """Where a node's launcher and a rank disagree on whether the rank succeeded.

    The rank reports its own exit (tenant data); the node agent saw the process
    end (platform data). A rank that says SUCCEEDED while its launcher saw it
    fail is a conflict, recorded, never resolved in the rank's favour.
    """
    found = []
    for node in state.nodes.values():
        for attempt in node.attempts.values():
            for key, seen in sorted(attempt.exit_codes.items()):
                rank = state.ranks.get(int(key)) if key.lstrip("-").isdigit() else None
                ran = rank.attempts.get(attempt.attempt) if rank is not None else None
                if ran is None or ran.completed is None:
                    continue
                reported, how = ran.completed
                if (reported == 0) != (seen == 0):
                    found.append(f"rank {key} attempt {attempt.attempt}: the rank reported "
                                 f"exit {reported} ({how}), node {node.node} saw exit {seen}")
            nonzero = sorted(k for k, code in attempt.exit_codes.items() if code != 0)
            if attempt.state == "SUCCEEDED" and nonzero:
                found.append(f"node {node.node} attempt {attempt.attempt}: SUCCEEDED, yet "
                             f"rank(s) {', '.join(nonzero)} exited non-zero")
    return found


def _failed_ranks(state: State, limit: int = 100) -> list[str]:
    """The ranks of the final attempt that failed, by their own report or by what
    their launcher saw (a non-zero exit on either side): never a successful job.
    ``rank R attempt A: exit N (SIGNAL, STATE); node X saw exit M (SIGNAL)``; past
    ``limit`` lines, a count."""
    final = state.final
    seen: dict[int, list[tuple[str, int]]] = {}
    for node in state.nodes.values():
        record = node.attempts.get(final)
        for key, code in (record.exit_codes.items() if record is not None else ()):
            if key.lstrip("-").isdigit():
                seen.setdefault(int(key), []).append((node.node, code))
    found: list[str] = []
    for number in sorted({*seen, *(r for r, a in state.latest.items() if a == final)}):
        rank = state.ranks.get(number)
        ran = rank.attempts.get(final) if rank is not None else None
        reported = ran.completed if ran is not None else None
        views = sorted(seen.get(number, ()))
        if (reported is None or reported[0] == 0) and all(c == 0 for _, c in views):
            continue
        if len(found) == limit:
            found.append("more failed ranks (not listed)")
            break
        line = f"rank {number} attempt {final}: " + (
            f"exit {reported[0]} ({_signal_name(reported[0])}{reported[1]})"
            if reported is not None else "no completion reported")
        line += "".join(f"; node {node} saw exit {code}"
                        + (f" ({_signal_name(code)[:-2]})" if code < 0 else "")
                        for node, code in views)
        found.append(line)
    return found


def _signal_name(code: int) -> str:
    """``"SIGKILL, "`` for -9 (a process a signal ended, as launchers report it)."""
    if code >= 0:
        return ""
    try:
        return f"{signal.Signals(-code).name}, "
    except ValueError:
        return f"signal {-code}, "


def _world_disagreements(state: State) -> list[str]:
    """An attempt's world size comes from its first rank (within the operator's range);
    the launchers' own lists of the ranks they started in that attempt (platform
    data) must fit in it, or a rank claimed a smaller world than the job had."""
    found = []
    for node in state.nodes.values():
        for record in node.attempts.values():
            world = state.attempt_world.get(record.attempt)
            beyond = [r for r in record.ranks if world is not None and r >= world]
            if beyond:
                found.append(f"attempt {record.attempt}: node {node.node} launched rank(s) "
                             f"{beyond}, beyond the world size {world} its ranks registered")
    return found


def _launcher_disagreements(state: State) -> list[str]:
    """Attempts only launchers open, ranks only their node's launcher lists, and a later
    attempt judges the job only once the nodes of the earlier ones ended them."""
    if not state.opened:
        return []
    found = []
    for number, rank in sorted(state.ranks.items()):
        for attempt_number, attempt in sorted(rank.attempts.items()):
            where = f"rank {number} attempt {attempt_number}"
            listed = state.listed.get((number, attempt_number), set())
            if attempt_number not in state.opened:
                found.append(f"{where}: registered, but no node launcher opened attempt "
                             f"{attempt_number}")
            elif not listed:  # listed elsewhere: _binding_disagreements says so
                found.append(f"{where}: registered as node {attempt.node!r}, whose "
                             "launcher did not list it")
    for (number, attempt_number), nodes in sorted(state.listed.items()):
        if len(nodes) > 1:
            found.append(f"rank {number} attempt {attempt_number}: listed by the "
                         f"launchers of nodes {', '.join(sorted(nodes))}")
    final = state.final
    for node in sorted(state.nodes.values(), key=lambda n: n.node):
        if not node.attempts or max(node.attempts) >= final:
            continue
        last = node.attempts[max(node.attempts)]
        where = f"node {node.node}: last in attempt {last.attempt} ({last.state})"
        if last.state == "SUCCEEDED":
            found.append(f"{where}, which ended the job there, yet attempt {final} "
                         "followed")
        elif not state.elastic:
            found.append(f"{where}, not in the final attempt {final}: the world size is "
                         f"fixed ({state.world_size}), so a later attempt cannot judge the "
                         "job without it")
        elif last.state not in ENDED \
                and state.heard.get(node.node, 0) > state.opened_at.get(final, 0):
            found.append(f"{where}: still reporting after attempt {final} began, "
                         "without a part in it, and never said its attempt ended")
    return found


def _binding_disagreements(state: State) -> list[str]:
    """A rank that claims one node while another node's launcher lists it as its own.

    The launcher's list (platform data) binds a rank to the node that started it;
    a rank's own claim of a node id is tenant data and cannot move it elsewhere.
    """
    launched: dict[tuple[int, int], set[str]] = {}
    for node in state.nodes.values():
        for record in node.attempts.values():
            for listed in record.ranks:
                launched.setdefault((listed, record.attempt), set()).add(node.node)
    found = []
    for rank in state.ranks.values():
        for number, attempt in sorted(rank.attempts.items()):
            nodes = launched.get((rank.rank, number), set())
            if nodes and attempt.node not in nodes:
                found.append(f"rank {rank.rank} attempt {number}: registered as node "
                             f"{attempt.node!r}, launched by node(s) "
                             f"{', '.join(sorted(nodes))}")
    return found
