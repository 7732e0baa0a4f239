"""Report: what a person reads.

* :mod:`.html` -- one self-contained HTML page (``slsa-dist report``).
* :mod:`.text` -- the terminal summary (``slsa-dist inspect``).
"""

from __future__ import annotations

from slsa_dist.report.html import render, write_report

__all__ = ["render", "write_report"]
