"""Item 17: no credentials in signed provenance.

A git remote with user-info (``https://token@host/...``) was copied verbatim
into the code dependency; a dataset URI with a pre-signed query went into
``resolvedDependencies`` as sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.integrations._contract import _code_dependency
from slsa_dist.model._statement import redact_url

from support.gitrepo import one_commit_repo
from support.sim import Cluster, done

TOKEN = "ghp_s3cr3tT0k3n"


def test_a_token_in_the_git_remote_never_reaches_the_code_dependency(tmp_path: Path) -> None:
    git = one_commit_repo(tmp_path)
    git("remote", "add", "origin", f"https://x-access-token:{TOKEN}@git.example.com/org/repo.git")
    dependency = _code_dependency(tmp_path / "train.py")
    assert dependency is not None
    assert TOKEN not in str(dependency)
    assert dependency["uri"].startswith("git+https://git.example.com/org/repo.git@")


def test_credentials_in_a_reported_dependency_uri_are_stripped_by_the_coordinator() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(
        pb.Event(dependency=pb.Dependency(
            kind="dataset", name="d",
            uri=f"https://user:{TOKEN}@data.example.com/d.tar?X-Amz-Signature={TOKEN}&v=2",
            digest={"sha256": "ab" * 32})),
        pb.Event(shard=pb.ShardConsumed(name="s", uri=f"s3://{TOKEN}@bucket/s.tar",
                                        digest={"sha256": "cd" * 32})),
        done())
    provenance = cluster.finalize()
    assert TOKEN not in provenance.statement.to_bytes().decode()
    uris = {d.uri for d in provenance.dependencies}
    assert "https://data.example.com/d.tar" in uris
    assert "s3://bucket/s.tar" in uris


@pytest.mark.parametrize(("url", "clean"), [
    ("https://tok@host/r.git", "https://host/r.git"),
    ("https://u:p@host:8443/r.git?token=1#frag", "https://host:8443/r.git#frag"),
    ("ssh://git@host/r.git", "ssh://host/r.git"),
    ("git@github.com:org/repo.git", "github.com:org/repo.git"),
    ("file:///data/x", "file:///data/x"),
    ("pkg:pypi/torch@2.13.0", "pkg:pypi/torch@2.13.0"),
])
def test_redact_url_drops_user_info_and_queries(url: str, clean: str) -> None:
    assert redact_url(url) == clean
