"""OCI registries: a model pushed with its bundles attached as referrers, pulled and
verified from `oci://...@sha256:...`, against Debian's docker-registry (Distribution
2.8, no referrers API: the OCI 1.1 tag fallback) started on loopback by the test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from slsa_dist.errors import InputError
from slsa_dist.sign._formats import read_bundle, write_signed
from slsa_dist.sign._keys import Signer

from conftest import need
from support.background import free_port, signing_key
from support.sim import signed_ledger_job

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(180)]

SLSA = [sys.executable, "-m", "slsa_dist.cli"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need(shutil.which("docker-registry") is not None,
         "docker-registry not installed (Debian package docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: the registry answers /v2/ within a second here
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, "docker-registry exited"
                assert time.monotonic() < deadline, "docker-registry did not answer in 30 s"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SLSA, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model directory made by `slsa-dist run`, its provenance in both formats."""
    root = tmp_path_factory.mktemp("model")
    key, public = signing_key(root)
    model = root / "model"
    code = (f"import os; os.makedirs({str(model / 'shards')!r}); "
            f"open({str(model / 'config.json')!r}, 'w').write('{{}}'); "
            f"open({str(model / 'shards' / 'part-0.bin')!r}, 'wb').write(b'w' * 4096)")
    done = cli("run", "--output", str(model), "--key", str(key), "--bundle",
               str(root / "model.intoto.jsonl"), "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    (envelope,) = read_bundle(root / "model.intoto.jsonl")
    write_signed(root / "model.sigstore.json", envelope)
    return {"model": model, "public": public, "intoto": root / "model.intoto.jsonl",
            "sigstore": root / "model.sigstore.json", "root": root}


def test_push_then_verify_from_the_registry(registry: str,
                                            signed_model: dict[str, Path]) -> None:
    done = cli("push", str(signed_model["model"]), f"oci://{registry}/models/demo:v1",
               "--attach", str(signed_model["sigstore"]), "--attach", str(signed_model["intoto"]))
    assert done.returncode == 0, done.stderr
    reference = done.stdout.strip().splitlines()[-1]
    assert reference.startswith(f"oci://{registry}/models/demo@sha256:")
    verified = cli("verify", reference, "--key", str(signed_model["public"]))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("\nverified") == 2  # both attached bundles
    assert "2 attached bundle(s)" in verified.stdout
    # Distribution 2.8 has no referrers API: the OCI 1.1 fallback tag lists them
    digest = reference.rsplit("@", 1)[1]
    request = urllib.request.Request(
        f"http://{registry}/v2/models/demo/manifests/{digest.replace(':', '-')}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        index = json.loads(answer.read())
    assert sorted(m["artifactType"] for m in index["manifests"]) == [
        "application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dsse.envelope.v1+json"]
    # #27 item 8: the annotations Sigstore-aware tools filter referrers on
    for listed in index["manifests"]:
        annotations = listed["annotations"]
        assert annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
        assert annotations["dev.sigstore.bundle.predicateType"] == \
            "https://slsa.dev/provenance/v1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                            annotations["org.opencontainers.image.created"])


def test_a_different_model_with_a_genuine_bundle_attached_fails(
        registry: str, signed_model: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "model"
    shutil.copytree(signed_model["model"], other)
    (other / "shards" / "part-0.bin").write_bytes(b"x" * 4096)  # tampered weights
    done = cli("push", str(other), f"oci://{registry}/models/tampered:v1",
               "--attach", str(signed_model["sigstore"]))
    assert done.returncode == 0, done.stderr
    verified = cli("verify", done.stdout.strip().splitlines()[-1], "--key",
                   str(signed_model["public"]))
    assert verified.returncode == 1, verified.stdout
    assert "NOT verified" in verified.stdout


def test_a_model_without_attached_bundles_is_one_clear_line(
        registry: str, signed_model: dict[str, Path]) -> None:
    done = cli("push", str(signed_model["model"]), f"oci://{registry}/models/bare:v1")
    assert done.returncode == 0, done.stderr
    verified = cli("verify", done.stdout.strip().splitlines()[-1], "--key",
                   str(signed_model["public"]))
    assert verified.returncode == 2
    assert "expected a signed bundle attached to sha256:" in verified.stderr


def test_verify_chain_follows_the_registry_in_place_of_the_store(
        registry: str, chain: dict[str, Path]) -> None:
    """raw.csv -> clean -> model.bin -> model-q.bin, each pushed with its bundle into one
    repository; `verify chain` finds every producer there by digest."""
    root = chain["artifact"].parent
    for name, output in (("clean", root / "clean"), ("train", root / "model.bin"),
                         ("quant", root / "model-q.bin")):
        done = cli("push", str(output), f"oci://{registry}/chain:{name}",
                   "--attach", str(chain[name]))
        assert done.returncode == 0, done.stderr
    done = cli("verify", "chain", str(chain["artifact"]), "--store", f"oci://{registry}/chain",
               "--policy", str(chain["policy"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chain verified: 3 step(s), 0 gap(s)" in done.stdout
    # #27 item 8: the VSA names each input attestation where it lives, the registry's
    # referrer, not the temporary copy verify read
    vsa = chain["artifact"].parent / "registry.vsa.intoto.jsonl"
    done = cli("verify", "chain", str(chain["artifact"]), "--store", f"oci://{registry}/chain",
               "--policy", str(chain["policy"]), "--emit-vsa", str(vsa), "--vsa-key",
               str(chain["key"]))
    assert done.returncode == 0, done.stdout + done.stderr
    uris = [i["uri"] for i in json.loads(read_bundle(vsa)[0].payload)["predicate"][
        "inputAttestations"]]
    assert len(uris) == 3
    assert all(re.fullmatch(rf"oci://{re.escape(registry)}/chain@sha256:[0-9a-f]{{64}}", u)
               for u in uris), uris
    # the same chain against a repository that holds only the last step: a gap, named
    cli("push", str(chain["artifact"]), f"oci://{registry}/partial:q", "--attach",
        str(chain["quant"]))
    partial = cli("verify", "chain", str(chain["artifact"]), "--store",
                  f"oci://{registry}/partial", "--policy", str(chain["policy"]))
    assert partial.returncode == 1
    assert "no provenance in the store produced this digest" in partial.stdout


def test_a_layer_named_outside_the_artifact_is_refused(registry: str, tmp_path: Path) -> None:
    """A registry (or whoever can push) names a layer ../../x: pull writes nothing there."""
    from slsa_dist.verify import _oci as oci

    ref = oci.parse(f"oci://{registry}/models/escape:v1")
    client = oci._client(ref)
    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"w")
    layers = oci._layers(client, ref, tmp_path, [payload], "application/octet-stream")
    layers[0]["annotations"][oci.TITLE] = "../../escaped.bin"
    oci._upload_manifest(client, ref, {"schemaVersion": 2, "mediaType": oci.MANIFEST,
                                       "config": oci._config(client, ref), "layers": layers},
                         tag="v1")
    with pytest.raises(InputError, match="expected a file name inside the artifact"):
        oci.pull(f"oci://{registry}/models/escape:v1", tmp_path / "pulled")
    assert not (tmp_path / "escaped.bin").exists()


def test_a_referrer_listed_under_another_model_is_not_taken(
        registry: str, signed_model: dict[str, Path], tmp_path: Path) -> None:
    """The fallback index is a mutable tag: a bundle attached to model A, listed under
    model B, names A as its subject and is not B's."""
    from slsa_dist.verify import _oci as oci

    first = cli("push", str(signed_model["model"]), f"oci://{registry}/models/pair:a",
                "--attach", str(signed_model["sigstore"]))
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"other weights")
    second = cli("push", str(other), f"oci://{registry}/models/pair:b")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    a = first.stdout.strip().splitlines()[-1].rsplit("@", 1)[1]
    b = second.stdout.strip().splitlines()[-1].rsplit("@", 1)[1]
    ref = oci.parse(f"oci://{registry}/models/pair:b")
    client = oci._client(ref)
    (listed,) = oci._referrers(client, ref, a)[0]["manifests"]
    oci._add_to_fallback(client, ref, b, listed)
    assert oci.pull(f"oci://{registry}/models/pair@{b}", tmp_path / "pulled").bundles == []


def test_a_large_job_s_ledger_travels_with_its_bundle(registry: str, tmp_path: Path) -> None:
    """Issue 17: the ledger and its index go into the bundle's referrer, titled by the
    ledger's digest; pulled, the bundle finds it beside it and verify checks every record.
    A bundle pushed without its ledger says so."""
    from slsa_dist.verify import _oci as oci
    from slsa_dist.verify._bundle import check_bundle

    signer = Signer.generate()
    bundle = signed_ledger_job(tmp_path / "job", signer)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    warnings: list[str] = []
    oci.push(model, f"oci://{registry}/models/large:v1", attachments=[bundle],
             warnings=warnings)
    assert warnings == []
    pulled = oci.pull(f"oci://{registry}/models/large:v1", tmp_path / "pulled")
    assert [b.name for b in pulled.bundles] == ["big.intoto.jsonl"]  # not the ledger
    assert len(list((tmp_path / "pulled" / "attached").glob("*.ledger.jsonl*"))) == 2
    result = check_bundle(pulled.bundles[0], keys=[signer.public()])
    (ledger,) = [c for c in result.checks if c.name == "ledger"]
    assert ledger.ok, ledger
    assert not any("not beside" in n for n in result.notes)

    (tmp_path / "job" / "big.ledger.jsonl").unlink()
    warnings.clear()
    oci.push(model, f"oci://{registry}/models/large:v2", attachments=[bundle],
             warnings=warnings)
    (warning,) = warnings
    assert "record ledger big.ledger.jsonl not found beside it" in warning
