"""Side-by-side benchmarks of gmm_jax against scikit-learn and gmmx.

Run ``python -m benchmarks.run`` (add ``--quick`` for a seconds-long smoke
run); results land in ``benchmarks/results/``. See ``benchmarks/README.md``.
"""
