"""Generated protobuf code must match proto/ exactly (run `make proto` after editing)."""

from __future__ import annotations

from tools import protogen


def test_generated_code_is_not_stale() -> None:
    assert protogen.main(["--check"]) == 0
