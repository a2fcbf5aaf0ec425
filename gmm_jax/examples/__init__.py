"""Runnable examples: ``python -m gmm_jax.examples.<name> --help``."""
