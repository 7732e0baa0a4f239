"""The job ``make demo`` runs, end to end, on embedded defaults.

Everything lands in ``--out`` (``demo-out/``). With a software TPM, the
demo's node enrolls its attestation key first (``slsa-dist tpm enroll``) and
the training bundles verify with ``--require-attestation tpm --trusted-aks``.

a. data preparation (scikit-learn's bundled digits -> 4 shards) under
   ``slsa-dist run``, with its own signed provenance;
b. DDP training over gloo, 2 ranks through ``slsa-torchrun``, DCP
   checkpoints, one coordinator: ONE signed provenance whose dependencies are
   the shards from (a) by digest and whose byproducts say which rank read
   which shard;
c. fine-tuning that starts from (b)'s final checkpoint, so the base model is
   a dependency by digest;
d. ``slsa-dist verify`` of each bundle (and ``securesystemslib`` verifying
   the training envelope independently), a tampered checkpoint and a forged
   bundle rejected;
e. ``slsa-dist verify chain`` from the fine-tuned model back to the raw
   data, a VSA for it, ``report.html`` and a one-screen summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support import swtpm

HERE = Path(__file__).parent
LOCAL_BUILDER = "https://slsa-dist.dev/builders/local/v1"  # the coordinator on this machine
RUN_BUILDER = "https://slsa-dist.dev/builders/local-run/v1"  # `slsa-dist run`
VERIFIER_ID = "https://slsa-dist.dev/verifiers/chain/v1"  # slsa_dist.verify._vsa.VERIFIER_ID


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _cli(*args: str | Path, check: bool = True, quiet: bool = False,
         timeout: float = 300, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "slsa_dist.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    if not quiet:
        print(done.stdout, end="")
    if check and done.returncode != 0:
        raise SystemExit(f"[demo] FAILED: slsa-dist {args[0]} exited {done.returncode}\n"
                         f"{done.stdout}{done.stderr}")
    return done


def _job(out: Path, job_id: str, key: Path, script_args: list[str],
         env: dict[str, str]) -> Path:
    """A 2-rank job through the one-command path; returns the bundle.

    The command a user types, with the demo's key and job id:
    ``slsa-torchrun --slsa-out DIR --slsa-key KEY --nproc-per-node 2 train.py ARGS``.
    """
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{job_id}.torchrun.log"
    launcher = Path(sys.executable).parent / "slsa-torchrun"
    with log.open("w") as handle:
        done = subprocess.run(
            [str(launcher), "--slsa-out", str(out / "provenance"), "--slsa-key", str(key),
             "--slsa-job-id", job_id, "--slsa-format", "both", "--nproc-per-node", "2",
             "--monitor-interval", "0.2",
             str(HERE / "train.py"), *script_args],
            stdout=handle, stderr=subprocess.STDOUT, timeout=300, check=False,
            env={**os.environ, "SLSA_ARTIFACT_ROOT": str(out), "OMP_NUM_THREADS": "1", **env})
    if done.returncode != 0:
        raise SystemExit(f"[demo] FAILED: training exited {done.returncode} (see {log})")
    closing = [ln for ln in log.read_text().splitlines() if ln.startswith("slsa-torchrun:")]
    _say(f"   {closing[-1].split(': verify with')[0] if closing else 'no closing line'}")
    bundle = out / "provenance" / f"{job_id}.intoto.jsonl"
    if not bundle.exists():
        raise SystemExit(f"[demo] FAILED: no bundle (see {log})")
    return bundle


def _sigstore_js(out: Path, bundle: Path, public: Path, hint: str) -> None:
    """The same envelope as a Sigstore bundle, checked by Sigstore's JavaScript verifier."""
    script = HERE.parents[1] / "tests" / "interop" / "js" / "verify_bundle.mjs"
    command = ["node", str(script), str(bundle), str(public), hint]
    shown = f"node {os.path.relpath(script)} {bundle.relative_to(out.parent)} " \
            f"{public.relative_to(out.parent)} {hint}"
    if shutil.which("node") is None or not (script.parent / "node_modules").exists():
        _say(f"   Sigstore bundle {bundle.relative_to(out)} written; verify it with Sigstore's "
             f"JavaScript verifier (needs node and `make js-deps`): {shown}")
        return
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"[demo] FAILED: @sigstore/verify: {done.stdout.strip()}")
    _say(f"   @sigstore/verify (Sigstore's JavaScript verifier) verified "
         f"{bundle.relative_to(out)}: {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slsa-dist-demo")
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args(argv)
    if swtpm.available() is not None:
        _say(f"no software TPM ({swtpm.available()}): nodes will record why they have no "
             "TPM evidence")
        return _main(args.out.resolve(), env={})
    with swtpm.swtpm() as tcti:
        _say(f"software TPM on loopback ({tcti}): each node quotes its PCRs for the job")
        return _main(args.out.resolve(), env={"TPM2TOOLS_TCTI": tcti})


