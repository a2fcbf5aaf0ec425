import sys

from gmm_jax.cli import main

sys.exit(main())
