"""Sign: keys, DSSE envelopes, bundle formats, the job CA, OpenSSF Model Signing.

Public: the key loaders (:func:`load_signer`, :func:`load_verifier`, :func:`keygen`)
and key types, and the bundle format registry (:data:`FORMATS`, :class:`BundleFormat`,
:func:`read_bundle`). Private modules: ``_keys`` (ECDSA P-256/P-384, Ed25519 PEM keys),
``_pkcs11`` (keys in an HSM), ``_dsse`` (envelopes; ``.intoto.jsonl``), ``_sigstore``
(Sigstore bundles v0.3), ``_formats`` (the registry), ``_ca`` (the job CA for mutual
TLS), ``_oms`` (model_signing-compatible signature files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.sign._formats import FORMATS, BundleFormat, read_bundle
    from slsa_dist.sign._keys import Signer, Verifier, keygen
    from slsa_dist.sign._loaders import load_signer, load_verifier

__all__ = ["FORMATS", "BundleFormat", "Signer", "Verifier", "keygen", "load_signer",
           "load_verifier", "read_bundle"]

__getattr__ = exports(__name__, {
    "BundleFormat": "_formats",
    "FORMATS": "_formats",
    "Signer": "_keys",
    "Verifier": "_keys",
    "keygen": "_keys",
    "load_signer": "_loaders",
    "load_verifier": "_loaders",
    "read_bundle": "_formats",
})
