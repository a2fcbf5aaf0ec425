"""Suite-wide JAX settings, applied before any test or doctest runs.

* float64 is enabled so tests can compare against scipy / scikit-learn to
  ~1e-10; tests that check float32 behaviour pass float32 arrays explicitly
  (gmm_jax follows the input dtype).
* Silent rank promotion is an error: a broadcast between arrays of different
  rank must be written out, so shape bugs fail loudly.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