def _main(out: Path, *, env: dict[str, str]) -> int:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    start = time.monotonic()
    from examples.demo.data import digits_csv

    _cli("keygen", "--out", out / "keys", quiet=True)
    key, public = out / "keys" / "signing.key", out / "keys" / "signing.pub"
    (out / "provenance").mkdir()
    trusted_aks = out / "trusted-aks.txt"
    if env:
        # the name column is the node id the AK vouches for: the host name, as torchrun's
        # node agent reports it
        enrolled = _cli("tpm", "enroll", "--append", trusted_aks,
                        env=env, quiet=True)
        _say(f"enrolled the node's TPM attestation key: {enrolled.stdout.split()[0][:23]}... "
             f"-> {trusted_aks.relative_to(out)}")

    _say("a. data preparation: scikit-learn digits -> 4 shards, under `slsa-dist run`")
    data = out / "data"
    _cli("run", "--input", digits_csv(), "--output", data, "--key", key,
         "--bundle", out / "provenance" / "data-prep.intoto.jsonl", "--step-id", "data-prep-1",
         "--step-type", "cleaning", "--", sys.executable, HERE / "data.py",
         "--out", data)

    _say("b. training: DDP over gloo, 2 ranks, slsa-torchrun, DCP checkpoints")
    train = _job(out, "train-1", key, ["--data", str(data), "--out", str(out / "train"),
                                       "--epochs", "3"], env)
    _say(f"   one provenance for the whole job: {train.relative_to(out)}")

    _say("c. fine-tuning from b's final checkpoint (the base model is a dependency by digest)")
    tune = _job(out, "finetune-1", key, ["--data", str(data), "--out", str(out / "finetune"),
                                         "--epochs", "2", "--lr", "0.1",
                                         "--init-from", str(out / "train" / "final")], env)

    _say("d. verification")
    checks = [  # (what, bundle, artifact, the builder that must have made it)
        ("data-prep", out / "provenance" / "data-prep.intoto.jsonl", data, RUN_BUILDER),
        ("training", train, out / "train" / "final", LOCAL_BUILDER),
        ("fine-tuning", tune, out / "finetune" / "final", LOCAL_BUILDER),
    ]
    for _, bundle, artifact, builder in checks:
        require = ["--require-attestation", "tpm", "--trusted-aks", str(trusted_aks)] \
            if env and bundle != checks[0][1] else []
        shown = [a.replace(f"{out}/", "") for a in require]
        _say(f"   slsa-dist verify {bundle.relative_to(out)} --builder-id {builder} "
             f"--artifact {artifact.relative_to(out)} {' '.join(shown)}".rstrip())
        _cli("verify", bundle, "--key", public, "--artifact", artifact, "--builder-id", builder,
             *require)

    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    from slsa_dist.sign._loaders import load_verifier

    verifier = load_verifier(public)
    theirs = SslibEnvelope.from_dict(json.loads(train.read_text().splitlines()[0]))
    theirs.verify([SSlibKey.from_crypto(verifier.crypto_key)], 1)  # no key id needed
    _say("   securesystemslib verified the training envelope independently")
    _sigstore_js(out, train.with_name(train.name.replace(".intoto.jsonl", ".sigstore.json")),
                 public, verifier.keyid)

    tampered = out / "tampered" / "final"
    shutil.copytree(out / "train" / "final", tampered)
    victim = sorted(tampered.glob("__1_*.distcp"))[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    rejected = _cli("verify", train, "--key", public, "--artifact", tampered, check=False,
                    quiet=True)
    if rejected.returncode != 1:
        raise SystemExit("[demo] FAILED: a tampered checkpoint was not rejected")
    _say(f"   tampered checkpoint rejected: {rejected.stdout.splitlines()[2][:110]}")
    forged = out / "tampered" / "forged.intoto.jsonl"
    envelope = json.loads(train.read_text().splitlines()[0])
    envelope["payload"] = envelope["payload"][:-8] + ("A" * 8 if not envelope["payload"]
                                                      .endswith("A" * 8) else "B" * 8)
    forged.write_text(json.dumps(envelope) + "\n")
    if _cli("verify", forged, "--key", public, check=False, quiet=True).returncode == 0:
        raise SystemExit("[demo] FAILED: a forged bundle verified")
    _say("   forged bundle rejected")

    _say("e. the whole chain: fine-tuned model -> base model -> data shards -> raw data")
    store = out / "store"
    _cli("store", "add", *(bundle for _, bundle, _, _ in checks), "--store", store, "--key", public,
         quiet=True)
    policy = out / "policy.json"
    training = {"buildType": "https://slsa-dist.dev/buildtypes/distributed-training/v1",
                "keys": ["keys/signing.pub"],
                "builderIds": [LOCAL_BUILDER],  # a local run: L1
                "slsaBuildLevel": 1}
    if env:
        training["requireAttestation"] = "tpm"
        training["trustedAks"] = sorted(  # "sha256:<AK> <node id>", as enrolled
            line.strip() for line in trusted_aks.read_text().splitlines() if line.strip())
    policy.write_text(json.dumps({
        "version": 1, "maxDepth": 5,
        "steps": [training, {"buildType": "https://slsa-dist.dev/buildtypes/step/v1",
                             "keys": ["keys/signing.pub"], "slsaBuildLevel": 1}],
        "allowedDatasets": [hashlib.sha256(digits_csv().read_bytes()).hexdigest()],
    }, indent=2) + "\n")
    vsa = out / "provenance" / "finetune-final.vsa.intoto.jsonl"
    resource = "https://models.example/digits/finetune-1"  # where the model is published
    chain = _cli("verify", "chain", out / "finetune" / "final", "--store", store,
                 "--policy", policy, "--emit-vsa", vsa, "--vsa-key", key,
                 "--resource-uri", resource, quiet=True)
    for line in chain.stdout.splitlines():
        if "(inputs shown above)" not in line:
            print(f"   {line}")
    _cli("verify", vsa, "--key", public, "--artifact", out / "finetune" / "final",
         "--resource-uri", resource, "--verifier-id", VERIFIER_ID, "--verified-level", "1",
         quiet=True)
    _say(f"   VSA for the fine-tuned model: {vsa.relative_to(out)} (verifies)")
    report = out / "report.html"
    _cli("report", *(bundle for _, bundle, _, _ in checks), "-o", report, "--key", public,
         "--chain", out / "finetune" / "final", "--store", store, "--policy", policy,
         quiet=True)
    _say(f"   report: {report.relative_to(out)} (self-contained HTML)")

    summary = [_cli("inspect", bundle, "--key", public, quiet=True).stdout
               for _, bundle, _, _ in checks]
    (out / "summary.txt").write_text("\n".join(summary))
    print()
    print(summary[1])
    _say(f"done in {time.monotonic() - start:.0f} s; everything is under {out}/ "
         f"(summaries: summary.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
