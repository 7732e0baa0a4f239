"""Report: what a person reads, showing what verify decided and never more.

Private modules: ``_html`` (one self-contained page, ``slsa-dist report``) and
``_text`` (the terminal summary, ``slsa-dist inspect``). Nothing here is public API:
the command is the interface.
"""

from __future__ import annotations

__all__: list[str] = []
