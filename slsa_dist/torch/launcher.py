"""``slsa-torchrun``: torchrun with the slsa-dist plugin switched on.

    slsa-torchrun [--slsa-coordinator HOST:PORT] [--slsa-job-id ID]
                  [--slsa-spool-dir DIR] [--slsa-bootstrap] TORCHRUN-ARGS...

equals ``torchrun --logs-specs slsa --event-log-handler slsa TORCHRUN-ARGS``
with ``SLSA_COORDINATOR``, ``SLSA_JOB_ID`` and ``SLSA_SPOOL_DIR`` set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> None:
    settings, rest = split_args(sys.argv[1:] if argv is None else argv)
    os.environ.update(settings)
    if not os.environ.get("SLSA_COORDINATOR"):
        raise SystemExit("slsa-torchrun: error: expected --slsa-coordinator or SLSA_COORDINATOR, "
                         "found neither")
    from torch.distributed.run import main as torchrun_main

    import slsa_dist.torch.plugin  # noqa: F401 -- registers the 'slsa' event handler

    torchrun_main(["--logs-specs", "slsa", "--event-log-handler", "slsa", *rest])


if __name__ == "__main__":
    main()
