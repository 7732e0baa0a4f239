"""``python -m slsa_dist.cli``: the same as the ``slsa-dist`` command."""

import sys

from slsa_dist.cli import main

sys.exit(main())
