"""NVIDIA GPUs through NVML (``libnvidia-ml.so.1``) with ``ctypes``: no extra Python
package on GPU nodes. Name, UUID, serial, VBIOS, driver version and the
confidential-computing state; best effort, never raises (a reason instead).

Shared by the node's inventory (``capture``) and the NVIDIA attester (``attest``).
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["Nvml", "gpu_inventory"]

_NVML_SUCCESS = 0
_NVML_NOT_SUPPORTED = 3
_CC_ENVIRONMENTS = {0: "unavailable", 1: "sim", 2: "prod"}
_CC_FEATURE = {0: "disabled", 1: "enabled"}


class _CCState(ctypes.Structure):
    _fields_ = [("environment", ctypes.c_uint), ("ccFeature", ctypes.c_uint),
                ("devToolsMode", ctypes.c_uint)]


# nvml.h: nvmlConfComputeGpuAttestationReport_t and nvmlConfComputeGpuCertificate_t
_CC_NONCE = 32
_CC_REPORT = 0x2000
_CC_CEC_REPORT = 0x1000
_CC_CERT_CHAIN = 0x1000
_CC_ATTESTATION_CERT_CHAIN = 0x1400


class _CCAttestationReport(ctypes.Structure):
    _fields_ = [("isCecAttestationReportPresent", ctypes.c_uint),
                ("attestationReportSize", ctypes.c_uint),
                ("cecAttestationReportSize", ctypes.c_uint),
                ("nonce", ctypes.c_ubyte * _CC_NONCE),
                ("attestationReport", ctypes.c_ubyte * _CC_REPORT),
                ("cecAttestationReport", ctypes.c_ubyte * _CC_CEC_REPORT)]


class _CCGpuCertificate(ctypes.Structure):
    _fields_ = [("certChainSize", ctypes.c_uint), ("attestationCertChainSize", ctypes.c_uint),
                ("certChain", ctypes.c_ubyte * _CC_CERT_CHAIN),
                ("attestationCertChain", ctypes.c_ubyte * _CC_ATTESTATION_CERT_CHAIN)]


class Nvml:
    """A thin ctypes binding to the NVML calls slsa-dist needs."""

    def __init__(self, library: str = "libnvidia-ml.so.1") -> None:
        self._lib = ctypes.CDLL(library)
        self._lib.nvmlErrorString.restype = ctypes.c_char_p
        self._check(self._lib.nvmlInit_v2(), "nvmlInit_v2")

    def _check(self, code: int, call: str) -> None:
        if code != _NVML_SUCCESS:
            message = self._lib.nvmlErrorString(code).decode(errors="replace")
            raise OSError(code, f"{call}: {message}")

    def _text(self, function: str, *args: Any, size: int = 96) -> str:
        buffer = ctypes.create_string_buffer(size)
        self._check(getattr(self._lib, function)(*args, buffer, ctypes.c_uint(size)), function)
        return buffer.value.decode(errors="replace")

    def driver_version(self) -> str:
        return self._text("nvmlSystemGetDriverVersion")

    def device_count(self) -> int:
        count = ctypes.c_uint()
        self._check(self._lib.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
        return count.value

    def device(self, index: int) -> dict[str, Any]:
        handle = ctypes.c_void_p()
        self._check(self._lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index),
                                                            ctypes.byref(handle)),
                    "nvmlDeviceGetHandleByIndex_v2")
        info: dict[str, Any] = {"index": index}
        for key, function in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID"),
                              ("serial", "nvmlDeviceGetSerial"),
                              ("vbios", "nvmlDeviceGetVbiosVersion")):
            try:
                info[key] = self._text(function, handle)
            except OSError as exc:
                info[key] = None
                info.setdefault("unavailable", {})[key] = str(exc.args[-1])
        return info

    def confidential_computing(self) -> dict[str, Any]:
        state = _CCState()
        try:
            self._check(self._lib.nvmlSystemGetConfComputeState(ctypes.byref(state)),
                        "nvmlSystemGetConfComputeState")
        except (OSError, AttributeError) as exc:
            return {"mode": "unknown", "reason": str(exc)}
        return {"environment": _CC_ENVIRONMENTS.get(state.environment, str(state.environment)),
                "mode": _CC_FEATURE.get(state.ccFeature, str(state.ccFeature)),
                "devToolsMode": bool(state.devToolsMode)}

    def attestation(self, index: int, nonce: bytes) -> tuple[bytes, bytes]:
        """GPU ``index``'s SPDM attestation report (GET_MEASUREMENTS request and signed
        response) answering ``nonce`` (32 bytes), and its attestation certificate chain,
        as NVML returns them (CC mode only). Raises :class:`OSError`."""
        if len(nonce) != _CC_NONCE:
            raise OSError(0, f"attestation nonce: expected {_CC_NONCE} bytes, found {len(nonce)}")
        handle = ctypes.c_void_p()
        self._check(self._lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index),
                                                            ctypes.byref(handle)),
                    "nvmlDeviceGetHandleByIndex_v2")
        report = _CCAttestationReport()
        ctypes.memmove(report.nonce, nonce, _CC_NONCE)
        self._check(self._lib.nvmlDeviceGetConfComputeGpuAttestationReport(
            handle, ctypes.byref(report)), "nvmlDeviceGetConfComputeGpuAttestationReport")
        certificate = _CCGpuCertificate()
        self._check(self._lib.nvmlDeviceGetConfComputeGpuCertificate(
            handle, ctypes.byref(certificate)), "nvmlDeviceGetConfComputeGpuCertificate")
        size = min(report.attestationReportSize, _CC_REPORT)
        chain = min(certificate.attestationCertChainSize, _CC_ATTESTATION_CERT_CHAIN)
        return bytes(report.attestationReport[:size]), \
            bytes(certificate.attestationCertChain[:chain])

    def close(self) -> None:
        self._lib.nvmlShutdown()


def gpu_inventory() -> dict[str, Any]:
    """Every visible GPU through NVML, or the reason there is none."""
    try:
        nvml = Nvml()
    except OSError as exc:
        return {"available": False, "reason": f"NVML not available: {exc}", "devices": []}
    try:
        devices = [nvml.device(i) for i in range(nvml.device_count())]
        return {"available": True, "driver": nvml.driver_version(), "devices": devices,
                "confidentialComputing": nvml.confidential_computing()}
    except OSError as exc:
        return {"available": False, "reason": str(exc), "devices": []}
    finally:
        nvml.close()
