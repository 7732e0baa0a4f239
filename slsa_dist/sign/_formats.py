"""Bundle formats: how a signed envelope is written to a file and read back.

One registry that the coordinator, ``slsa-torchrun --slsa-format``, ``slsa-dist run``,
``push`` (OCI artifact types) and every reader share. A format is a name (what users
type), a file suffix, a media type (its OCI artifact type), and ``write``/``sniff``/
``read``. Adding one is a module with a class like :class:`~._sigstore.SigstoreBundle`
and one line in :data:`FORMATS` (docs/architecture.md shows the diff).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from slsa_dist.errors import InputError
from slsa_dist.sign._dsse import Envelope, JsonLines
from slsa_dist.sign._sigstore import SigstoreBundle

__all__ = ["DEFAULT_FORMAT", "FORMATS", "BundleFormat", "bundle_path", "format_for",
           "formats_named", "parse_bundle", "read_bundle", "read_bundle_bytes", "write_bundles",
           "write_signed"]


class BundleFormat(Protocol):
    """A way to write a signed envelope to a file, and to recognise and read one."""

    @property
    def name(self) -> str: ...
    @property
    def suffix(self) -> str: ...
    @property
    def media_type(self) -> str: ...

    def write(self, path: str | os.PathLike[str], envelope: Envelope) -> Path:
        """Write ``envelope`` to ``path`` atomically."""
        ...

    def sniff(self, text: str) -> bool:
        """Whether ``text`` is in this format (cheap; may parse)."""
        ...

    def read(self, text: str, source: str) -> list[Envelope]:
        """The envelopes in ``text``, read from ``source`` (named in errors)."""
        ...


# In sniffing order: the first whose sniff accepts a file reads it; the last is the fallback.
FORMATS: dict[str, BundleFormat] = {f.name: f for f in (SigstoreBundle(), JsonLines())}
DEFAULT_FORMAT = "intoto"


def formats_named(choice: str) -> tuple[str, ...]:
    """The formats a ``--format`` choice names: one by name, or ``both`` for every
    registered one (the default first: it is the bundle a result names).

    Raises:
        InputError: ``choice`` is neither a format nor ``both``.
    """
    if choice == "both":
        return (DEFAULT_FORMAT, *(f for f in FORMATS if f != DEFAULT_FORMAT))
    return (format_for("", choice).name,)


def format_for(path: str | os.PathLike[str], name: str = "auto") -> BundleFormat:
    """The format named ``name``, or for ``auto`` the one whose suffix ``path`` ends in
    (the default format when none does).

    Raises:
        InputError: ``name`` is not a known format.
    """
    if name == "auto":
        return next((f for f in FORMATS.values() if str(path).endswith(f.suffix)),
                    FORMATS[DEFAULT_FORMAT])
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"bundle format: expected one of {', '.join([*FORMATS, 'auto'])}, "
                         f"found {name!r}") from None


def bundle_path(out_dir: str | os.PathLike[str], job_id: str, name: str) -> Path:
    """Where a job's bundle in format ``name`` is written: ``<out>/<job><suffix>``."""
    return Path(out_dir) / f"{job_id}{format_for('', name).suffix}"


def write_bundles(out_dir: str | os.PathLike[str], name: str, envelope: Envelope,
                  formats: Sequence[str]) -> list[Path]:
    """Write a job's signed statement in each of ``formats`` (``<out>/<name><suffix>``),
    in that order."""
    return [format_for("", fmt).write(bundle_path(out_dir, name, fmt), envelope)
            for fmt in formats]


def write_signed(path: str | os.PathLike[str], envelope: Envelope, *,
                 fmt: str = "auto") -> Path:
    """Write one signed envelope as ``fmt`` (a name in :data:`FORMATS`, or ``auto``: by
    the suffix of ``path``)."""
    return format_for(path, fmt).write(path, envelope)


def read_bundle(path: str | os.PathLike[str]) -> list[Envelope]:
    """The envelopes of a bundle file in any registered format.

    Raises:
        InputError: the file is missing, not text, or not a bundle.
    """
    return parse_bundle(read_bundle_bytes(path), path)


def read_bundle_bytes(path: str | os.PathLike[str]) -> bytes:
    """A bundle file's bytes, read once: verify them and name them by the same read.

    Raises:
        InputError: the file is missing or a directory.
    """
    source = Path(path)
    try:
        return source.read_bytes()
    except FileNotFoundError:
        raise InputError(f"bundle: expected a file at {source}, found none") from None
    except IsADirectoryError:
        raise InputError(f"bundle: expected a file at {source}, found a directory") from None


def parse_bundle(raw: bytes, source: str | os.PathLike[str]) -> list[Envelope]:
    """The envelopes in a bundle's bytes, in any registered format (``source`` names it
    in errors).

    Raises:
        InputError: not text, or not a bundle.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"bundle {source}: expected UTF-8 JSON Lines, found binary") from None
    fmt = next(f for f in FORMATS.values() if f.sniff(text))
    return fmt.read(text, str(source))
