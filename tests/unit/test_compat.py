"""Old import paths of moved modules still work for a release, and say where they went."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import slsa_dist  # noqa: F401 -- installs the alias finder
from slsa_dist._internal.compat import MOVED


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_is_the_new_module_with_a_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
               for w in caught)


def test_names_users_import_resolve_through_the_old_paths() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from slsa_dist.agent import Agent  # type: ignore[import-not-found]
        from slsa_dist.keys import load_verifier  # type: ignore[import-not-found]
    from slsa_dist.collect.agent import Agent as MovedAgent
    from slsa_dist.errors import ReportError, SenderError
    from slsa_dist.sign.keys import load_verifier as moved_load_verifier
    from slsa_dist.verify import verify_bundle  # the package re-exports the old module's API
    from slsa_dist.verify.bundle import verify_bundle as moved_verify_bundle

    assert Agent is MovedAgent
    assert load_verifier is moved_load_verifier
    assert verify_bundle is moved_verify_bundle
    assert ReportError is SenderError
