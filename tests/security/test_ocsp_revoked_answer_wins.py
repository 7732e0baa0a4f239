"""A carried OCSP answer that says "revoked" is not outweighed by one that says "good".

Nodes carry the OCSP answers for their GPU's and RIMs' certificate chains. Two answers
from the issuer can both be current at the appraisal time: one produced before the
certificate was revoked ("good", its nextUpdate days later) and one after ("revoked").
The check took whichever the node listed first: the verifier held a signed, current
statement that the GPU's certificate is revoked, and counted the GPU. Any authentic,
current answer saying revoked now fails the certificate, whatever the order.
"""

from __future__ import annotations

import datetime as dt

import pytest

from slsa_dist.attest import _ocsp as ocsp
from slsa_dist.attest._pki import ChainError

from support.nvidia_pki import Gpu, answer

AT = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)


def test_a_current_revoked_answer_fails_whatever_the_order() -> None:
    gpu = Gpu()
    good = answer(gpu.leaf, gpu.ica, gpu.ica_key, this=dt.datetime(2024, 5, 28,
                                                                   tzinfo=dt.timezone.utc))
    revoked = answer(gpu.leaf, gpu.ica, gpu.ica_key, status="revoked")
    assert ocsp.check(gpu.leaf, gpu.ica, [ocsp.load(good)], AT)  # the control
    for order in ([revoked, good], [good, revoked]):
        with pytest.raises(ChainError, match="is revoked"):
            ocsp.check(gpu.leaf, gpu.ica, [ocsp.load(a) for a in order], AT)
    path = [gpu.leaf, gpu.ica, gpu.root]
    answers = [ocsp.load(a) for a in (good, revoked, *gpu.answers()[1:])]
    with pytest.raises(ChainError, match="is revoked"):
        ocsp.check_chain("GPU certificate chain", path, answers, AT)
