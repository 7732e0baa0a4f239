"""TPM 2.0 credential activation, made and re-checked in Python (no TPM needed).

``TPM2_MakeCredential`` (TPM 2.0 Part 1, 24; Part 3, 12.6) wraps a secret so that
only the TPM holding a given endorsement key (EK) *and* a loaded object of a given
name (the AK) can unwrap it with ``TPM2_ActivateCredential``. The challenger draws a
seed, encrypts it to the EK (RSA-OAEP, label ``IDENTITY``), derives from it an AES key
bound to the AK's name and an HMAC key, and sends the secret encrypted and MACed. For
an ECC EK the seed is not encrypted but agreed (Part 1, 11.4.10.3 and C.6.4): the
challenger draws an ephemeral key, the seed is KDFe over the x-coordinate of the ECDH
shared point, with label ``IDENTITY``, the ephemeral and the EK's x-coordinates, and
the ephemeral public point is sent in its place.

The coordinator is the challenger (:func:`challenge`): it keeps the seed and the
OAEP randomness until the node has answered, then records them (the *opening*) with
the challenge, so that an offline verifier re-makes the very same bytes from the EK
certificate's public key and the AK's name (:func:`open_challenge`): the challenge
was made to that EK for that AK, and it yields the secret the node must have
unwrapped. What the verifier cannot re-check, and trusts the coordinator for, is
that the secret was not disclosed before the node answered.

Supported: the TCG EK templates L-1/H-1 (RSA 2048) and L-2/H-2 (ECC NIST P-256), with
the SHA-256 name algorithm and AES-128-CFB, and H-3 (ECC NIST P-384, SHA-384 and
AES-256-CFB: swtpm's ECC EK): the EK certificate's key says which. The seed, the KDFs
and the outer HMAC use the EK's name algorithm. The opening of an ECC challenge is the
ephemeral private scalar.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from slsa_dist.errors import InputError

__all__ = ["FORMAT", "AkPublic", "Opened", "activation_mac", "challenge", "kdfa", "kdfe",
           "make_credential", "make_credential_ecc", "open_challenge", "parse_public",
           "tools_blob"]

FORMAT = "tpm2-credential/v1"
_LABEL = b"IDENTITY\0"
_ALG_SHA256 = 0x000B
_ALG_ECC = 0x0023
_ALG_NULL = 0x0010
_CURVES: dict[int, ec.EllipticCurve] = {0x0003: ec.SECP256R1(), 0x0004: ec.SECP384R1()}
# TPMA_OBJECT bits an attestation key must have: the key never leaves this TPM
# (fixedTPM, fixedParent), the TPM made it (sensitiveDataOrigin), and it signs only
# what the TPM itself produced (restricted + sign), never outside data.
FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN = 0x2, 0x10, 0x20
RESTRICTED, DECRYPT, SIGN = 0x10000, 0x20000, 0x40000
AK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN
_ACTIVATION = b"slsa-dist/v1 tpm activation\0"
_TOOLS_MAGIC, _TOOLS_VERSION = 0xBADCC0DE, 1  # tpm2-tools' makecredential file header


def kdfa(key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int, *,
         hash_name: str = "sha256") -> bytes:
    """KDFa (TPM 2.0 Part 1, 11.4.10.2: SP 800-108 counter mode HMAC)."""
    if not label.endswith(b"\0"):
        label += b"\0"
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, struct.pack(">I", counter) + label + context_u + context_v
                        + struct.pack(">I", bits), hash_name).digest()
    return out[:bits // 8]


def kdfe(z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int, *,
         hash_name: str = "sha256") -> bytes:
    """KDFe (TPM 2.0 Part 1, 11.4.10.3: SP 800-56A concatenation KDF)."""
    if not label.endswith(b"\0"):
        label += b"\0"
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hashlib.new(hash_name, struct.pack(">I", counter) + z + label + party_u
                           + party_v).digest()
    return out[:bits // 8]


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">I", counter)).digest()
        counter += 1
    return out[:length]


def _oaep_encrypt(key: rsa.RSAPublicKey, message: bytes, oaep_seed: bytes) -> bytes:
    """RSAES-OAEP (RFC 8017, 7.1.1) with SHA-256 and MGF1-SHA-256, label ``IDENTITY``,
    its randomness given: the same inputs give the same bytes, so a verifier re-makes it."""
    numbers = key.public_numbers()
    k = (key.key_size + 7) // 8
    h_len = 32
    if len(oaep_seed) != h_len or len(message) > k - 2 * h_len - 2:
        raise InputError("RSA-OAEP: expected a 32-byte seed and a short message")
    db = (hashlib.sha256(_LABEL).digest() + b"\0" * (k - len(message) - 2 * h_len - 2)
          + b"\x01" + message)
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1(oaep_seed, k - h_len - 1), strict=True))
    masked_seed = bytes(a ^ b for a, b in zip(oaep_seed, _mgf1(masked_db, h_len), strict=True))
    em = int.from_bytes(b"\0" + masked_seed + masked_db, "big")
    return pow(em, numbers.e, numbers.n).to_bytes(k, "big")


def _cfb(key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    """AES-CFB128 with a zero IV (the TPM's parameter encryption of the credential), built
    on the AES block function: CFB itself is deprecated in ``cryptography``."""
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 -- one block
    previous, out = b"\0" * 16, b""
    for start in range(0, len(data), 16):
        chunk = data[start:start + 16]
        stream = block.update(previous)
        mixed = bytes(a ^ b for a, b in zip(chunk, stream, strict=False))
        out += mixed
        previous = chunk if decrypt else mixed
    return out


def _sized(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def make_credential(ek: rsa.RSAPublicKey, name: bytes, credential: bytes, *, seed: bytes,
                    oaep_seed: bytes) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential for an RSA 2048 EK (template L-1); returns (TPM2B_ID_OBJECT,
    TPM2B_ENCRYPTED_SECRET). Deterministic in ``seed`` and ``oaep_seed``.

    Raises:
        InputError: an EK other than RSA 2048, or wrong sizes.
    """
    if ek.key_size != 2048 or len(seed) != 32 or not 0 < len(credential) <= 32:
        raise InputError(f"MakeCredential: expected an RSA 2048 EK, a 32-byte seed and a "
                         f"credential of 1-32 bytes, found RSA {ek.key_size}, {len(seed)}, "
                         f"{len(credential)}")
    encrypted = _oaep_encrypt(ek, seed, oaep_seed)
    return _id_object(seed, name, credential), _sized(encrypted)


def _profile(ek: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> tuple[str, int]:
    """(the EK's name algorithm, its AES key bits) by the TCG EK template of its key."""
    if isinstance(ek, ec.EllipticCurvePublicKey) and isinstance(ek.curve, ec.SECP384R1):
        return "sha384", 256
    return "sha256", 128


def _id_object(seed: bytes, name: bytes, credential: bytes,
               profile: tuple[str, int] = ("sha256", 128)) -> bytes:
    """TPM2B_ID_OBJECT: the credential under the seed's AES key for ``name``, MACed."""
    hash_name, sym_bits = profile
    sym_key = kdfa(seed, b"STORAGE", name, b"", sym_bits, hash_name=hash_name)
    enc_identity = _cfb(sym_key, _sized(credential), decrypt=False)
    hmac_key = kdfa(seed, b"INTEGRITY", b"", b"", 8 * hashlib.new(hash_name).digest_size,
                    hash_name=hash_name)
    outer = hmac.new(hmac_key, enc_identity + name, hash_name).digest()
    return _sized(_sized(outer) + enc_identity)


def _ecc_seed(ek: ec.EllipticCurvePublicKey, ephemeral: int) -> tuple[bytes, bytes]:
    """(seed, TPMS_ECC_POINT of the ephemeral key) for an ECC P-256 or P-384 EK (Part 1,
    C.6.4): KDFe over the ECDH shared x-coordinate, sized to the EK's name algorithm."""
    if not isinstance(ek.curve, (ec.SECP256R1, ec.SECP384R1)):
        raise InputError(f"MakeCredential: expected a NIST P-256 or P-384 EK, found curve "
                         f"{ek.curve.name}")
    size = ek.curve.key_size // 8
    hash_name, _ = _profile(ek)
    try:
        private = ec.derive_private_key(ephemeral, ek.curve)
    except ValueError as exc:
        raise InputError(f"MakeCredential: ephemeral key not valid ({exc})") from None
    z = private.exchange(ec.ECDH(), ek)  # the shared point's x-coordinate
    mine = private.public_key().public_numbers()
    u, v = mine.x.to_bytes(size, "big"), ek.public_numbers().x.to_bytes(size, "big")
    point = _sized(u) + _sized(mine.y.to_bytes(size, "big"))
    return kdfe(z, b"IDENTITY", u, v, 8 * hashlib.new(hash_name).digest_size,
                hash_name=hash_name), point


def make_credential_ecc(ek: ec.EllipticCurvePublicKey, name: bytes, credential: bytes, *,
                        ephemeral: int) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential for an ECC P-256 or P-384 EK; returns (TPM2B_ID_OBJECT,
    TPM2B_ENCRYPTED_SECRET holding the ephemeral TPMS_ECC_POINT). Deterministic in the
    ephemeral private scalar ``ephemeral``.

    Raises:
        InputError: an EK on another curve, a bad scalar, or a wrong credential size.
    """
    if not 0 < len(credential) <= 32:
        raise InputError(f"MakeCredential: expected a credential of 1-32 bytes, found "
                         f"{len(credential)}")
    seed, point = _ecc_seed(ek, ephemeral)
    return _id_object(seed, name, credential, _profile(ek)), _sized(point)


def tools_blob(id_object: bytes, encrypted_secret: bytes) -> bytes:
    """The file ``tpm2_makecredential`` writes and ``tpm2_activatecredential -i`` reads."""
    return struct.pack(">II", _TOOLS_MAGIC, _TOOLS_VERSION) + id_object + encrypted_secret


@dataclass(frozen=True)
class AkPublic:
    """The parts of an AK's TPMT_PUBLIC that verification needs."""

    name: bytes  # nameAlg || H(TPMT_PUBLIC): what a credential is bound to
    attributes: int
    key: ec.EllipticCurvePublicKey


def parse_public(data: bytes) -> AkPublic:
    """A TPM2B_PUBLIC (what ``tpm2_readpublic -o`` writes) of an ECC signing key.

    Raises:
        InputError: truncated, not ECC, not SHA-256 named, or an unknown curve.
    """
    def take(offset: int, count: int) -> bytes:
        if offset + count > len(data):
            raise InputError(f"TPM2B_PUBLIC: truncated at offset {offset}")
        return data[offset:offset + count]

    def u16(offset: int) -> int:
        return int(struct.unpack(">H", take(offset, 2))[0])

    size = u16(0)
    if size + 2 != len(data):
        raise InputError(f"TPM2B_PUBLIC: expected {size + 2} bytes, found {len(data)}")
    area = data[2:]
    kind, name_alg = u16(2), u16(4)
    attributes = int(struct.unpack(">I", take(6, 4))[0])
    if kind != _ALG_ECC or name_alg != _ALG_SHA256:
        raise InputError(f"AK public area: expected an ECC key named with SHA-256, found "
                         f"type {kind:#x} name algorithm {name_alg:#x}")
    offset = 10
    offset += 2 + u16(offset)  # authPolicy
    symmetric = u16(offset)
    offset += 2 if symmetric == _ALG_NULL else 6
    scheme = u16(offset)
    offset += 2 if scheme == _ALG_NULL else 4
    curve = _CURVES.get(u16(offset))
    if curve is None:
        raise InputError(f"AK public area: unsupported curve {u16(offset):#x}")
    offset += 2
    kdf = u16(offset)
    offset += 2 if kdf == _ALG_NULL else 4
    x = take(offset + 2, u16(offset))
    offset += 2 + len(x)
    y = take(offset + 2, u16(offset))
    offset += 2 + len(y)
    if offset != len(data):
        raise InputError(f"TPM2B_PUBLIC: {len(data) - offset} bytes after the public area")
    try:
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            curve).public_key()
    except ValueError as exc:
        raise InputError(f"AK public area: not a point on the curve ({exc})") from None
    name = struct.pack(">H", _ALG_SHA256) + hashlib.sha256(area).digest()
    return AkPublic(name=name, attributes=attributes, key=key)


def activation_mac(credential: bytes, attest: bytes) -> bytes:
    """What the node returns to show it unwrapped ``credential``: an HMAC over its quote."""
    return hmac.new(credential, _ACTIVATION + attest, hashlib.sha256).digest()


def _ek_key(ek_certificate: bytes) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    try:
        key = x509.load_der_x509_certificate(ek_certificate).public_key()
    except ValueError as exc:
        raise InputError(f"EK certificate: expected DER, found {exc}") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            key.curve, (ec.SECP256R1, ec.SECP384R1)):
        return key
    found = f"RSA {key.key_size}" if isinstance(key, rsa.RSAPublicKey) else \
        f"ECC {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey) else \
        type(key).__name__
    raise InputError(f"EK certificate: expected an RSA 2048 (template L-1/H-1) or ECC "
                     f"P-256 (L-2/H-2) or P-384 (H-3) EK, found {found}")


