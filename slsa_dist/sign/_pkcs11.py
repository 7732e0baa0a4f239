"""Signing keys in an HSM, through PKCS#11 (``--key pkcs11:...``, RFC 7512).

The private key never leaves the token: the token signs a SHA-256 (P-256) or
SHA-384 (P-384) digest with ``CKM_ECDSA``, and slsa-dist DER-encodes the r||s it
returns, so signatures are the same as with a PEM key and verify anywhere.
PKCS#11 calls go through PyKCS11 (a maintained binding), not hand-written FFI.

URI attributes used: ``token`` (token label), ``object`` (key label) and/or
``id`` (key id, percent-encoded bytes); query ``module-path`` (the PKCS#11
library, default ``$PKCS11_MODULE``), ``pin-value`` or ``pin-source``
(``file:`` path; default ``$PKCS11_PIN``). For example::

    pkcs11:token=slsa;object=coordinator?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin

Cloud KMS keys work the same way through their PKCS#11 libraries (Google Cloud
KMS's ``libkmsp11``, AWS CloudHSM's ``libcloudhsm_pkcs11``): the URI names that
library as ``module-path``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from slsa_dist.errors import InputError, SigningError
from slsa_dist.sign._keys import Signer, Verifier

__all__ = ["Pkcs11Signer", "is_pkcs11_uri"]

# CKA_EC_PARAMS of a named curve: the DER of its OID (P-256 1.2.840.10045.3.1.7,
# P-384 1.3.132.0.34); the hash each signs with, as for PEM keys.
_CURVES = {bytes.fromhex("06082a8648ce3d030107"): (ec.SECP256R1(), hashlib.sha256),
           bytes.fromhex("06052b81040022"): (ec.SECP384R1(), hashlib.sha384)}


def is_pkcs11_uri(text: str) -> bool:
    return str(text).startswith("pkcs11:")


def parse_uri(uri: str) -> tuple[dict[str, str], dict[str, bytes], dict[str, str]]:
    """(path attributes as text, the same as bytes, query attributes) of an RFC 7512 URI."""
    if not is_pkcs11_uri(uri):
        raise InputError(f"PKCS#11 key: expected a 'pkcs11:' URI, found {uri[:40]!r}")
    body = uri[len("pkcs11:"):]
    path, _, query = body.partition("?")
    raw: dict[str, bytes] = {}
    for part in filter(None, path.split(";")):
        name, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"PKCS#11 key: expected attr=value in the URI path, found {part!r}")
        raw[name] = unquote_to_bytes(value)
    text = {k: v.decode("utf-8", "replace") for k, v in raw.items()}
    return text, raw, dict(parse_qsl(query, keep_blank_values=True))


class Pkcs11Signer(Signer):
    """A :class:`Signer` whose private key stays in a PKCS#11 token."""

    def __init__(self, uri: str) -> None:
        import PyKCS11

        attributes, raw, query = parse_uri(uri)
        module = query.get("module-path") or os.environ.get("PKCS11_MODULE", "")
        if not module:
            raise InputError("PKCS#11 key: expected module-path in the URI or PKCS11_MODULE, "
                             "found neither")
        pin = query.get("pin-value")
        if pin is None and query.get("pin-source", "").startswith("file:"):
            pin = Path(query["pin-source"][len("file:"):]).read_text().strip()
        pin = pin if pin is not None else os.environ.get("PKCS11_PIN")
        self._lib = PyKCS11.PyKCS11Lib()
        try:
            self._lib.load(module)
        except PyKCS11.PyKCS11Error as exc:
            raise InputError(f"PKCS#11 module {module}: could not load it ({exc})") from None
        self._pk = PyKCS11
        self._session = self._open(attributes.get("token"), pin)
        template: list[tuple[Any, Any]] = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)]
        if "object" in attributes:
            template.append((PyKCS11.CKA_LABEL, attributes["object"]))
        if "id" in raw:
            template.append((PyKCS11.CKA_ID, tuple(raw["id"])))
        found = self._session.findObjects(template)
        if len(found) != 1:
            where = uri.partition("?")[0]
            raise InputError(f"PKCS#11 key: expected one private key matching {where!r}, "
                             f"found {len(found)}")
        self._private = found[0]
        public = self._public_key(template)
        self._lock = threading.Lock()  # a PKCS#11 session serves one call at a time
        self._public = Verifier(key=public)

    def _open(self, token: str | None, pin: str | None) -> Any:
        for slot in self._lib.getSlotList(tokenPresent=True):
            label = self._lib.getTokenInfo(slot).label.strip()
            if token is None or label == token:
                session = self._lib.openSession(slot)
                if pin is not None:
                    try:
                        session.login(pin)
                    except self._pk.PyKCS11Error as exc:  # login is per token, not session
                        if exc.value != self._pk.CKR_USER_ALREADY_LOGGED_IN:
                            raise InputError(f"PKCS#11 token {label!r}: login failed "
                                             f"({exc})") from None
                return session
        raise InputError(f"PKCS#11 key: expected a token labelled {token!r}, found none")

    def _public_key(self, template: list[tuple[Any, Any]]) -> ec.EllipticCurvePublicKey:
        pk = self._pk
        public_template = [(pk.CKA_CLASS, pk.CKO_PUBLIC_KEY), *template[1:]]
        (public,) = self._session.findObjects(public_template) or [None]
        if public is None:
            raise InputError("PKCS#11 key: expected the public key object beside the private "
                             "key (same label or id), found none")
        params, point = self._session.getAttributeValue(public, [pk.CKA_EC_PARAMS,
                                                                 pk.CKA_EC_POINT])
        if bytes(params) not in _CURVES:
            raise InputError("PKCS#11 key: expected an EC key on P-256 or P-384, found "
                             f"parameters {bytes(params).hex()}")
        curve, self._digest = _CURVES[bytes(params)]
        encoded = bytes(point)
        if encoded[0] == 0x04 and len(encoded) > 2 and encoded[1] == len(encoded) - 2:
            encoded = encoded[2:]  # CKA_EC_POINT is a DER OCTET STRING around the point
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, encoded)

    def sign(self, data: bytes) -> bytes:
        try:
            with self._lock:
                raw = bytes(self._session.sign(self._private, self._digest(data).digest(),
                                               self._pk.Mechanism(self._pk.CKM_ECDSA)))
        except self._pk.PyKCS11Error as exc:
            raise SigningError(f"signing with PKCS#11 key {self.keyid[:16]} failed: {exc}") \
                from exc
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                    int.from_bytes(raw[half:], "big"))

    def private_pem(self) -> bytes:
        raise SigningError("a PKCS#11 key stays in its token: there is no PEM to write")

    def derive_secret(self, label: str) -> bytes:
        raise SigningError("a PKCS#11 key cannot derive a secret outside its token")
