"""``slsa-torchrun``: torchrun with the slsa-dist plugin switched on.

One command for the common case: a coordinator of its own, zero-code capture,
one signed bundle at the end::

    slsa-torchrun --slsa-out DIR [--slsa-key KEY] --nproc-per-node N train.py ARGS...

Against a coordinator that runs elsewhere (several nodes)::

    slsa-torchrun --slsa-coordinator HOST:PORT [--slsa-job-id ID] [--slsa-spool-dir DIR]
                  [--slsa-bootstrap] TORCHRUN-ARGS...

equals ``torchrun --logs-specs slsa --event-log-handler slsa TORCHRUN-ARGS``
with ``SLSA_COORDINATOR``, ``SLSA_JOB_ID`` and ``SLSA_SPOOL_DIR`` set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

_FLAGS = {"--slsa-coordinator": "SLSA_COORDINATOR", "--slsa-job-id": "SLSA_JOB_ID",
          "--slsa-spool-dir": "SLSA_SPOOL_DIR", "--slsa-out": "SLSA_OUT", "--slsa-key": "SLSA_KEY",
          "--slsa-format": "SLSA_FORMAT", "--slsa-subject": "SLSA_SUBJECT"}
_HELP = """slsa-dist options (the torchrun options follow):
  --slsa-out DIR          run a coordinator of this job's own, with zero-code capture, and
                          write the signed bundle to DIR (a signing key is made in DIR/keys
                          unless --slsa-key is given)
  --slsa-key KEY          the signing key for --slsa-out (PEM)
  --slsa-format F         with --slsa-out: intoto (default), sigstore (a Sigstore bundle
                          v0.3) or both
  --slsa-subject PATH     the model this job outputs, by path: its subject (default: the
                          model by meaning, see docs/buildtype.md "Which output is the
                          subject"; SLSA_SUBJECT in the environment does the same)
  --slsa-coordinator H:P  report to a coordinator that runs elsewhere (several nodes)
  --slsa-job-id ID        the job id (default: a new one with --slsa-out; required by the
                          coordinator otherwise)
  --slsa-spool-dir DIR    where unacknowledged events wait (default: ~/.cache/slsa-dist)
  --slsa-bootstrap        zero-code capture with a coordinator that runs elsewhere
  --slsa-required         fail the job when the coordinator cannot be reached (by default
                          training goes on unrecorded, after a loud warning; events wait in
                          the spool)
"""


def split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Our flags (as environment settings) and everything else, for torchrun."""
    settings: dict[str, str] = {}
    rest: list[str] = []
    items = iter(argv)
    for arg in items:
        name, _, inline = arg.partition("=")
        if name in _FLAGS:
            value = inline or next(items, "")
            if not value:
                raise SystemExit(f"slsa-torchrun: error: {name} expects a value, found none")
            settings[_FLAGS[name]] = value
        elif arg == "--slsa-bootstrap":
            settings["SLSA_BOOTSTRAP"] = "1"
        elif arg == "--slsa-required":
            settings["SLSA_REQUIRED"] = "1"
        else:
            rest.append(arg)
    return settings, rest


def launcher_parameters(torchrun_args: Sequence[str]) -> dict[str, Any]:
    """What torchrun was told (``internalParameters``): rendezvous and restart policy.

    Empty when torchrun's own parser refuses the arguments (torchrun says why).
    """
    from torch.distributed.run import get_args_parser

    try:
        args = get_args_parser().parse_args(list(torchrun_args))
    except SystemExit:
        return {}
    if args.standalone:  # torchrun's single-node shorthand: its own local rendezvous
        rendezvous = {"backend": "c10d", "endpoint": "localhost:0", "standalone": True}
    else:
        rendezvous = {"backend": args.rdzv_backend, "endpoint": args.rdzv_endpoint,
                      "id": args.rdzv_id}
    return {"launcher": "torchrun", "rendezvous": rendezvous,
            "maxRestarts": int(args.max_restarts), "nnodes": str(args.nnodes),
            "nprocPerNode": str(args.nproc_per_node)}


def _torchrun(rest: Sequence[str]) -> int:
    """torchrun with the plugin; its exit code (0, or 1 when a worker group failed)."""
    from torch.distributed.run import main as torchrun_main

    import slsa_dist.integrations._torch_plugin  # noqa: F401 -- registers the 'slsa' event handler

    try:
        torchrun_main(["--logs-specs", "slsa", "--event-log-handler", "slsa", *rest])
    except SystemExit as exc:
        if isinstance(exc.code, int):
            return exc.code
        if exc.code:
            print(exc.code, file=sys.stderr)
        return 1
    except Exception as exc:  # ChildFailedError: the worker group failed
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(_HELP)
        _torchrun(["--help"])
        return
    settings, rest = split_args(args)
    parameters = launcher_parameters(rest)
    settings["SLSA_INTERNAL_PARAMETERS"] = json.dumps(parameters, sort_keys=True)
    if "SLSA_OUT" in settings and "SLSA_COORDINATOR" not in settings:
        from slsa_dist.integrations._onecommand import run_with_own_coordinator

        sys.exit(run_with_own_coordinator(settings, rest, parameters=parameters,
                                          torchrun=_torchrun))
    os.environ.update(settings)
    if not os.environ.get("SLSA_COORDINATOR"):
        raise SystemExit("slsa-torchrun: error: expected --slsa-out DIR, or --slsa-coordinator "
                         "(or SLSA_COORDINATOR), found neither")
    sys.exit(_torchrun(rest))


if __name__ == "__main__":
    main()
