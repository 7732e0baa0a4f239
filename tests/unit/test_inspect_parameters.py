"""#27 item 7: ``slsa-dist inspect`` shows the parameters whole (wrapped), floats as
the signed numbers. It cut the line at 200 characters and left hyperparameters out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

PARAMETERS = {
    "entryPoint": "train.py",
    "arguments": [f"--option-{i}=value-{i}" for i in range(40)],
    "hyperparameters": {**{f"layer_{i}_dropout": 0.1 * i for i in range(30)},
                        "lr": 3e-4, "eps": 1e-8, "epochs": 3, "amp": True},
    "worldSize": 2,
}


def test_inspect_shows_a_long_parameter_set_whole(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    signer = Signer.generate()
    builder = ProvenanceBuilder(invocation_id="job")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": hashlib.sha256().hexdigest()}))
    builder.set_external_parameters(PARAMETERS)
    bundle = write_bundle(tmp_path / "job.intoto.jsonl",
                          [sign_statement(builder.build(), [signer])])
    public = tmp_path / "k.pub"
    public.write_bytes(signer.public().public_pem())
    assert cli_main(["inspect", str(bundle), "--key", str(public)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.strip() == "parameters:")
    margin = out[start].index("parameters:")  # inspect indents each envelope's summary
    lines = [line[margin:] for line in out[start + 1:]]
    shown: dict[str, str] = {}
    key = ""
    for line in lines:
        if not line.startswith("  "):
            break
        assert len(line) <= 100, line
        if line[2] != " ":  # "  key: value": a parameter
            key, _, value = line[2:].partition(": ")
            shown[key] = value
        else:  # its continuation, indented under the value
            shown[key] += line.lstrip(" ")
    assert sorted(shown) == sorted(PARAMETERS)
    for name, value in PARAMETERS.items():
        assert json.loads(shown[name]) == value, name
    assert '"lr":0.0003' in shown["hyperparameters"]
    assert '"eps":1e-8' in shown["hyperparameters"]
