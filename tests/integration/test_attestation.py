"""Node evidence end to end: challenge, real swtpm quote, coordinator verification, policy."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.attest._registry import collect_all
from slsa_dist.attest._verdict import UNAVAILABLE
from slsa_dist.cli import main as cli_main
from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.sign._keys import Signer

from conftest import need
from support import swtpm

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


def run_job(tmp_path: Path, *, with_tpm: bool,
            attest: Callable[[Agent], None] | None = None,
            **settings: Any) -> tuple[Path, Path]:
    """A one-node, one-rank job; the node records its evidence by ``attest`` (the node
    agent's own path), else it collects every kind and keeps TPM's when ``with_tpm``.
    ``settings``: more coordinator settings (``ledger_above=0``: records in a ledger)."""
    signer = Signer.generate()
    tmp_path.mkdir(parents=True, exist_ok=True)
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.2, **settings) as server:
        node = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=NodeIdentity(node_id="node-a", hostname="host-a"))
        if attest is not None:
            attest(node)
        else:
            nonce = node.challenge()
            for kind, blob, fmt in collect_all(nonce, "j", "node-a"):
                if kind == "tpm" or not with_tpm:
                    node.record_evidence(kind, blob, nonce=nonce, fmt=fmt)
        node.record_attempt(attempt=0, run_id="r", ranks=[0], state="SUCCEEDED")
        assert node.close(30)
        rank = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "spool",
                     identity=RankIdentity(rank=0, world_size=1, node_id="node-a"))
        rank.complete()
        assert rank.close(30)
        return server.wait_finalized(30).bundle, public


@pytest.mark.tpm
def test_verified_tpm_evidence_satisfies_the_policy(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    with swtpm.swtpm() as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        bundle, public = run_job(tmp_path, with_tpm=True)
    code = cli_main(["verify", str(bundle), "--key", str(public), "--require-attestation", "tpm"])
    out = capsys.readouterr().out
    # a genuine quote, but by an AK no EK root or enrolled list vouches for: it counts for
    # nothing (enrolled AKs and EK roots: the tests below)
    assert code == 1, out
    assert "FAIL  attestation tpm: expected verified tpm evidence from every node, found " \
           "none for: node-a (tpm: its quote is signed by an AK no root vouches for" in out


@pytest.mark.tpm
def test_only_quotes_by_a_trusted_ak_count_when_a_list_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    aks = tmp_path / "trusted-aks.txt"
    with swtpm.swtpm() as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        throwaway, first_key = run_job(tmp_path / "before", with_tpm=True)  # not enrolled
        assert cli_main(["tpm", "enroll", "--name", "node-a", "--append", str(aks)]) == 0
        enrolled_line = capsys.readouterr().out.strip()
        enrolled, public = run_job(tmp_path / "after", with_tpm=True)
    fingerprint = enrolled_line.split()[0]
    assert aks.read_text() == f"{fingerprint} node-a\n"

    def verify(bundle: Path, *extra: str) -> tuple[int, str]:
        code = cli_main(["verify", str(bundle), "--key", str(public), "--key", str(first_key),
                         "--require-attestation", "tpm", *extra])
        return code, capsys.readouterr().out

    code, out = verify(enrolled, "--trusted-aks", str(aks))
    assert code == 0, out
    assert "PASS  attestation tpm (trusted AKs): verified tpm evidence from all 1 node(s)" in out
    code, out = verify(throwaway, "--trusted-aks", str(aks))  # a valid quote, untrusted key
    assert code == 1
    assert "FAIL  attestation tpm (trusted AKs): expected verified tpm evidence from every " \
           "node, found none for: node-a (tpm: verified, but signed by AK sha256:" in out
    assert "not a trusted AK)" in out
    assert verify(throwaway)[0] == 1  # without a list or EK roots no quote counts
    other = tmp_path / "other-aks.txt"
    other.write_text("sha256:" + "0" * 64 + " someone-else\n")
    assert verify(enrolled, "--trusted-aks", str(other))[0] == 1


def test_trusted_aks_are_refused_without_a_tpm_requirement_or_when_malformed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aks = tmp_path / "aks.txt"
    aks.write_text("sha256:" + "ab" * 32 + "\n")
    bundle = tmp_path / "any.intoto.jsonl"  # never read: the arguments are refused first
    code = cli_main(["verify", str(bundle), "--key", str(aks), "--trusted-aks", str(aks)])
    assert code == 2
    assert "--trusted-aks: expected it with --require-attestation tpm, found no attestation " \
           "requirement" in capsys.readouterr().err
    aks.write_text("node-a sha256:" + "ab" * 32 + "\n")
    code = cli_main(["verify", str(bundle), "--key", str(aks), "--require-attestation", "tpm",
                     "--trusted-aks", str(aks)])
    assert code == 2
    assert f"trusted AKs {aks} line 1: expected 'sha256:<64 lowercase hex>', found 'node-a'" \
        in capsys.readouterr().err


@pytest.mark.tpm
def test_every_node_a_rank_ran_on_must_prove_itself_and_only_those(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    signer = Signer.generate()
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    with swtpm.swtpm() as tcti, CoordinatorThread(
            job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=2,
            settle=0.2) as server:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        spool = tmp_path / "spool"
        node = Agent(coordinator=server.address, job_id="j", spool_dir=spool,
                     identity=NodeIdentity(node_id="node-a", hostname="host-a"))
        nonce = node.challenge()
        for kind, blob, fmt in collect_all(nonce, "j", "node-a"):
            node.record_evidence(kind, blob, nonce=nonce, fmt=fmt)
        node.record_attempt(attempt=0, run_id="r", ranks=[0], state="SUCCEEDED")
        # A controller-like node that runs no rank and has no evidence: not asked for any.
        controller = Agent(coordinator=server.address, job_id="j", spool_dir=spool,
                           identity=NodeIdentity(node_id="controller", hostname="host-c"))
        controller.record_attempt(attempt=0, run_id="r", ranks=[], state="SUCCEEDED")
        for agent in (node, controller):
            assert agent.close(30)
        # Rank 1 runs on node-b, which never reports: no record, so no evidence.
        for rank, where in ((0, "node-a"), (1, "node-b")):
            agent = Agent(coordinator=server.address, job_id="j", spool_dir=spool,
                          identity=RankIdentity(rank=rank, world_size=2, node_id=where))
            agent.complete()
            assert agent.close(30)
        bundle = server.wait_finalized(30).bundle
    code = cli_main(["verify", str(bundle), "--key", str(public), "--require-attestation", "tpm"])
    out = capsys.readouterr().out
    assert code == 1
    line = out.split("FAIL  attestation tpm:")[1].splitlines()[0]
    assert "node-b (ran ranks, but no node agent reported for it)" in line
    assert "controller" not in line


def test_a_node_without_evidence_fails_the_policy_naming_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    monkeypatch.delenv("TPM2TOOLS_TCTI", raising=False)
    if Path("/dev/tpmrm0").exists():
        pytest.skip("this machine has a hardware TPM; the test needs a node without one")
    bundle, public = run_job(tmp_path, with_tpm=False)
    code = cli_main(["verify", str(bundle), "--key", str(public), "--require-attestation", "tpm"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  attestation tpm: expected verified tpm evidence from every node, found none " \
           "for: node-a (tpm: unavailable: no TPM: /dev/tpmrm0 absent and TPM2TOOLS_TCTI " \
           "unset)" in out


def test_unavailable_attesters_say_why() -> None:
    found = {kind: (blob, fmt) for kind, blob, fmt in collect_all(b"n", "j", "n")
             if fmt == UNAVAILABLE}
    if not os.path.isdir("/sys/kernel/config/tsm/report"):
        assert b"configfs-tsm not available" in found["tsm"][0]
    assert "nvidia-cc" in found  # no GPU here: a reason, never a silent gap


def run_attested_job(tmp_path: Path, **settings: Any) -> tuple[Path, Path]:
    """A one-node job whose node agent attests as slsa-torchrun's does (``attest``):
    with an enrolled AK and an EK certificate, its TPM answers a credential challenge."""
    from slsa_dist.collect._node import attest

    return run_job(tmp_path, with_tpm=True, attest=lambda node: attest(node, "j", "node-a"),
                   **settings)


@pytest.mark.tpm
def test_an_ak_activated_by_a_certified_ek_counts_through_the_ek_chain_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No --trusted-aks: the EK certificate chains to the given root and the coordinator's
    credential challenge to that EK, for the quoting AK, was answered. An EK from another
    CA fails, and so does a node whose AK is not in the certified EK's TPM."""
    from slsa_dist.attest import _tpm as tpm

    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    try:
        a, b = (swtpm.provision(tmp_path / name) for name in ("tpm-a", "tpm-b"))
    except Exception as exc:  # no swtpm_setup here: skipped, said why
        need(False, f"swtpm_setup: {exc}")
        raise
    with swtpm.swtpm(a.state) as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        monkeypatch.setenv(tpm.EK_CHAIN_ENV, str(a.chain))
        throwaway, first_key = run_attested_job(tmp_path / "before")  # no enrolled AK
        tpm.enroll()
        identity_a = tpm.identity()
        assert identity_a is not None
        bundle, public = run_attested_job(tmp_path / "job")
    with swtpm.swtpm(b.state) as tcti:  # TPM B pretends to be A: A's EK, B's AK
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        tpm.enroll()
        identity_b = tpm.identity()
        assert identity_b is not None
        monkeypatch.setattr(tpm, "identity", lambda: (identity_a[0], identity_b[1]))
        monkeypatch.setattr(tpm, "_ek_certificate", lambda cwd: identity_a[0])
        cuckoo, cuckoo_key = run_attested_job(tmp_path / "cuckoo")

    def verify(target: Path, key: Path, *roots: Path) -> tuple[int, str]:
        extra = [arg for root in roots for arg in ("--ek-roots", str(root))]
        code = cli_main(["verify", str(target), "--key", str(key), "--require-attestation",
                         "tpm", *extra])
        return code, capsys.readouterr().out

    code, out = verify(bundle, public, a.root)
    assert code == 0, out
    assert "PASS  attestation tpm (EK roots): verified tpm evidence from all 1 node(s)" in out
    code, out = verify(bundle, public, b.root)
    assert code == 1
    assert "node-a (tpm: failed (certificate chain): EK certificate: no valid chain to any " \
           "of the 1 EK root(s) given" in out
    code, out = verify(cuckoo, cuckoo_key, a.root)
    assert code == 1
    assert "node-a (tpm: failed (activation): credential activation: the node returned no " \
           "answer (tpm2_activatecredential: exit" in out
    code, out = verify(throwaway, first_key, a.root)
    assert code == 1
    assert "node-a (tpm: failed (activation): EK roots given, but no credential challenge " \
           "was recorded" in out
    assert verify(bundle, public)[0] == 1  # without roots (or trusted AKs): no quote counts


@pytest.mark.tpm
def test_a_swtpm_jobs_pcrs_hold_the_reference_values_or_fail_naming_the_pcr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """PCR 4 extended with a known digest: its expected value is computed here
    (SHA-256(zeros || digest)), not read back from the bundle."""
    import hashlib
    import json
    import subprocess

    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    digest = hashlib.sha256(b"slsa-dist boot component").hexdigest()
    pcr4 = hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest()
    aks = tmp_path / "trusted-aks.txt"
    with swtpm.swtpm() as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        assert cli_main(["tpm", "enroll", "--name", "node-a", "--append", str(aks)]) == 0
        subprocess.run(["tpm2_pcrextend", f"4:sha256={digest}"], check=True, timeout=30)
        subprocess.run(["tpm2_flushcontext", "-t"], check=False, timeout=30)
        bundle, public = run_job(tmp_path, with_tpm=True)
    capsys.readouterr()

    def verify(pcrs: dict[str, str], *extra: str) -> tuple[int, str, str]:
        values = tmp_path / "reference-values.json"
        values.write_text(json.dumps({"version": 1, "tpm": {"pcrs": pcrs}}))
        code = cli_main(["verify", str(bundle), "--key", str(public),
                         "--reference-values", str(values), *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    good = {"0": "00" * 32, "4": pcr4}
    code, out, _ = verify(good, "--require-attestation", "tpm", "--trusted-aks", str(aks))
    assert code == 0, out
    assert "PASS  attestation tpm (trusted AKs) (reference values): verified tpm evidence " \
           "from all 1 node(s), re-appraised from the raw evidence in the bundle, holding " \
           "the reference values (tpm)" in out
    assert verify(good, "--trusted-aks", str(aks))[0] == 0  # the file's kinds are required
    wrong = "11" * 32
    code, out, _ = verify({**good, "4": wrong}, "--trusted-aks", str(aks))
    assert code == 1
    assert ("found none for: node-a (tpm: verified up to its trusted AK, but failed "
            f"(reference values): reference values: PCR 4: expected {wrong}, found {pcr4})") \
        in out
    code, out, _ = verify({**good, "10": "00" * 32}, "--trusted-aks", str(aks))
    assert code == 1  # PCR 10 is not in the quote (PCRs 0-7): fail closed
    assert f"PCR 10: expected {'00' * 32}, found no such register in the evidence" in out
    code, _, err = verify(good, "--require-attestation", "tpm")  # any key's quote: refused
    assert code == 2
    assert "reference values for tpm: expected --ek-roots or --trusted-aks" in err


def _extend_with_log(log_path: Path, *, skip: int | None = None) -> None:
    """Extend the TPM's PCRs (TPM2TOOLS_TCTI) with each event's SHA-256 digest of a boot
    event log, as the firmware did when it wrote it; ``skip``: leave that event out."""
    import subprocess

    from slsa_dist.attest import _eventlog as eventlog

    specs = [f"{e.pcr}:sha256={e.digests['sha256'].hex()}"
             for e in eventlog.parse(log_path.read_bytes()).events
             if e.type != eventlog.EV_NO_ACTION and e.index != skip]
    for start in range(0, len(specs), 16):
        subprocess.run(["tpm2_pcrextend", *specs[start:start + 16]], check=True, timeout=60,
                       capture_output=True)


@pytest.mark.tpm
@pytest.mark.timeout(240)
def test_a_boot_event_log_replays_to_the_quote_and_its_events_hold_reference_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A swtpm extended with a real firmware log's events (GCE, 34 KB, three banks): the
    node sends the log with its quote, verify replays it against the quoted PCRs and
    holds its events to reference digests. A log with one bit changed fails naming the
    PCR and, with reference events, the event; so does a quote the log does not match.
    The log travels inline and through the ledger."""
    import json

    from slsa_dist.attest import _eventlog as eventlog
    from slsa_dist.attest import _tpm as tpm

    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    try:
        ca = swtpm.provision(tmp_path / "tpm")
    except Exception as exc:  # no swtpm_setup here: skipped, said why
        need(False, f"swtpm_setup: {exc}")
        raise
    fixture = Path(__file__).parents[1] / "assets/vectors/tpm-eventlog/" \
        "event-gce-ubuntu-2104-log.bin"
    log = eventlog.parse(fixture.read_bytes())
    # the bit flipped: the last byte of the SHA-256 digest of the first PCR 4 event
    victim = log.extended(4)[0]
    raw = bytearray(fixture.read_bytes())
    at = bytes(raw).index(victim.digests["sha256"]) + 31
    raw[at] ^= 0x01
    flipped = tmp_path / "flipped.bin"
    flipped.write_bytes(bytes(raw))
    bundles: dict[str, tuple[Path, Path]] = {}
    monkeypatch.setenv(tpm.EK_CHAIN_ENV, str(ca.chain))
    with swtpm.swtpm(ca.state) as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        tpm.enroll()
        _extend_with_log(fixture)
        monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(fixture))
        bundles["inline"] = run_attested_job(tmp_path / "inline")
        bundles["ledger"] = run_attested_job(tmp_path / "ledger", ledger_above=0)
        monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(flipped))
        bundles["flipped"] = run_attested_job(tmp_path / "flipped")
    with swtpm.swtpm(ca.state) as tcti:  # rebooted: PCR 4's events, one left out
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        _extend_with_log(fixture, skip=log.extended(4)[-1].index)
        monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(fixture))
        bundles["short"] = run_attested_job(tmp_path / "short")
    assert (tmp_path / "ledger" / "out" / "j.ledger.jsonl").exists()  # the node record there
    assert not (tmp_path / "inline" / "out" / "j.ledger.jsonl").exists()
    events = {str(p): sorted({e.digests["sha256"].hex() for e in log.extended(p)})
              for p in range(8)}
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"version": 1, "tpm": {"events": events}}))

    def verify(name: str, *extra: str) -> tuple[int, str]:
        bundle, key = bundles[name]
        code = cli_main(["verify", str(bundle), "--key", str(key), "--require-attestation",
                         "tpm", "--ek-roots", str(ca.root), *extra])
        return code, capsys.readouterr().out

    capsys.readouterr()
    for name in ("inline", "ledger"):
        code, out = verify(name)
        assert code == 0, out
        code, out = verify(name, "--reference-values", str(reference))
        assert code == 0, out
        assert "holding the reference values (tpm)" in out
    code, out = verify("flipped")
    assert code == 1
    assert "node-a (tpm: failed (event log): event log: PCR 4: the log (its " in out
    assert ") replays to " in out
    code, out = verify("flipped", "--reference-values", str(reference))
    assert code == 1
    assert "events the reference values do not allow: PCR 4 event " \
           f"{victim.index} ({victim.type_name}): expected a digest among the" in out
    code, out = verify("short")
    assert code == 1
    assert "node-a (tpm: failed (event log): event log: PCR 4: the log (its " \
           f"{len(log.extended(4))} event(s)" in out
    # a digest the reference values do not list: the event is named, the PCR replays
    events["4"] = [d for d in events["4"] if d != victim.digests["sha256"].hex()]
    reference.write_text(json.dumps({"version": 1, "tpm": {"events": events}}))
    code, out = verify("inline", "--reference-values", str(reference))
    assert code == 1
    assert f"PCR 4 event {victim.index} ({victim.type_name}): expected a digest among " \
           f"the {len(events['4'])} allowed, found {victim.digests['sha256'].hex()}" in out


@pytest.mark.tpm
def test_inspect_and_the_report_show_each_nodes_re_appraised_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Kind, status, root, as-of and what was not verified, re-appraised from the raw
    evidence: here a quote whose PCRs the node's boot log does not replay to."""
    from slsa_dist.attest import _tpm as tpm

    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    fixture = Path(__file__).parents[1] / "assets/vectors/tpm-eventlog/event.bin"
    with swtpm.swtpm() as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        monkeypatch.setenv(tpm.EVENT_LOG_ENV, str(fixture))
        bundle, public = run_job(tmp_path, with_tpm=True)
    capsys.readouterr()
    assert cli_main(["inspect", str(bundle), "--key", str(public)]) == 0
    out = capsys.readouterr().out
    assert "    tpm re-appraised here: failed (event log); root: none reached; as of: -" in out
    assert "      reason: event log: PCR 0: the log (its 1 event(s)," in out
    assert "      not verified: PCR values against reference values (none configured)" in out
    report = tmp_path / "report.html"
    assert cli_main(["report", str(bundle), "--key", str(public), "-o", str(report)]) == 0
    page = report.read_text()
    assert "<h4>Attestation (re-appraised from the raw evidence)</h4>" in page
    assert "<th>root</th><th>as of</th>" in page
    assert "<td>tpm</td><td>failed (event log)</td><td>none reached</td><td>-</td>" in page


@pytest.mark.tpm
def test_a_node_with_only_an_ecc_ek_certificate_counts_through_the_ek_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """swtpm's P-384 EK, its RSA EK certificate removed: the node sends the ECC one, the
    coordinator's challenge is made by ECDH (its opening the ephemeral scalar), the TPM
    activates it, and verify --ek-roots re-makes it and passes."""
    import json
    import subprocess

    from slsa_dist.attest import _tpm as tpm

    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    try:
        ca = swtpm.provision(tmp_path / "tpm")
    except Exception as exc:  # no swtpm_setup here: skipped, said why
        need(False, f"swtpm_setup: {exc}")
        raise
    monkeypatch.setenv(tpm.EK_CHAIN_ENV, str(ca.chain))
    with swtpm.swtpm(ca.state) as tcti:
        monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
        subprocess.run(["tpm2_nvundefine", "0x01c00002", "-C", "p"], check=True,
                       capture_output=True, timeout=30)
        tpm.enroll()
        bundle, public = run_attested_job(tmp_path / "job")
    capsys.readouterr()
    code = cli_main(["verify", str(bundle), "--key", str(public), "--require-attestation",
                     "tpm", "--ek-roots", str(ca.root)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  attestation tpm (EK roots)" in out
    statement = json.loads(base64.b64decode(json.loads(bundle.read_text().splitlines()[0])
                                            ["payload"]))
    assert '"ephemeral"' in json.dumps(statement)  # the ECC opening was recorded
