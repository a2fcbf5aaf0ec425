"""The unconstrained parametrisation: a bijection between free arrays and valid mixtures."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gmm_jax as gmm
from conftest import COVARIANCE_TYPES, random_params

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def packed_size(covariance_type, k, d):
    return {"full": (k, d * (d + 1) // 2), "tied": (d * (d + 1) // 2,), "diag": (k, d), "spherical": (k,)}[
        covariance_type
    ]


def random_raw(seed, covariance_type, k, d, scale, batch=()):
    rng = np.random.default_rng(seed)
    return gmm.UnconstrainedParams(
        jnp.asarray(rng.normal(scale=scale, size=(*batch, k - 1))),
        jnp.asarray(rng.normal(scale=scale, size=(*batch, k, d))),
        jnp.asarray(rng.normal(scale=scale, size=(*batch, *packed_size(covariance_type, k, d)))),
    )


raw_cases = st.tuples(
    st.integers(0, 2**31 - 1),
    st.sampled_from(COVARIANCE_TYPES),
    st.integers(1, 4),  # n_components
    st.integers(1, 3),  # n_features
    st.sampled_from([0.1, 1.0, 3.0]),  # spread of the raw values
)


@SETTINGS
@given(raw_cases)
@pytest.mark.slow
def test_every_real_input_maps_to_a_valid_mixture(case):
    seed, covariance_type, k, d, scale = case
    params = gmm.from_unconstrained(random_raw(seed, covariance_type, k, d, scale), covariance_type)
    weights = np.asarray(params.weights)
    assert weights.shape == (k,) and np.all(weights > 0)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-13)
    factor = np.asarray(params.precisions_cholesky)
    if covariance_type in ("full", "tied"):
        factors = factor.reshape(-1, d, d)
        np.testing.assert_array_equal(np.tril(factors, -1), 0.0)  # upper triangular, as scikit-learn's
        assert np.all(np.diagonal(factors, axis1=1, axis2=2) > 0)
        for cov in np.asarray(params.covariances).reshape(-1, d, d):
            np.testing.assert_allclose(cov, cov.T, rtol=1e-12, atol=1e-14)
            assert np.all(np.linalg.eigvalsh(cov) > 0)
    else:
        assert np.all(factor > 0) and np.all(np.isfinite(np.asarray(params.covariances)))


@SETTINGS
@given(raw_cases)
@pytest.mark.slow
def test_raw_to_params_to_raw_is_the_identity(case):
    seed, covariance_type, k, d, scale = case
    raw = random_raw(seed, covariance_type, k, d, scale)
    back = gmm.to_unconstrained(gmm.from_unconstrained(raw, covariance_type))
    chex.assert_trees_all_close(back, raw, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from(COVARIANCE_TYPES), st.integers(1, 4), st.integers(1, 3))
@pytest.mark.slow
def test_params_to_raw_to_params_is_the_identity(seed, covariance_type, k, d):
    params = random_params(np.random.default_rng(seed), covariance_type, k, d)
    back = gmm.from_unconstrained(gmm.to_unconstrained(params), covariance_type)
    assert back.covariance_type == covariance_type
    chex.assert_trees_all_close(back, params, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_log_prob_of_raw_parameters_differentiates_like_central_differences(covariance_type):
    raw = random_raw(0, covariance_type, 3, 2, 0.5)
    X = jax.random.normal(jax.random.key(0), (20, 2))

    def nll(raw):
        return -jnp.mean(gmm.log_prob(gmm.from_unconstrained(raw, covariance_type), X))

    grad = jax.grad(nll)(raw)
    rng = np.random.default_rng(1)
    v = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), raw)
    h = 1e-6
    plus = jax.tree_util.tree_map(lambda a, b: a + h * b, raw, v)
    minus = jax.tree_util.tree_map(lambda a, b: a - h * b, raw, v)
    numeric = (nll(plus) - nll(minus)) / (2 * h)
    analytic = sum(jnp.vdot(g, u) for g, u in zip(grad, v))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_extreme_raw_values_give_finite_parameters_and_derivatives(covariance_type):
    raw = random_raw(2, covariance_type, 3, 3, 1.0)
    # Off-diagonal entries far beyond exp's range, logits far apart.
    raw = raw._replace(weight_logits=raw.weight_logits * 30.0, precisions_cholesky=raw.precisions_cholesky * 5.0)
    if covariance_type in ("full", "tied"):
        rows, cols = np.triu_indices(3)
        off = jnp.asarray(rows != cols)
        raw = raw._replace(precisions_cholesky=jnp.where(off, 1e3, raw.precisions_cholesky))
    params = gmm.from_unconstrained(raw, covariance_type)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(params))
    grad = jax.grad(lambda r: jnp.sum(gmm.from_unconstrained(r, covariance_type).precisions_cholesky))(raw)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grad)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_leading_batch_axes_map_each_mixture_as_alone(covariance_type):
    raw = random_raw(3, covariance_type, 3, 2, 1.0, batch=(4, 2))
    batched = gmm.from_unconstrained(raw, covariance_type)
    assert batched.means.shape == (4, 2, 3, 2)
    for i in range(4):
        for j in range(2):
            one = gmm.from_unconstrained(jax.tree_util.tree_map(lambda a: a[i, j], raw), covariance_type)
            chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[i, j], batched), one, rtol=1e-14)
    chex.assert_trees_all_close(gmm.to_unconstrained(batched), raw, rtol=1e-12, atol=1e-12)


def test_under_jit_and_vmap_it_equals_the_eager_map():
    raw = random_raw(4, "full", 3, 2, 1.0, batch=(5,))
    eager = gmm.from_unconstrained(raw, "full")
    jitted = jax.jit(jax.vmap(lambda r: gmm.from_unconstrained(r, "full")))(raw)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-14)


def test_one_component_has_no_weight_logits():
    raw = random_raw(5, "diag", 1, 2, 1.0)
    assert raw.weight_logits.shape == (0,)
    np.testing.assert_array_equal(gmm.from_unconstrained(raw, "diag").weights, [1.0])


def test_shapes_that_do_not_fit_together_raise_a_value_error_naming_them():
    raw = random_raw(6, "full", 3, 2, 1.0)
    with pytest.raises(ValueError, match=r"precisions_cholesky of shape \(3, 2\); got \(2,\) and \(3, 3\)"):
        gmm.from_unconstrained(raw, "diag")  # full-sized factors read as diag
    with pytest.raises(ValueError, match=r"weight_logits of shape \(2,\)"):
        gmm.from_unconstrained(raw._replace(weight_logits=jnp.zeros(3)), "full")
    with pytest.raises(ValueError, match="covariance_type"):
        gmm.from_unconstrained(raw, "banana")
    with pytest.raises(TypeError, match="UnconstrainedParams"):
        gmm.from_unconstrained({"means": raw.means}, "full")
