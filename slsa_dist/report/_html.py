"""``slsa-dist report BUNDLE... -o report.html``: one self-contained HTML page.

No network at view time: styles and the supply-chain graph (SVG, laid out
here) are inline, and there is no script. Sections: job summaries, the
supply-chain graph, nodes and devices, which rank read which shard, attempts
and restarts, attestation status, and what was verified and what was not.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.report._text import attestation_verdicts, verdict_status
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Verifier
from slsa_dist.verify._bundle import check_bundle
from slsa_dist.verify._result import Check, Result

__all__ = ["render", "write_report"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fbfbfd}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #dde;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eef1f7}code{font-size:12px}
.pass{color:#12703a;font-weight:600}.fail{color:#b3261e;font-weight:600}
.muted{color:#667}.card{background:#fff;border:1px solid #dde;border-radius:6px;
padding:10px 14px;margin:10px 0}svg{background:#fff;border:1px solid #dde;border-radius:6px}
"""


@dataclass
class _Job:
    bundle: Path
    provenance: Provenance
    result: Result | None = None  # what verify decided; None when no key was given

    @property
    def checks(self) -> list[Check]:
        return list(self.result.checks) if self.result is not None else []

    @property
    def name(self) -> str:
        return self.provenance.job_id or self.bundle.name


def _e(value: object) -> str:
    return html.escape(str(value))


def _load(bundles: Sequence[Path], keys: Sequence[Verifier]) -> list[_Job]:
    jobs = []
    for bundle in bundles:
        result = check_bundle(bundle, keys=keys) if keys else None
        provenance = result.provenance if result is not None else None
        if provenance is None:  # unverified (no key, or it failed): show what it claims
            for envelope in read_bundle(bundle):
                try:
                    provenance = Provenance.from_statement(
                        Statement.from_dict(json.loads(envelope.payload)))
                    break
                except (ValueError, InputError):
                    continue
        if provenance is None:
            raise InputError(f"report: {bundle} holds no SLSA provenance")
        jobs.append(_Job(bundle=bundle, provenance=provenance, result=result))
    return jobs


def _short(digest: Mapping[str, str]) -> str:
    return next((v[:12] for v in digest.values()), "?")


