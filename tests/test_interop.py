"""Bridges to numpyro and TFP: the same log densities as gmm.log_prob, and back to the same parameters.

numpyro and TFP broadcast ranks implicitly inside their log_prob, so their
calls run under ``jax.numpy_rank_promotion("allow")`` (the suite raises on
rank promotion). They are in the test extra; without them these tests skip.
"""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from conftest import COVARIANCE_TYPES, random_params


def _have(module):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            __import__(module)
    except ImportError:
        return False
    return True


LIBRARIES = [
    pytest.param("numpyro", marks=pytest.mark.skipif(not _have("numpyro"), reason="numpyro is not installed")),
    pytest.param(
        "tfp",
        marks=pytest.mark.skipif(
            not _have("tensorflow_probability.substrates.jax"), reason="tensorflow-probability is not installed"
        ),
    ),
]
TO = {"numpyro": lambda p: gmm.interop.to_numpyro(p), "tfp": lambda p: gmm.interop.to_tfp(p)}
FROM = {"numpyro": lambda d, t=None: gmm.interop.from_numpyro(d, t), "tfp": lambda d, t=None: gmm.interop.from_tfp(d, t)}


def library_log_prob(mixture, X):
    with jax.numpy_rank_promotion("allow"):
        return mixture.log_prob(X)


@pytest.fixture
def case(rng):
    def make(covariance_type, n_features=3):
        params = random_params(rng, covariance_type, n_components=3, n_features=n_features, spread=2.0)
        X = jnp.asarray(rng.normal(scale=3.0, size=(40, n_features)))
        return params, X

    return make


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("library", LIBRARIES)
def test_log_prob_equals_gmm_log_prob(library, covariance_type, case):
    params, X = case(covariance_type)
    mixture = TO[library](params)
    np.testing.assert_allclose(library_log_prob(mixture, X), gmm.log_prob(params, X), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("library", LIBRARIES)
def test_reading_the_mixture_back_gives_the_same_parameters(library, covariance_type, case):
    params, _ = case(covariance_type)
    back = FROM[library](TO[library](params), covariance_type)
    assert back.covariance_type == covariance_type
    chex.assert_trees_all_close(back, params, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_default_reading_is_full_or_diag_and_keeps_the_density(library, case):
    for covariance_type, expected in [("full", "full"), ("tied", "full"), ("diag", "diag"), ("spherical", "diag")]:
        params, X = case(covariance_type)
        back = FROM[library](TO[library](params))
        assert back.covariance_type == expected
        np.testing.assert_allclose(gmm.log_prob(back, X), gmm.log_prob(params, X), rtol=1e-10)


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_mixture_that_is_not_of_the_requested_type_is_refused(library, case):
    params, _ = case("full")
    with pytest.raises(ValueError, match="covariance_type='diag'.*off-diagonal"):
        FROM[library](TO[library](params), "diag")
    with pytest.raises(ValueError, match="covariance_type='tied'.*differ"):
        FROM[library](TO[library](params), "tied")
    diag, _ = case("diag")
    with pytest.raises(ValueError, match="covariance_type='spherical'"):
        FROM[library](TO[library](diag), "spherical")
    with pytest.raises(TypeError, match="MixtureSameFamily"):
        FROM[library](params)


@pytest.mark.parametrize("library", LIBRARIES)
def test_bridges_trace_and_differentiate(library, case):
    params, X = case("full", n_features=2)

    def through_library(means):
        return jnp.mean(library_log_prob(TO[library](params.replace(means=means)), X))

    def direct(means):
        return gmm.score(params.replace(means=means), X)

    chex.assert_trees_all_close(
        jax.jit(jax.grad(through_library))(params.means), jax.grad(direct)(params.means), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.slow
def test_samples_of_the_bridged_mixture_follow_its_moments(library, case):
    params, _ = case("diag", n_features=2)
    with jax.numpy_rank_promotion("allow"):
        samples = TO[library](params).sample(seed=jax.random.key(0), sample_shape=(20000,)) if library == "tfp" else (
            TO[library](params).sample(jax.random.key(0), (20000,))
        )
    expected_mean = params.weights @ params.means
    np.testing.assert_allclose(samples.mean(axis=0), expected_mean, atol=0.1)


def test_batched_parameters_are_refused_with_the_vmap_hint():
    params = random_params(np.random.default_rng(0), "spherical")
    batched = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), params)
    with pytest.raises(ValueError, match="vmap"):
        gmm.interop.to_numpyro(batched)
