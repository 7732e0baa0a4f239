"""The SPDM GET_MEASUREMENTS request and signed response an NVIDIA GPU returns in CC mode,
parsed (DMTF DSP0274 1.1, 10.11, and NVIDIA's OpaqueData fields): nothing here verifies.

Layout: the 37-byte request (header 4, nonce 32, slot 1), then the response: header 4,
number of blocks 1, record length 3 (little-endian), the measurement blocks, the
responder's nonce 32, OpaqueData length 2 and OpaqueData (type 2, size 2, value...), and
the 96-byte ECDSA P-384 signature (r || s) over everything before it.
"""

from __future__ import annotations

from slsa_dist.errors import InputError

__all__ = ["NVDEC0_STATUS", "REQUEST", "SIGNATURE", "SPDM_FORMAT", "driver_version",
           "measurements", "opaque_data", "rim_ids", "vbios_version"]

SPDM_FORMAT = "nvidia-spdm/v1"
REQUEST = 37  # SPDM 1.1 GET_MEASUREMENTS: header 4, nonce 32, slot 1
SIGNATURE = 96  # ECDSA P-384 r || s
# OpaqueData field types (NVIDIA's numbering)
DRIVER_VERSION, VBIOS_VERSION, NVDEC0_STATUS = 3, 6, 11
CHIP_SKU, PROJECT, PROJECT_SKU = 15, 17, 18


def opaque_data(report: bytes) -> dict[int, bytes]:
    """The response's OpaqueData fields (type -> value): after the measurement record,
    the 32-byte nonce, a 2-byte length, then type (2), size (2), value; the 96-byte
    signature last. Raises :class:`InputError`."""
    response = report[REQUEST:]
    length = int.from_bytes(response[5:8], "little")
    offset = 8 + length + 32
    size = int.from_bytes(response[offset:offset + 2], "little")
    data = response[offset + 2:offset + 2 + size]
    if len(data) != size or offset + 2 + size + SIGNATURE != len(response):
        raise InputError(f"expected {size} bytes of OpaqueData and a {SIGNATURE}-byte "
                         f"signature after the measurement record, found "
                         f"{len(response) - offset - 2} bytes")
    fields, at = {}, 0
    while at < size:
        if at + 4 > size:
            raise InputError(f"OpaqueData field at {at}: truncated")
        kind = int.from_bytes(data[at:at + 2], "little")
        length = int.from_bytes(data[at + 2:at + 4], "little")
        if at + 4 + length > size:
            raise InputError(f"OpaqueData field {kind}: runs past the end")
        fields[kind] = data[at + 4:at + 4 + length]
        at += 4 + length
    return fields


def driver_version(fields: dict[int, bytes]) -> str:
    """The driver version the report states (OpaqueData field 3, NUL-terminated)."""
    return fields.get(DRIVER_VERSION, b"").split(b"\0")[0].decode(errors="replace").lower()


def vbios_version(fields: dict[int, bytes]) -> str:
    """The VBIOS version the report states (OpaqueData field 6, 8 bytes little-endian) as
    NVIDIA writes it in the RIM: ``96.00.9f.00.01`` for bytes ``00 9f 00 96 01 00 00 00``."""
    raw = fields.get(VBIOS_VERSION, b"")
    if len(raw) != 8:
        raise InputError(f"OpaqueData VBIOS version: expected 8 bytes, found {len(raw)}")
    return ".".join(f"{b:02x}" for b in (raw[3], raw[2], raw[1], raw[0], raw[4]))


def measurements(report: bytes) -> dict[str, str]:
    """The measurement blocks of a signed SPDM GET_MEASUREMENTS response (DMTF DSP0274
    1.1, 10.11): index -> the measurement value (hex). Raises :class:`InputError`."""
    response = report[REQUEST:]
    if len(response) < 8:
        raise InputError("expected a measurements response header")
    length = int.from_bytes(response[5:8], "little")
    record = response[8:8 + length]
    if len(record) != length:
        raise InputError(f"expected {length} bytes of measurement blocks, found {len(record)}")
    found, offset = {}, 0
    while offset < length:
        if offset + 7 > length:
            raise InputError(f"measurement block at {offset}: truncated")
        index = record[offset]
        size = int.from_bytes(record[offset + 2:offset + 4], "little")
        block = record[offset + 4:offset + 4 + size]
        value_size = int.from_bytes(block[1:3], "little") if len(block) >= 3 else -1
        if len(block) != size or value_size != size - 3:
            raise InputError(f"measurement block {index}: expected {size} bytes holding a "
                             f"DMTF measurement of {size - 3}, found {len(block)}")
        found[str(index)] = block[3:].hex()
        offset += 4 + size
    if len(found) != response[4]:
        raise InputError(f"expected {response[4]} measurement blocks, found {len(found)}")
    return found




def _text(fields: dict[int, bytes], kind: int) -> str:
    return fields.get(kind, b"").split(b"\0")[0].decode("ascii", "replace").strip()


def rim_ids(fields: dict[int, bytes]) -> dict[str, str]:
    """The RIM service's identifiers of the driver and VBIOS RIMs this (Hopper) report
    needs: ``NV_GPU_DRIVER_GH100_<driver>`` and
    ``NV_GPU_VBIOS_<PROJECT>_<PROJECT SKU>_<CHIP SKU>_<VBIOS, no dots, upper case>``."""
    vbios = vbios_version(fields).replace(".", "").upper()
    parts = [_text(fields, k).upper() for k in (PROJECT, PROJECT_SKU, CHIP_SKU)]
    return {"driver": f"NV_GPU_DRIVER_GH100_{driver_version(fields)}",
            "vbios": "NV_GPU_VBIOS_" + "_".join([*parts, vbios])}
