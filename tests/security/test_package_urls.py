"""Item 22: package URLs are canonical per the purl spec, built by the purl library.

``pkg:pypi/typing_extensions@...`` and an unescaped ``+`` in a local version
(``2.13.0+cpu``) made the same package two different dependencies to a
consumer comparing purls.
"""

from __future__ import annotations

from pathlib import Path

from packageurl import PackageURL

from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.collect._node import start_node_agent
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import check_bundle


def test_the_node_agent_records_canonical_purls(tmp_path: Path) -> None:
    signer = Signer.generate()
    with CoordinatorThread(job_id="j", signer=signer, out_dir=tmp_path / "out", world_size=1,
                           settle=0.1) as server:
        agent = start_node_agent(coordinator=server.address, job_id="j", node_id="n0",
                                 spool_dir=tmp_path / "spool")
        assert agent.close(30)
        bundle = server.finalize().bundle
    result = check_bundle(bundle, keys=[signer.public()])  # no rank ran: incomplete
    provenance = result.provenance
    assert provenance is not None
    assert result.checks[0].ok  # the signature
    purls = [d.uri for d in provenance.dependencies
             if d.annotations.get("slsadist_kind") == "package"]
    assert purls
    for purl in purls:
        assert purl is not None
        assert PackageURL.from_string(purl).to_string() == purl, purl  # canonical round trip
        assert "_" not in purl.split("/", 1)[1].split("@")[0], purl
        assert "+" not in purl, purl
    assert any(p.startswith("pkg:pypi/typing-extensions@") for p in purls if p)