def _make(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, name: bytes, credential: bytes,
          opening: dict[str, str]) -> tuple[bytes, bytes]:
    """MakeCredential for either EK from a recorded opening. Raises InputError."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            return make_credential_ecc(key, name, credential,
                                       ephemeral=int(opening["ephemeral"], 16))
        seed, oaep_seed = bytes.fromhex(opening["seed"]), bytes.fromhex(opening["oaepSeed"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"credential challenge: malformed opening ({exc})") from None
    return make_credential(key, name, credential, seed=seed, oaep_seed=oaep_seed)


def challenge(ek_certificate: bytes, ak_public: bytes) -> tuple[bytes, bytes]:
    """The coordinator's credential challenge to the EK of ``ek_certificate`` for the AK
    of ``ak_public`` (TPM2B_PUBLIC). Returns (the record, JSON, with the opening: kept by
    the coordinator and put in the bundle; the blob for the node: ``tools_blob``).

    Raises:
        InputError: the EK is not RSA 2048, ECC P-256 or P-384, or the AK public area is
            malformed.
    """
    key = _ek_key(ek_certificate)
    ak = parse_public(ak_public)
    credential = secrets.token_bytes(32)
    if isinstance(key, ec.EllipticCurvePublicKey):
        scalar = ec.generate_private_key(key.curve).private_numbers().private_value
        opening = {"ephemeral": f"{scalar:x}"}
    else:
        opening = {"seed": secrets.token_bytes(32).hex(),
                   "oaepSeed": secrets.token_bytes(32).hex()}
    id_object, encrypted = _make(key, ak.name, credential, opening)
    record = {"format": FORMAT,
              "ekSha256": hashlib.sha256(ek_certificate).hexdigest(),
              "akName": ak.name.hex(),
              "credentialBlob": base64.b64encode(id_object).decode(),
              "encryptedSecret": base64.b64encode(encrypted).decode(),
              "opening": opening}
    return json.dumps(record, sort_keys=True).encode(), tools_blob(id_object, encrypted)


@dataclass(frozen=True)
class Opened:
    """A challenge re-made and unwrapped by the verifier."""

    credential: bytes
    ek_sha256: str
    ak_name: bytes


def open_challenge(record: bytes, ek_certificate: bytes, ak_name: bytes) -> Opened:
    """Re-make the recorded challenge from its opening, the EK certificate's key and the
    AK's name; every recorded byte must match. Returns the secret it wraps.

    Raises:
        InputError: malformed, or made to another EK or for another AK name.
    """
    try:
        data: Any = json.loads(record)
        opening = data["opening"]
        if not isinstance(opening, dict):
            raise TypeError("opening: expected an object")
        id_object = base64.b64decode(data["credentialBlob"], validate=True)
        encrypted = base64.b64decode(data["encryptedSecret"], validate=True)
        ek_sha256, recorded_name = str(data["ekSha256"]), bytes.fromhex(data["akName"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"credential challenge: malformed ({exc})") from None
    if ek_sha256 != hashlib.sha256(ek_certificate).hexdigest():
        raise InputError(f"credential challenge: made to EK certificate sha256:{ek_sha256[:16]}"
                         "..., not the one in the evidence")
    if recorded_name != ak_name:
        raise InputError(f"credential challenge: made for AK name {recorded_name.hex()[:20]}..., "
                         f"not the quoting AK's {ak_name.hex()[:20]}...")
    key = _ek_key(ek_certificate)
    profile = _profile(key)
    digest_size = hashlib.new(profile[0]).digest_size
    if len(id_object) < 4 + digest_size:
        raise InputError("credential challenge: expected a credential blob")
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            seed = _ecc_seed(key, int(str(opening["ephemeral"]), 16))[0]
        except (KeyError, ValueError) as exc:
            raise InputError(f"credential challenge: malformed opening ({exc})") from None
    else:
        try:
            seed = bytes.fromhex(str(opening["seed"]))
        except (KeyError, ValueError) as exc:
            raise InputError(f"credential challenge: malformed opening ({exc})") from None
        if len(seed) != 32:
            raise InputError("credential challenge: expected a 32-byte seed")
    # Unwrap with the seed, as the TPM does, then re-make and compare every byte.
    enc_identity = id_object[2 + 2 + digest_size:]
    plain = _cfb(kdfa(seed, b"STORAGE", ak_name, b"", profile[1], hash_name=profile[0]),
                 enc_identity, decrypt=True)
    credential = plain[2:2 + int.from_bytes(plain[:2], "big")]
    remade = _make(key, ak_name, credential, opening) if credential else (b"", b"")
    if remade != (id_object, encrypted):
        raise InputError("credential challenge: the recorded credential blob and encrypted "
                         "seed are not what MakeCredential makes from its opening for this EK "
                         "and AK name")
    return Opened(credential=credential, ek_sha256=ek_sha256, ak_name=ak_name)


def ek_public_pem(ek_certificate: bytes) -> bytes:
    """The EK certificate's public key, PEM (for messages and tests)."""
    return _ek_key(ek_certificate).public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