def _graph(jobs: Sequence[_Job]) -> str:
    """An SVG of steps and artifacts, layered left to right by dependency depth."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()
    for job in jobs:
        step = f"step:{job.name}"
        nodes[step] = {"label": job.name, "kind": "step",
                       "sub": (job.provenance.build_type or "").rsplit("/", 2)[-2]}
        groups: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for dep in job.provenance.dependencies:
            kind = str(dep.annotations.get("slsadist_kind", ""))
            if kind not in ("dataset", "model") or "sha256" not in dep.digest:
                continue
            groups.setdefault(kind, []).append(dep.digest["sha256"])
            names[dep.digest["sha256"]] = Path(dep.name or dep.uri or "").name
        for kind, digests in groups.items():
            if kind == "dataset" and len(digests) > 4:  # many shards: one node
                key = "datasets:" + ",".join(sorted(digests))
                nodes.setdefault(key, {"label": f"{len(digests)} dataset shards",
                                       "kind": "dataset", "sub": ""})
                edges.add((key, step))
                continue
            for digest in digests:
                key = f"a:{digest}"
                nodes.setdefault(key, {"label": names.get(digest) or digest[:12], "kind": kind,
                                       "sub": digest[:12]})
                edges.add((key, step))
        for subject in job.provenance.statement.subjects:
            digest = subject.digest.get("sha256", "")
            key = f"a:{digest}"
            label = subject.name or digest[:12]
            if key in nodes:
                nodes[key]["label"] = label
            else:
                nodes[key] = {"label": label, "kind": "model", "sub": "output"}
            edges.add((step, key))
    # Files inside another step's output (a data step's shards): link output -> file.
    for job in jobs:
        for checkpoint in job.provenance.checkpoints():
            owner = f"a:{checkpoint.root_digest.get('sha256', '')}"
            files = {str(r.get("digest")) for r in checkpoint.resources}
            if owner not in nodes:
                continue
            for key in list(nodes):
                inside = set(key.split(":", 1)[1].split(",")) if key.startswith("datasets:") \
                    else {key[2:]} if key.startswith("a:") else set()
                if inside and key != owner and inside <= files:
                    edges.add((owner, key))
    depth = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        for a, b in edges:
            depth[b] = max(depth[b], depth[a] + 1)
    columns: dict[int, list[str]] = {}
    for key in sorted(nodes, key=lambda k: (depth[k], nodes[k]["label"])):
        columns.setdefault(depth[key], []).append(key)
    width, height, gap_x, gap_y = 170, 44, 70, 22
    position = {}
    for column, keys in columns.items():
        for row, key in enumerate(keys):
            position[key] = (20 + column * (width + gap_x), 20 + row * (height + gap_y))
    total_w = 40 + (max(columns, default=0) + 1) * (width + gap_x)
    total_h = 40 + max((len(k) for k in columns.values()), default=1) * (height + gap_y)
    colors = {"step": "#3d6fd8", "dataset": "#2e9d5b", "model": "#d9822b"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
             f'role="img" aria-label="supply-chain graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#778"/></marker>'
             '</defs>']
    for a, b in sorted(edges):
        (x1, y1), (x2, y2) = position[a], position[b]
        parts.append(f'<line x1="{x1 + width}" y1="{y1 + height / 2}" x2="{x2}" '
                     f'y2="{y2 + height / 2}" stroke="#778" stroke-width="1.5" '
                     'marker-end="url(#arrow)"/>')
    for key, node in nodes.items():
        x, y = position[key]
        color = colors.get(node["kind"], "#888")
        rx = 4 if node["kind"] == "step" else 18
        parts.append(f'<g><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="{rx}" '
                     f'fill="{color}" opacity="0.92"/><text x="{x + 8}" y="{y + 18}" '
                     f'fill="#fff" font-size="12" font-weight="600">{_e(node["label"][:24])}'
                     f'</text><text x="{x + 8}" y="{y + 34}" fill="#fff" font-size="11">'
                     f'{_e(node["kind"])} {_e(node["sub"])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _job_sections(job: _Job) -> str:
    p = job.provenance
    meta = p.metadata
    out = [f'<div class="card"><h3>{_e(job.name)}</h3>',
           _table(["field", "value"], [
               ("bundle", job.bundle.name), ("builder.id", p.builder_id),
               ("buildType", p.build_type), ("started", meta.get("startedOn", "-")),
               ("finished", meta.get("finishedOn", "-")),
               ("world size", p.world_size if p.world_size is not None else "-"),
               ("subjects", ", ".join(f"{s.name} ({_short(s.digest)})"
                                      for s in p.statement.subjects)),
               ("dependencies", len(p.dependencies))])]
    if job.checks:
        out.append("<h4>Verification</h4>" + "".join(
            f'<div><span class="{"pass" if c.ok else "fail"}">{"PASS" if c.ok else "FAIL"}'
            f"</span> {_e(c.name)}: {_e(c.detail)}</div>" for c in job.checks)
            + "".join(f'<div><span class="muted">NOTE</span> {_e(note)}</div>'
                      for note in (job.result.notes if job.result is not None else ())))
    else:
        out.append('<p class="muted">Signature not checked (no key given to the report).</p>')
    nodes = p.node_records()
    if nodes:
        rows = []
        for node in nodes:
            gpus = (node.inventory.get("gpus") or {}).get("devices") or []
            rows.append((node.node, node.hostname,
                         (node.inventory.get("cpu") or {}).get("model", "-"),
                         ", ".join(f"{g.get('name')} {g.get('uuid')}" for g in gpus) or "none",
                         ((node.inventory.get("torch") or {}).get("version", "-"))))
        out.append("<h4>Nodes and devices</h4>" + _table(
            ["node", "host", "CPU", "GPUs", "torch"], rows))
        # this reader's verdict, re-appraised from the raw evidence (as verify does with
        # no EK roots, trusted AKs or collateral), beside what the coordinator recorded
        evidence_rows = [(node, e.kind, verdict_status(v, node),
                          v.root or "none reached", v.as_of or "-",
                          "; ".join(v.verified) or "-", "; ".join(v.not_verified) or "-",
                          v.reason, e.status)
                         for node, e, v in attestation_verdicts(p)]
        out.append("<h4>Attestation (re-appraised from the raw evidence)</h4>" + _table(
            ["node", "kind", "status", "root", "as of", "verified", "not verified", "reason",
             "coordinator recorded"], evidence_rows))
        attempts = [(node.node, a.attempt, a.state, json.dumps(dict(a.exit_codes)))
                    for node in nodes for a in node.attempts]
        if attempts:
            out.append("<h4>Attempts and restarts (per node)</h4>" + _table(
                ["node", "attempt", "state", "exit codes by rank"], attempts))
    ranks = p.rank_records()
    if ranks:
        out.append("<h4>Ranks</h4>" + _table(
            ["rank", "node", "completed", "attempts", "events", "samples", "files written"],
            [(r.rank, r.node, r.completed,
              ", ".join(f"{a.attempt}:{a.state}" for a in r.attempts),
              r.events, r.samples, len(r.files)) for r in ranks]))
        shard_rows = [(r.rank, s.name, _short(s.digest), s.samples,
                       json.dumps([list(span) for span in s.epochs]))
                      for r in ranks for s in r.shards or ()]
        if shard_rows:
            out.append("<h4>Which rank read which shard</h4>" + _table(
                ["rank", "shard", "sha256", "samples", "epochs"], shard_rows))
    completeness = p.completeness()
    if completeness is not None:
        gaps = {k: v for k, v in completeness.to_dict().items()
                if v and k not in ("complete", "finalizedBy", "events", "formatVersion")}
        state = '<span class="pass">complete</span>' if completeness.complete else \
            '<span class="fail">incomplete</span>'
        out.append(f"<h4>Completeness</h4><p>{state}, finalized by "
                   f"{_e(completeness.finalized_by)}, {_e(completeness.events)} events"
                   + (f"<br><code>{_e(json.dumps(gaps))}</code>" if gaps else "") + "</p>")
    out.append("</div>")
    return "".join(out)


def render(bundles: Sequence[str | os.PathLike[str]], *, keys: Sequence[Verifier] = (),
           chain_lines: Sequence[str] = (), title: str = "slsa-dist report") -> str:
    """The report as one HTML string."""
    jobs = _load([Path(b) for b in bundles], keys)
    verified = [j for j in jobs if j.result is not None and j.result.ok]
    summary = (f"{len(jobs)} provenance bundle(s); "
               f"{len(verified)} verified with the given key(s)" if keys else
               f"{len(jobs)} provenance bundle(s); signatures not checked")
    chain = ""
    if chain_lines:
        chain = "<h2>Chain verification</h2><pre>" + _e("\n".join(chain_lines)) + "</pre>"
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{_e(title)}</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<p>{_e(summary)}</p><h2>Supply-chain graph</h2>{_graph(jobs)}"
            f'<p class="muted">Blue: steps. Green: datasets. Orange: models and checkpoints. '
            f"Arrows: consumed by / produced.</p>{chain}<h2>Jobs</h2>"
            + "".join(_job_sections(j) for j in jobs) + "</body></html>")


def write_report(path: str | os.PathLike[str], bundles: Sequence[str | os.PathLike[str]], *,
                 keys: Sequence[Verifier] = (), chain_lines: Sequence[str] = ()) -> Path:
    target = Path(path)
    target.write_text(render(bundles, keys=keys, chain_lines=chain_lines), encoding="utf-8")
    return target
