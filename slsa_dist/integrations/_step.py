"""Provenance for single-process steps: cleaning, tokenization, quantization, evaluation.

``slsa-dist run --input PATH --output PATH -- COMMAND...`` digests the
declared inputs, runs the command, digests the declared outputs and signs a
provenance in which inputs are dependencies and outputs are subjects, each
identified as everywhere in slsa-dist (a file by its SHA-256, a directory by
its OMS manifest root). The same is available as :func:`run_step`.

The step runs on the caller's machine with the caller's key: this is SLSA
Build L1 (see ``docs/builder.md``), which still lets ``verify --chain`` link
a training job's datasets to the step that made them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slsa_dist.digest._descriptors import artifact_descriptors, input_descriptor
from slsa_dist.digest._manifest import digest_path
from slsa_dist.errors import InputError
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, invocation_id
from slsa_dist.sign._dsse import sign_statement
from slsa_dist.sign._formats import write_signed
from slsa_dist.sign._keys import Signer

__all__ = ["RUN_BUILDER_ID", "RUN_BUILD_TYPE", "StepResult", "run_step"]

RUN_BUILD_TYPE = "https://slsa-dist.dev/buildtypes/step/v1"
RUN_BUILDER_ID = "https://slsa-dist.dev/builders/local-run/v1"


@dataclass(frozen=True)
class StepResult:
    bundle: Path
    exit_code: int
    subjects: tuple[ResourceDescriptor, ...]


def run_step(
    command: Sequence[str],
    *,
    outputs: Sequence[str | os.PathLike[str]],
    inputs: Sequence[str | os.PathLike[str]] = (),
    input_models: Sequence[str | os.PathLike[str]] = (),
    signer: Signer,
    bundle: str | os.PathLike[str],
    step_id: str | None = None,
    step_type: str = "transform",
    builder_id: str = RUN_BUILDER_ID,
    bundle_format: str = "auto",
) -> StepResult:
    """Run ``command``; on success sign a provenance for its outputs.

    Raises:
        InputError: a missing input, no outputs declared, an output the
            command did not produce, or the command failed (no provenance is
            written for a failed step).
    """
    if not command:
        raise InputError("command: expected a command after --, found none")
    if not outputs:
        raise InputError("outputs: expected at least one --output, found none")
    started = dt.datetime.now(dt.timezone.utc)
    # every file, as verify will hash it: the records sign no ignored paths
    dependencies = [input_descriptor(digest_path(p, ignore_paths=()), p, kind="dataset")
                    for p in inputs]
    dependencies += [input_descriptor(digest_path(p, ignore_paths=()), p, kind="model")
                     for p in input_models]
    try:
        exit_code = subprocess.run(list(command), check=False).returncode
    except OSError as exc:
        raise InputError(f"command: cannot run {command[0]!r}: {exc.strerror}") from None
    if exit_code != 0:
        raise InputError(f"command: expected exit code 0, found {exit_code}; "
                         "no provenance written for a failed step")
    finished = dt.datetime.now(dt.timezone.utc)
    builder = ProvenanceBuilder(builder_id=builder_id, build_type=RUN_BUILD_TYPE,
                                invocation_id=invocation_id(
                                    step_id or f"step-{started:%Y%m%dT%H%M%S%f}",
                                    str(uuid.uuid4())))
    for output in outputs:
        path = Path(output)
        if not path.exists():
            raise InputError(f"output: expected {path} to exist after the step, found nothing")
        subject, record = artifact_descriptors(digest_path(path, ignore_paths=()), name=path.name)
        builder.add_subject(subject)
        builder.add_byproduct(record)
    for dependency in dependencies:
        builder.add_dependency(dependency)
    builder.set_external_parameters({
        "command": list(command), "stepType": step_type,
        "inputs": [str(p) for p in [*inputs, *input_models]],
        "outputs": [str(p) for p in outputs]})
    builder.set_internal_parameters({"launcher": "slsa-dist run", "cwd": os.getcwd()})
    builder.set_times(started=started, finished=finished)
    statement = builder.build()
    path = write_signed(bundle, sign_statement(statement, [signer]), fmt=bundle_format)
    return StepResult(bundle=path, exit_code=exit_code, subjects=statement.subjects)
