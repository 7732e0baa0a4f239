"""Errors, split by who is at fault.

Every error slsa-dist raises derives from :class:`Error`. The subclasses say
whose fault it is, so an operator knows where to look:

* :class:`InputError` -- the caller gave something malformed (a bad file, a
  key of the wrong type, a path that does not exist).
* :class:`VerificationError` -- a signature, digest or policy check failed:
  the artifact or its provenance is not what it claims to be.
* :class:`SenderError` -- a rank or node sent events that break the
  collection contract (wrong job, rank out of range, duplicate identity).
* :class:`TransportError` -- the network or the coordinator is unavailable.
* :class:`SigningError` -- the coordinator could not sign.

Messages say what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "Error",
    "InputError",
    "SenderError",
    "SigningError",
    "TransportError",
    "VerificationError",
]


class Error(Exception):
    """Root of every slsa-dist error."""


class InputError(Error):
    """Malformed input from the caller: a file, a key, an argument."""


class VerificationError(Error):
    """A signature, digest, completeness or policy check failed."""


class SenderError(Error):
    """A rank or node sent events or a registration that break the collection contract.

    ``code`` names the gRPC status the coordinator answers with; the mapping
    to real status codes lives in one place, :func:`slsa_dist.collect._wire.status_of`.
    ``resync`` marks a refusal that registering again cures (the coordinator
    does not know the sender, or expects an earlier sequence number: it lost
    its journal); agents learn it from the ``slsa-resync`` trailing metadata,
    never from the message text.
    """

    def __init__(self, message: str, *, code: str = "INVALID_ARGUMENT",
                 resync: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.resync = resync


# The name before 0.2 ("report" also named an RPC, a command and a Ray helper).
ReportError = SenderError


class TransportError(Error):
    """The coordinator could not be reached or answered with an error."""


class SigningError(Error):
    """Signing the provenance failed."""
