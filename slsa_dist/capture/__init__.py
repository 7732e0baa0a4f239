"""Capture: what runs inside the training process and on its node.

* :mod:`.runtime` -- the rank's recorder (:func:`slsa_dist.init`,
  :func:`slsa_dist.record_artifact`, ...), started by ``-m slsa_dist.exec``
  or by a framework integration (:mod:`slsa_dist.torch`, :mod:`slsa_dist.ray`).
* :mod:`.inventory` -- host, software and device inventory of a node.
* :mod:`.step` -- ``slsa-dist run``: one single-process step (data
  preparation, quantization) captured and signed in one go.

Framework integrations keep their own top-level names (``slsa_dist.torch``,
``slsa_dist.ray``, ``slsa_dist.exec``) because users write them in command
lines, entry points and environment variables (ADR 0007).
"""
