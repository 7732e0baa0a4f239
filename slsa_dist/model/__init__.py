"""The model: what a provenance says, as every stage reads it. The ground floor.

* :class:`Statement`, :class:`ResourceDescriptor`: the in-toto Statement v1, read
  and written as canonical JSON; :class:`ProvenanceBuilder` writes the SLSA
  Provenance v1 predicate.
* :class:`Provenance`: a read-only view of a verified statement, over a
  :class:`RecordSource` for records kept outside it (:class:`LedgerRecords`, a
  record ledger beside the bundle). It reads no file itself.
* The typed records, each owning its media type and name prefix
  (``RankRecord.MEDIA_TYPE``, ``RankRecord.PREFIX``): strict to write, tolerant
  to read, versioned.
* The one digest rule (:data:`ALGORITHMS`, :data:`FILE_ALGORITHMS`,
  :func:`check_digest`), which ingest, records, hashing and verify all read.

Nothing here imports a stage (digest, sign, attest, capture, collect, verify).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.model._digests import (
        ALGORITHMS,
        FILE_ALGORITHMS,
        SUBJECT_ALGORITHM,
        Algorithm,
        check_digest,
    )
    from slsa_dist.model._ledger import Ledger, LedgerError, LedgerLine, LedgerRecords
    from slsa_dist.model._provenance import Provenance, RecordSource
    from slsa_dist.model._records import (
        Checkpoint,
        Completeness,
        EvidenceRecord,
        FileWritten,
        NodeAttempt,
        NodeRecord,
        RankAttempt,
        RankRecord,
        ShardRead,
    )
    from slsa_dist.model._statement import (
        BUILD_TYPE,
        BUILDER_IDS,
        PREDICATE_TYPE,
        STATEMENT_TYPE,
        ProvenanceBuilder,
        ResourceDescriptor,
        Statement,
    )

__all__ = [
    "ALGORITHMS",
    "BUILDER_IDS",
    "BUILD_TYPE",
    "FILE_ALGORITHMS",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "SUBJECT_ALGORITHM",
    "Algorithm",
    "Checkpoint",
    "Completeness",
    "EvidenceRecord",
    "FileWritten",
    "Ledger",
    "LedgerError",
    "LedgerLine",
    "LedgerRecords",
    "NodeAttempt",
    "NodeRecord",
    "Provenance",
    "ProvenanceBuilder",
    "RankAttempt",
    "RankRecord",
    "RecordSource",
    "ResourceDescriptor",
    "ShardRead",
    "Statement",
    "check_digest",
]

__getattr__ = exports(__name__, {
    "ALGORITHMS": "_digests",
    "Algorithm": "_digests",
    "BUILDER_IDS": "_statement",
    "BUILD_TYPE": "_statement",
    "Checkpoint": "_records",
    "Completeness": "_records",
    "EvidenceRecord": "_records",
    "FILE_ALGORITHMS": "_digests",
    "FileWritten": "_records",
    "Ledger": "_ledger",
    "LedgerError": "_ledger",
    "LedgerLine": "_ledger",
    "LedgerRecords": "_ledger",
    "NodeAttempt": "_records",
    "NodeRecord": "_records",
    "PREDICATE_TYPE": "_statement",
    "Provenance": "_provenance",
    "ProvenanceBuilder": "_statement",
    "RankAttempt": "_records",
    "RankRecord": "_records",
    "RecordSource": "_provenance",
    "ResourceDescriptor": "_statement",
    "STATEMENT_TYPE": "_statement",
    "SUBJECT_ALGORITHM": "_digests",
    "ShardRead": "_records",
    "Statement": "_statement",
    "check_digest": "_digests",
})
