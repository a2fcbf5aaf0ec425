"""``python -m gmm_jax``: the same command line as ``gmm-jax``."""

import sys

from gmm_jax.cli import main

sys.exit(main())
