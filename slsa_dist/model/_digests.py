"""The one digest rule: which algorithms slsa-dist computes, how each is written, and
which a file, a shard or a subject may carry.

Every stage reads it from here: the coordinator at ingest, the typed records when
they are read, :mod:`slsa_dist.digest` when it hashes, and ``verify``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from slsa_dist.errors import InputError

__all__ = ["ALGORITHMS", "FILE_ALGORITHMS", "HEX_LENGTHS", "SUBJECT_ALGORITHM", "Algorithm",
           "check_digest", "file_digest"]

Algorithm = Literal["sha256", "sha512", "blake3"]
# What slsa-dist hashes with (digest_path, the DCP writer, record_artifact).
ALGORITHMS: tuple[Algorithm, ...] = ("sha256", "sha512", "blake3")
# A file of an artifact carries exactly one of these: the algorithm of its manifest.
FILE_ALGORITHMS: tuple[Algorithm, ...] = ALGORITHMS
# A subject is named by its OMS manifest root, which model_signing writes in SHA-256.
SUBJECT_ALGORITHM: Algorithm = "sha256"
# Encodings we can check; other algorithms (gitCommit, ...) are carried but not
# validated (in-toto: consumers ignore algorithms they do not know).
HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "blake3": 64, "sha1": 40}
_HEX = re.compile(r"^[0-9a-f]+$")
_ALGORITHM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_digest(digest: Mapping[str, Any], where: str) -> None:
    """A digest map as in-toto writes it: algorithm names like ``sha256`` or
    ``gitCommit``, values non-empty strings, lowercase hex of the right length for the
    algorithms whose encoding is known.

    Raises:
        InputError: naming the algorithm, what was expected and what was found.
    """
    for algorithm, value in digest.items():
        if not _ALGORITHM.match(algorithm):
            raise InputError(f"{where}.digest: expected an algorithm name like 'sha256', "
                             f"found {algorithm!r:.40}")
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}.digest.{algorithm}: expected a hex string, found "
                             f"{value!r:.40}")
        length = HEX_LENGTHS.get(algorithm)
        if length is not None and (len(value) != length or not _HEX.match(value)):
            raise InputError(f"{where}.digest: expected {length} lowercase hex digits for "
                             f"{algorithm}, found {value[:80]!r}")


def file_digest(fields: Mapping[str, Any]) -> tuple[str, str] | None:
    """(algorithm, value) of the file digest a record carries, or None when it has none."""
    for algorithm in FILE_ALGORITHMS:
        value = fields.get(algorithm)
        if isinstance(value, str):
            return algorithm, value
    return None
