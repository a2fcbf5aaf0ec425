import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, random_covariances, random_params

import gmm_jax as gmm


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_from_covariances_round_trips_covariances(rng, covariance_type):
    covariances = random_covariances(rng, covariance_type, 3, 4)
    params = gmm.GMMParams.from_covariances(np.full(3, 1 / 3), rng.normal(size=(3, 4)), covariances, covariance_type)
    np.testing.assert_allclose(params.covariances, covariances, rtol=1e-10)
    assert (params.n_components, params.n_features) == (3, 4)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_cholesky_matches_sklearn(rng, covariance_type):
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    covariances = random_covariances(rng, covariance_type, 3, 4)
    params = gmm.GMMParams.from_covariances(np.full(3, 1 / 3), rng.normal(size=(3, 4)), covariances, covariance_type)
    expected = _compute_precision_cholesky(covariances, covariance_type)
    np.testing.assert_allclose(params.precisions_cholesky, expected, rtol=1e-10)


def test_covariance_type_is_static_metadata_not_a_leaf(rng):
    params = random_params(rng, "diag")
    leaves, treedef = jax.tree_util.tree_flatten(params)
    assert len(leaves) == 3
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.covariance_type == "diag"


def test_params_pass_through_jit_and_vmap(rng):
    params = random_params(rng, "full")
    doubled = jax.jit(lambda p: jax.tree_util.tree_map(lambda a: 2 * a, p))(params)
    assert doubled.covariance_type == "full"
    np.testing.assert_allclose(doubled.means, 2 * params.means)

    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), params, params)
    n_comp = jax.vmap(lambda p: p.weights.sum())(stacked)
    np.testing.assert_allclose(n_comp, [1.0, 1.0])


def test_params_are_immutable(rng):
    params = random_params(rng, "spherical")
    with pytest.raises(AttributeError):
        params.weights = jnp.ones(3)


def test_unflatten_with_placeholders_does_not_validate():
    # JAX rebuilds pytrees with arbitrary leaves (None, object()) during tracing.
    params = gmm.GMMParams(None, None, None, "full")
    assert params.covariance_type == "full"


def test_from_precisions_cholesky_imports_a_sklearn_model(rng):
    from sklearn.mixture import GaussianMixture

    X = rng.normal(size=(200, 2))
    model = GaussianMixture(2, random_state=0).fit(X)
    params = gmm.GMMParams.from_precisions_cholesky(
        model.weights_, model.means_, model.precisions_cholesky_, model.covariance_type
    )
    np.testing.assert_allclose(gmm.log_prob(params, X), model.score_samples(X), rtol=1e-10)
