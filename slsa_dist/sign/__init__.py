"""Sign: keys, DSSE envelopes, the job CA for mutual TLS, OpenSSF Model Signing.

* :mod:`.keys` -- signing and verification keys (ECDSA P-256/P-384, Ed25519).
* :mod:`.dsse` -- DSSE envelopes and ``.intoto.jsonl`` bundles.
* :mod:`.ca` -- the job CA: one certificate per coordinator, node and rank.
* :mod:`.oms` -- OMS signature files (model_signing compatible).
"""
