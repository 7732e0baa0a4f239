"""TDX and SEV-SNP collateral, fetched on the node at job time and carried in its evidence.

With the collateral inside the evidence, ``verify`` is offline: it checks every piece
up to the vendor's pinned root (:mod:`._tdx`, :mod:`._snp`), so where the node got it
from does not matter, and nothing here is trusted. Where the node could not get it, the
evidence says why (``collateralMissing``) and is appraised ``structure-only``, which no
requirement counts.

TDX (Intel): from a PCCS or Intel's PCS (API v4: ``pckcrl``, ``tcb``, ``qe/identity``
and their issuer chains in the ``SGX-PCK-CRL-Issuer-Chain``, ``TCB-Info-Issuer-Chain``
and ``SGX-Enclave-Identity-Issuer-Chain`` headers; the root CA CRL from the PCCS's
``rootcacrl``, else the pinned root's CRL distribution point), or from a directory of
collateral JSON files (the format :mod:`._tdx` reads), the one for the quote's FMSPC.

SEV-SNP (AMD): the VCEK (or VLEK) from the host's certificate table (configfs-tsm
``auxblob``) when it has one; else from AMD's KDS (``/vcek/v1/{product}/{hwid}?blSPL=..``
for the report's chip and REPORTED_TCB, and ``/vcek/v1/{product}/cert_chain``), or from a
directory of certificates (the VCEK whose hwID and TCB are the report's, and any ASK/ARK).
And always AMD's CRL of the product (signed by its ARK; it lists revoked ASKs/ASVKs),
carried as ``crl`` (DER, base64) with ``crlSource``, or ``crlMissing``: why none (then
the report verifies at best ``unverified``): from the KDS (``/vcek/v1/{product}/crl``,
for a VLEK ``/vlek/v1/{product}/crl``), or from the same directory (a ``.crl``,
``.der`` or ``.pem`` file holding the CRL of ``ARK-{product}``). The product is the
one the VCEK's (VLEK's) issuer names, else the only one the report's CPUID allows.

Settings (environment of the node agent):

========================  ============================================================
``SLSA_TDX_COLLATERAL_URL``  PCCS or PCS base URL (default Intel's PCS); ``none``: no fetch
``SLSA_TDX_COLLATERAL_DIR``  a directory of TDX collateral JSON files (wins over the URL)
``SLSA_SNP_KDS_URL``         AMD KDS base URL (default AMD's); ``none``: no fetch
``SLSA_SNP_COLLATERAL_DIR``  a directory of VCEK/ASK/ARK certificates and AMD CRLs (wins
                             over the URL)
``SLSA_COLLATERAL_TIMEOUT``  seconds per request (default 10)
========================  ============================================================
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from slsa_dist.errors import InputError

__all__ = ["AMD_KDS_URL", "INTEL_PCS_URL", "asvk_chain", "attach", "kds_path",
           "pcs_signed_json", "snp_collateral", "snp_crl", "tdx_collateral"]

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
AMD_KDS_URL = "https://kdsintf.amd.com"
_MAX_BODY = 1 << 20  # the largest TCB info Intel publishes is ~20 KiB


def _timeout() -> float:
    try:
        return float(os.environ.get("SLSA_COLLATERAL_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def _get(url: str) -> tuple[bytes, dict[str, str]]:
    """GET ``url``: (body, headers by lower-case name). Raises :class:`InputError`."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"collateral URL: expected http:// or https://, found {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=_timeout()) as response:  # noqa: S310
            body = response.read(_MAX_BODY + 1)
            headers = {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        raise InputError(f"GET {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > _MAX_BODY:
        raise InputError(f"GET {url}: expected at most {_MAX_BODY} bytes, found more")
    return body, headers


def _header(headers: dict[str, str], url: str, *names: str) -> str:
    for name in names:
        if name.lower() in headers:
            return urllib.parse.unquote(headers[name.lower()])
    raise InputError(f"GET {url}: expected a {names[0]} header, found none")


def pcs_signed_json(body: bytes, key: str) -> tuple[str, str]:
    """(the ``key`` object's exact text, its signature hex) of a PCS/PCCS answer such as
    ``{"tcbInfo": {...}, "signature": "..."}``: the signature covers those very bytes,
    so the object is cut out of the body, never re-serialized."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or key not in document:
            raise ValueError(f"no {key!r}")
        signature = str(document["signature"])
        at = text.index("{") + 1
        while True:  # walk the top-level members: "name": value, ...
            at = len(text) - len(text[at:].lstrip(" \t\r\n,"))
            name, at = decoder.raw_decode(text, at)
            at = text.index(":", at) + 1
            at = len(text) - len(text[at:].lstrip(" \t\r\n"))
            _, end = decoder.raw_decode(text, at)
            if name == key:
                return text[at:end], signature
            at = end
    except (ValueError, KeyError) as exc:
        raise InputError(f"PCS answer: expected a JSON object with {key!r} and a signature, "
                         f"found {exc}") from None


def _crl_der(body: bytes) -> bytes:
    """A CRL as DER, from DER, PEM or hex (PCCSs answer hex)."""
    stripped = body.strip()
    if stripped.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(stripped).public_bytes(Encoding.DER)
    if stripped and all(c in b"0123456789abcdefABCDEF" for c in stripped):
        return bytes.fromhex(stripped.decode())
    return bytes(body)


def _pck_ca(quote: bytes) -> tuple[str, str]:
    """(FMSPC, ``processor`` or ``platform``) of the quote's PCK certificate."""
    from slsa_dist.attest._pki import load_certificates
    from slsa_dist.attest._tdx import _pck_extension, parse_quote

    chain = load_certificates(parse_quote(quote).pck_chain_pem)
    issuer = chain[1].subject.rfc4514_string() if len(chain) > 1 else ""
    ca = "platform" if "Platform" in issuer else "processor"
    return str(_pck_extension(chain[0])["fmspc"]), ca


def _tdx_from_dir(directory: Path, fmspc: str) -> bytes:
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
            if str(json.loads(data["tcb_info"])["fmspc"]).upper() == fmspc:
                return path.read_bytes()
        except (ValueError, KeyError, TypeError, OSError):
            continue
    raise InputError(f"{directory}: expected a TDX collateral JSON file for FMSPC {fmspc}, "
                     "found none")


def _tdx_from_url(base: str, fmspc: str, ca: str) -> bytes:
    from slsa_dist.attest._roots import INTEL_SGX_ROOT

    base = base.rstrip("/").removesuffix("/sgx/certification/v4").removesuffix(
        "/tdx/certification/v4")
    url = f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
    pck_crl, headers = _get(url)
    pck_chain = _header(headers, url, "SGX-PCK-CRL-Issuer-Chain")
    url = f"{base}/tdx/certification/v4/tcb?fmspc={fmspc}&update=standard"
    body, headers = _get(url)
    tcb_chain = _header(headers, url, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
    tcb_info, tcb_signature = pcs_signed_json(body, "tcbInfo")
    url = f"{base}/tdx/certification/v4/qe/identity?update=standard"
    body, headers = _get(url)
    qe_chain = _header(headers, url, "SGX-Enclave-Identity-Issuer-Chain")
    qe_identity, qe_signature = pcs_signed_json(body, "enclaveIdentity")
    try:  # a PCCS serves the root CA CRL; Intel's PCS leaves it to the root's CRL DP
        root_crl, _ = _get(f"{base}/sgx/certification/v4/rootcacrl")
    except InputError:
        root = x509.load_pem_x509_certificate(INTEL_SGX_ROOT.encode())
        points = root.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        uris = [str(n.value) for p in points for n in p.full_name or ()
                if isinstance(n, x509.UniformResourceIdentifier)]
        if not uris:
            raise InputError("Intel SGX Root CA: no CRL distribution point") from None
        root_crl, _ = _get(uris[0])
    collateral = {"pck_crl_issuer_chain": pck_chain, "pck_crl": _crl_der(pck_crl).hex(),
                  "root_ca_crl": _crl_der(root_crl).hex(),
                  "tcb_info_issuer_chain": tcb_chain, "tcb_info": tcb_info,
                  "tcb_info_signature": tcb_signature, "qe_identity_issuer_chain": qe_chain,
                  "qe_identity": qe_identity, "qe_identity_signature": qe_signature}
    return json.dumps(collateral, sort_keys=True).encode()


def tdx_collateral(quote: bytes, env: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(collateral JSON, where from) for a TDX quote. Raises :class:`InputError` (why not)."""
    env = dict(os.environ) if env is None else env
    try:
        fmspc, ca = _pck_ca(quote)
    except Exception as exc:  # the parser's InputError, or _tdx's own failure type
        raise InputError(f"TDX quote: no PCK certificate to fetch collateral for ({exc})") \
            from None
    directory = env.get("SLSA_TDX_COLLATERAL_DIR")
    if directory:
        return _tdx_from_dir(Path(directory), fmspc), f"dir:{directory}"
    base = env.get("SLSA_TDX_COLLATERAL_URL") or INTEL_PCS_URL
    if base.lower() == "none":
        raise InputError("SLSA_TDX_COLLATERAL_URL=none: collateral fetching turned off")
    return _tdx_from_url(base, fmspc, ca), base


def _kds_base(env: dict[str, str]) -> str:
    """AMD's KDS, or the one ``SLSA_SNP_KDS_URL`` names; raises when it says ``none``."""
    base = (env.get("SLSA_SNP_KDS_URL") or AMD_KDS_URL).rstrip("/")
    if base.lower() == "none":
        raise InputError("SLSA_SNP_KDS_URL=none: collateral fetching turned off")
    return base


def _snp_product(report: bytes) -> list[str]:
    from slsa_dist.attest._snp import PRODUCTS

    version = int.from_bytes(report[0:4], "little")
    if version >= 3:
        family, model = report[0x188], report[0x189]
        found = [p for p, (f, models) in PRODUCTS.items() if f == family and model in models]
        if found:
            return found
    return ["Milan", "Genoa"]  # version 2 names no CPU; Turin reports are version 3+


def kds_path(report: bytes, product: str) -> str:
    """The KDS path of the VCEK for this report's chip and REPORTED_TCB."""
    from slsa_dist.attest._snp import _tcb

    tcb = _tcb(report[0x180:0x188], product)
    chip = report[0x1A0:0x1E0]
    hwid = chip[:8] if product == "Turin" else chip
    params = {"blSPL": tcb["bootLoader"], "teeSPL": tcb["tee"], "snpSPL": tcb["snp"],
              "ucodeSPL": tcb["microcode"]}
    if product == "Turin":
        params = {"fmcSPL": tcb["fmc"], **params}
    return f"/vcek/v1/{product}/{hwid.hex()}?{urllib.parse.urlencode(params)}"


def _pem(der_or_pem: bytes) -> bytes:
    from slsa_dist.attest._pki import load_certificates

    return b"".join(c.public_bytes(Encoding.PEM) for c in load_certificates(der_or_pem))


def _snp_from_dir(directory: Path, report: bytes) -> bytes:
    from slsa_dist.attest._pki import load_certificates
    from slsa_dist.attest._snp import _cn, vcek_matches

    certs: list[x509.Certificate] = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in (".der", ".pem", ".crt", ".cer"):
            try:
                certs += load_certificates(path.read_bytes())
            except (InputError, OSError):
                continue
    vcek = [c for c in certs if vcek_matches(c, report)]
    if not vcek:
        raise InputError(f"{directory}: expected a VCEK for this chip and REPORTED_TCB, "
                         "found none")
    chain = [c for c in certs if _cn(c).startswith(("SEV-", "ARK-"))
             and _cn(c) not in ("SEV-VCEK", "SEV-VLEK")]  # the ASK(s) and ARK(s)
    return b"".join(c.public_bytes(Encoding.PEM) for c in [vcek[0], *chain])


def snp_collateral(report: bytes, env: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(VCEK PEM then ASK/ARK PEM, where from) for an SNP report. Raises
    :class:`InputError` (why not)."""
    env = dict(os.environ) if env is None else env
    if len(report) != 0x4A0:
        raise InputError(f"SNP report: expected 1184 bytes, found {len(report)}")
    directory = env.get("SLSA_SNP_COLLATERAL_DIR")
    if directory:
        return _snp_from_dir(Path(directory), report), f"dir:{directory}"
    base = _kds_base(env)
    errors = []
    for product in _snp_product(report):
        try:
            vcek, _ = _get(base + kds_path(report, product))
            chain, _ = _get(f"{base}/vcek/v1/{product}/cert_chain")
            return _pem(vcek) + _pem(chain), base
        except InputError as exc:
            errors.append(str(exc))
    raise InputError("; ".join(errors))


def asvk_chain(report: bytes, env: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(ASVK and ARK PEM, where from): the chain of a VLEK the host's table carries."""
    env = dict(os.environ) if env is None else env
    base = _kds_base(env)
    errors = []
    for product in _snp_product(report):
        try:
            chain, _ = _get(f"{base}/vlek/v1/{product}/cert_chain")
            return _pem(chain), base
        except InputError as exc:
            errors.append(str(exc))
    raise InputError("; ".join(errors))


def _crl_from_dir(directory: Path, product: str) -> bytes:
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in (".crl", ".der", ".pem"):
            try:
                crl_der = _crl_der(path.read_bytes())
                crl = x509.load_der_x509_crl(crl_der)
            except (ValueError, OSError):
                continue
            names = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            if names and names[0].value == f"ARK-{product}":
                return crl_der
    raise InputError(f"{directory}: expected AMD's CRL of ARK-{product} (a .crl, .der or "
                     ".pem file), found none")


def snp_crl(report: bytes, signer: str, certs: bytes,
            env: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(AMD's CRL as DER, where from) for the product of ``certs`` (the VCEK or VLEK and
    its chain, DER or PEM; empty when there are none) and ``signer`` (``vcek`` or
    ``vlek``). Raises :class:`InputError` (why not)."""
    from slsa_dist.attest._pki import load_certificates
    from slsa_dist.attest._snp import product_of

    env = dict(os.environ) if env is None else env
    named = [p for c in (load_certificates(certs) if certs else [])
             if (p := product_of(c)) is not None]
    products = named[:1] or _snp_product(report)
    if len(products) != 1:
        raise InputError(f"AMD CRL: no VCEK to tell the product by, and the report could "
                         f"be from a {' or a '.join(products)}")
    product = products[0]
    directory = env.get("SLSA_SNP_COLLATERAL_DIR")
    if directory:
        return _crl_from_dir(Path(directory), product), f"dir:{directory}"
    base = _kds_base(env)
    url = f"{base}/{'vlek' if signer == 'vlek' else 'vcek'}/v1/{product}/crl"
    body, _ = _get(url)
    try:
        crl_der = _crl_der(body)
        x509.load_der_x509_crl(crl_der)
    except ValueError as exc:
        raise InputError(f"GET {url}: expected a DER X.509 CRL, found {exc}") from None
    return crl_der, base


def _missing(exc: Exception) -> str:
    return str(exc)[:500] or type(exc).__name__


def _attach_snp(report: bytes, evidence: dict[str, Any], env: dict[str, str] | None) -> None:
    from slsa_dist.attest._snp import certificate_table

    flags = int.from_bytes(report[0x48:0x4C], "little")
    signer = "vlek" if (flags >> 2 & 7) == 1 else "vcek"  # the report's SIGNING_KEY
    certs = b""
    try:
        table = certificate_table(base64.b64decode(evidence.get("auxblob") or ""))
        certs = table.get(signer, b"")
        # With the VCEK (or the VLEK and its ASVK) in the host's table, only the CRL is
        # fetched.
        if not ("vcek" in table or {"vlek", "ask"} <= set(table)):
            found, source = (asvk_chain(report, env) if "vlek" in table
                             else snp_collateral(report, env))
            evidence["collateral"] = base64.b64encode(found).decode()
            evidence["collateralSource"] = source
            certs = certs or found
    except Exception as exc:  # collection must go on: the evidence says what is missing
        evidence["collateralMissing"] = _missing(exc)
    try:
        crl, source = snp_crl(report, signer, certs, env)
    except Exception as exc:
        evidence["crlMissing"] = _missing(exc)
        return
    evidence["crl"] = base64.b64encode(crl).decode()
    evidence["crlSource"] = source


def attach(kind: str, report: bytes, evidence: dict[str, Any],
           env: dict[str, str] | None = None) -> None:
    """Add the collateral for ``report`` to ``evidence`` (``collateral``, base64, and
    ``collateralSource``), or ``collateralMissing``: why none; for SNP also AMD's CRL
    (``crl``, ``crlSource``), or ``crlMissing``. Never raises."""
    if kind == "snp":
        _attach_snp(report, evidence, env)
        return
    try:
        found, source = tdx_collateral(report, env)
    except Exception as exc:  # collection must go on: the evidence says what is missing
        evidence["collateralMissing"] = _missing(exc)
        return
    evidence["collateral"] = base64.b64encode(found).decode()
    evidence["collateralSource"] = source
