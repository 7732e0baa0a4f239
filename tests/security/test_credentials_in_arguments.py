"""Issue 25 F11: credentials on the command line are not signed into the provenance.

``externalParameters.arguments`` (and ``slsa-dist run``'s ``command``) held the
command line verbatim: a token in a URL's user-info, a pre-signed query, a
``--hf-token`` value or an ``HF_TOKEN=`` assignment was signed for anyone who
reads the bundle. One rule (``slsa_dist.model._statement.redact_parameters``) now
applies where a rank records parameters, where the coordinator takes them in,
and where any statement is built, so a rank that sends them raw cannot bypass it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.cli import main as cli_main
from slsa_dist.sign._formats import read_bundle

from support.background import signing_key
from support.sim import Cluster, done

TOKEN = "hf_s3cr3tT0k3nZZ"
SECRETS = [f"--hf-token={TOKEN}", "--hf-token", TOKEN, f"HF_TOKEN={TOKEN}",
           f"https://user:{TOKEN}@data.example.com/d.tar",
           f"https://bucket.example.com/w.bin?X-Amz-Signature={TOKEN}&X-Amz-Credential=a"]


def test_a_run_step_signs_no_credential_from_its_command(tmp_path: Path) -> None:
    key, _ = signing_key(tmp_path)
    out = tmp_path / "out.bin"
    bundle = tmp_path / "step.intoto.jsonl"
    assert cli_main(["run", "--output", str(out), "--key", str(key), "--bundle", str(bundle),
                     "--", sys.executable, "-c",
                     f"open({str(out)!r}, 'wb').write(b'x')", *SECRETS]) == 0
    payload = read_bundle(bundle)[0].payload.decode()
    assert TOKEN not in payload
    command = json.loads(payload)["predicate"]["buildDefinition"]["externalParameters"][
        "command"]
    assert command[-6:] == ["--hf-token=[REDACTED]", "--hf-token", "[REDACTED]",
                            "HF_TOKEN=[REDACTED]", "https://data.example.com/d.tar",
                            "https://bucket.example.com/w.bin"]


def test_a_rank_sending_raw_arguments_cannot_get_them_signed() -> None:
    """The rank side redacts too, but the coordinator must not rely on it: parameters
    sent raw on the wire are redacted before the statement is built."""
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(
        pb.Event(parameters=pb.Parameters(
            external_json=json.dumps({"entryPoint": "train.py", "arguments": SECRETS,
                                      "hyperparameters": {"hf_token": TOKEN}}),
            internal_json=json.dumps({"launcher": "torchrun",
                                      "rendezvous": {"endpoint": f"https://u:{TOKEN}@h:1"}}))),
        done())
    provenance = cluster.finalize()
    signed = provenance.statement.to_bytes().decode()
    assert TOKEN not in signed
    assert provenance.external_parameters["arguments"][:3] == [
        "--hf-token=[REDACTED]", "--hf-token", "[REDACTED]"]
