"""Digest: hashing files and folders into OpenSSF Model Signing (OMS) manifests.

:func:`digest_path` hashes a file or a directory (in parallel, sharded like
``model_signing``) into a :class:`Manifest`; ``Manifest.identity`` is the one rule
for an artifact's digest (a file's own SHA-256, a directory's manifest root).
Which algorithms are allowed is the model's rule (:mod:`slsa_dist.model`).
"""

from __future__ import annotations

from slsa_dist.digest._manifest import Manifest, Resource, digest_path

__all__ = ["Manifest", "Resource", "digest_path"]
