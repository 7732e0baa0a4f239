"""Host, software and device inventory of the node a rank runs on.

Everything here is best effort and never raises: a field that cannot be read
is recorded with the reason, so a gap is visible instead of silent.

GPUs are read through NVML (``libnvidia-ml.so.1``) with ``ctypes``, so no
extra Python package is needed on GPU nodes: name, UUID, serial, VBIOS,
driver version and the confidential-computing state.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from slsa_dist._internal.nvml import gpu_inventory

__all__ = ["collect", "gpu_inventory", "package_url", "python_packages", "torch_build"]

def torch_build() -> dict[str, Any]:
    """torch's version and build: CUDA, cuDNN, NCCL when present (never imports torch)."""
    if "torch" not in sys.modules:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return {"available": False}
        return {"available": True, "version": version, "imported": False}
    import torch

    info: dict[str, Any] = {"available": True, "version": torch.__version__,
                            "git": getattr(torch.version, "git_version", None),
                            "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None)}
    try:
        cudnn = torch.backends.cudnn
        info["cudnn"] = cudnn.version() if cudnn.is_available() else None  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        info["cudnn"] = f"unavailable: {exc}"
    try:
        nccl = torch.cuda.nccl.version() if torch.cuda.is_available() else None  # type: ignore[no-untyped-call]
        info["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl
    except (RuntimeError, AttributeError) as exc:
        info["nccl"] = f"unavailable: {exc}"
    info["cudaDevices"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return info


def package_url(name: str, version: str) -> str:
    """The canonical purl of a Python distribution, by the purl library: the name
    lowercased with ``_`` as ``-`` (``pkg:pypi/typing-extensions``), the version
    percent-encoded (``2.13.0+cpu`` -> ``2.13.0%2Bcpu``)."""
    return str(PackageURL(type="pypi", name=name, version=version).to_string())


def python_packages() -> dict[str, str]:
    """Installed distributions, name -> version."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _container() -> dict[str, Any]:
    """What can be known from inside: runtime hints, and an image the launcher declared."""
    info: dict[str, Any] = {}
    if Path("/.dockerenv").exists():
        info["runtime"] = "docker"
    elif Path("/run/.containerenv").exists():
        info["runtime"] = "podman"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        info["runtime"] = "kubernetes"
    image = os.environ.get("SLSA_CONTAINER_IMAGE")
    if image:
        info["image"] = image
    digest = os.environ.get("SLSA_CONTAINER_IMAGE_DIGEST")
    if digest:
        info["imageDigest"] = digest
    return info


def collect(*, packages: bool = True) -> dict[str, Any]:
    """The node's inventory as a JSON object (integers and strings only)."""
    uname = platform.uname()
    inventory: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": {"system": uname.system, "release": uname.release, "version": uname.version,
               "machine": uname.machine},
        "cpu": {"model": _cpu_model(), "count": os.cpu_count() or 0},
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "torch": torch_build(),
        "gpus": gpu_inventory(),
        "container": _container(),
    }
    if packages:
        inventory["packages"] = python_packages()
    return inventory
