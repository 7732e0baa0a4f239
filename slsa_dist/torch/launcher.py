"""``slsa-torchrun``: torchrun with the slsa-dist plugin switched on.

    slsa-torchrun [--slsa-coordinator HOST:PORT] [--slsa-job-id ID]
                  [--slsa-spool-dir DIR] [--slsa-bootstrap] TORCHRUN-ARGS...

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
          "--slsa-spool-dir": "SLSA_SPOOL_DIR"}


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


def main(argv: Sequence[str] | None = None) -> None:
    settings, rest = split_args(sys.argv[1:] if argv is None else argv)
    settings["SLSA_INTERNAL_PARAMETERS"] = json.dumps(launcher_parameters(rest), sort_keys=True)
    os.environ.update(settings)
    if not os.environ.get("SLSA_COORDINATOR"):
        raise SystemExit("slsa-torchrun: error: expected --slsa-coordinator or SLSA_COORDINATOR, "
                         "found neither")
    from torch.distributed.run import main as torchrun_main

    import slsa_dist.torch.plugin  # noqa: F401 -- registers the 'slsa' event handler

    torchrun_main(["--logs-specs", "slsa", "--event-log-handler", "slsa", *rest])


if __name__ == "__main__":
    main()
