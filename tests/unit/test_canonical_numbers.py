"""#27 item 7: parameters keep their JSON types; a float is written as RFC 8785 (JCS)
writes it, so the signed bytes stay deterministic.

Before: canonical JSON refused floats, so the agent sent them as strings
(``"lr": "0.01"``) and the coordinator refused a float it was sent.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from pathlib import Path

import pytest

from slsa_dist._internal import canonical
from slsa_dist.collect._agent import Agent, RankIdentity, jsonable
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import verify_bundle

# RFC 8785 Appendix B: IEEE 754 doubles (hex) and their JCS serialization.
RFC8785_APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
# Hyperparameters as training scripts set them, and ECMAScript's String(x) for each.
EVERYDAY = [(0.01, "0.01"), (3e-4, "0.0003"), (1e-5, "0.00001"), (1e-7, "1e-7"),
            (0.9, "0.9"), (0.999, "0.999"), (2.0, "2"), (-1.5, "-1.5"), (1e21, "1e+21"),
            (1e20, "100000000000000000000"), (123.456, "123.456"), (0.1 + 0.2,
                                                                    "0.30000000000000004")]


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), RFC8785_APPENDIX_B)
def test_floats_are_written_as_rfc8785_appendix_b_says(bits: str, expected: str) -> None:
    value = _double(bits)
    assert canonical.number(value) == expected
    assert canonical.dumps({"x": [value]}) == f'{{"x":[{expected}]}}'


@pytest.mark.parametrize(("value", "expected"), EVERYDAY)
def test_everyday_floats(value: float, expected: str) -> None:
    assert canonical.dumps(value) == expected
    assert float(json.loads(expected)) == value  # the shortest form reads back exactly


def test_a_jcs_implementation_agrees_on_random_doubles() -> None:
    """Cross-check with the ``rfc8785`` package (Trail of Bits), when installed."""
    rfc8785 = pytest.importorskip("rfc8785")
    draw = random.Random(8785)
    for _ in range(20_000):
        value = _double(f"{draw.getrandbits(64):016x}")
        if value == value and abs(value) != float("inf"):
            assert canonical.number(value) == rfc8785.dumps(value).decode(), repr(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_refused_with_their_path(value: float) -> None:
    with pytest.raises(TypeError, match=r"\$\.hyperparameters\.lr: expected a finite number"):
        canonical.dumps({"hyperparameters": {"lr": value}})


def test_ints_stay_ints_and_bools_bools() -> None:
    text = canonical.dumps({"big": 2**53 + 1, "one": 1, "yes": True, "no": False, "f": 1.5,
                            "neg": -7, "nested": [{"b": 0.5, "a": 1}]})
    assert text == ('{"big":9007199254740993,"f":1.5,"neg":-7,"nested":[{"a":1,"b":0.5}],'
                    '"no":false,"one":1,"yes":true}')


def test_same_values_same_bytes_whatever_the_order() -> None:
    one = {"b": [1.25, {"y": 1e-7, "x": "s"}], "a": 0.1}
    two = {"a": 0.1, "b": [1.25, {"x": "s", "y": 1e-7}]}
    assert canonical.dumps_bytes(one) == canonical.dumps_bytes(two)
    assert canonical.dumps_bytes(one) == b'{"a":0.1,"b":[1.25,{"x":"s","y":1e-7}]}'


def test_the_agent_keeps_parameter_floats_and_names_non_finite_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    assert jsonable({"lr": 0.01, "steps": [1, 2.5], "on": True}, floats=True) == {
        "lr": 0.01, "steps": [1, 2.5], "on": True}
    assert jsonable({"x": float("nan"), "y": [float("-inf")]}, floats=True) == {
        "x": "NaN", "y": ["-Infinity"]}
    assert "parameter $.x is nan" in caplog.text
    assert "$.y[0]" in caplog.text
    # Elsewhere (inventory, annotations) floats are still strings: records hold none.
    assert jsonable({"lr": 0.01}) == {"lr": "0.01"}


def test_the_builder_takes_floats() -> None:
    builder = ProvenanceBuilder(invocation_id="j")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": "ab" * 32}))
    builder.set_external_parameters({"hyperparameters": {"lr": 0.01, "wd": 1e-7, "n": 3}})
    text = builder.build().to_bytes().decode()
    assert '"hyperparameters":{"lr":0.01,"n":3,"wd":1e-7}' in text


@pytest.mark.grpc
@pytest.mark.timeout(60)
def test_a_float_hyperparameter_round_trips_to_a_verified_statement(tmp_path: Path) -> None:
    signer = Signer.generate()
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.1) as server:
        agent = Agent(coordinator=server.address, job_id="j", spool_dir=tmp_path / "sp",
                      identity=RankIdentity(rank=0, world_size=1, node_id="n"))
        agent.set_parameters(external={"hyperparameters": {
            "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "epochs": 3, "amp": True,
            "clip": float("inf")}}, internal={"scale": 0.5})
        agent.complete()
        assert agent.close(30)
        result = server.wait_finalized(30)
    provenance = verify_bundle(result.bundle, keys=[signer.public()]).provenance
    hyper = provenance.external_parameters["hyperparameters"]
    assert hyper == {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "epochs": 3, "amp": True,
                     "clip": "Infinity"}
    assert isinstance(hyper["epochs"], int)
    assert isinstance(hyper["lr"], float)
    assert provenance.internal_parameters["scale"] == 0.5
    signed = base64.b64decode(json.loads(result.bundle.read_text().splitlines()[0])["payload"])
    assert b'"hyperparameters":{"amp":true,"betas":[0.9,0.999],"clip":"Infinity","epochs":3,' \
           b'"eps":1e-8,"lr":0.01}' in signed
    # the signed bytes are the canonical bytes of what they say
    assert canonical.dumps_bytes(json.loads(signed)) == signed
