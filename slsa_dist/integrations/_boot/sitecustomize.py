"""Opt-in zero-code capture (``SLSA_BOOTSTRAP=1``): start the rank agent in every worker.

The torchrun plugin puts this directory first on the workers' PYTHONPATH.
Any ``sitecustomize`` that was there before is still imported afterwards.
"""

import importlib.util
import os
import sys

if os.environ.get("SLSA_COORDINATOR") and os.environ.get("RANK") is not None:
    try:
        import slsa_dist
        from slsa_dist.capture._auto import install

        install(slsa_dist.init())
    except Exception as exc:  # never break the user's interpreter start-up
        print(f"slsa-dist: bootstrap failed: {exc}", file=sys.stderr)

_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None and _spec.origin != __file__:
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
