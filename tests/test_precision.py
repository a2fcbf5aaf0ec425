"""Matrix products run in full float32 (not TF32) unless the caller chooses a precision."""

import re

import jax
import jax.numpy as jnp
import numpy as np

import gmm_jax as gmm


def dot_precisions(lowered_text):
    return re.findall(r"stablehlo\.dot_general[^\n]*?precision = \[(\w+), (\w+)\]", lowered_text) + [
        ("DEFAULT", "DEFAULT")
        for line in lowered_text.splitlines()
        if "stablehlo.dot_general" in line and "precision" not in line
    ]


def lowered_fit(X):
    return jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 3, max_iter=5)).lower(X).as_text()


def test_every_matrix_product_of_a_fit_asks_for_full_float32():
    X = jnp.asarray(np.random.default_rng(0).normal(size=(200, 6)), jnp.float32)
    precisions = dot_precisions(lowered_fit(X))
    assert len(precisions) > 5  # the E-step, M-step and k-means products are all there
    assert set(precisions) == {("HIGHEST", "HIGHEST")}


def test_a_precision_chosen_by_the_caller_is_kept():
    X = jnp.asarray(np.random.default_rng(0).normal(size=(200, 6)), jnp.float32)
    with jax.default_matmul_precision("tensorfloat32"):
        precisions = dot_precisions(lowered_fit(X))
    assert precisions and ("HIGHEST", "HIGHEST") not in set(precisions)
