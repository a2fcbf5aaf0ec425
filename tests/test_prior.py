"""The conjugate prior and MAP-EM, against R's mclust and scipy.

Reference values come from ``tests/reference/mclust_reference.R`` (mclust
6.0.0), committed as JSON beside it; nothing here runs R. Float64 throughout
(the root conftest enables it).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gmm_jax as gmm
from gmm_jax import _prior
from gmm_jax import _covariance
from conftest import full_covariances
from reference import mclust_data as datasets


def weighted_log_prob(params, X):
    """``log w_k + log N(x_n | k)``, ``(N, K)``, from the reference math."""
    log_gauss = _covariance.log_gaussian_prob(X, params.means, params.precisions_cholesky, params.covariance_type)
    return log_gauss + jnp.log(params.weights)[None, :]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
REFERENCE = json.loads((datasets.HERE / "mclust_reference.json").read_text())
DATASETS = datasets.DATASETS


def _reference(name):
    return REFERENCE["datasets"][name]


def _params_from_mclust(entry, covariance_type):
    return gmm.GMMParams.from_covariances(
        np.asarray(entry["weights"]), np.asarray(entry["means"]), np.asarray(entry["covariances"]), covariance_type
    )


def _relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


# ---------------------------------------------------------------------------
# ConjugatePrior.default == mclust's defaultPrior


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_default_prior_equals_mclust_default_prior(name, covariance_type):
    X = datasets.load(name)
    for k, expected in enumerate(_reference(name)["default_prior"][covariance_type], start=1):
        prior = gmm.ConjugatePrior.default(X, k, covariance_type)
        np.testing.assert_allclose(prior.mean, expected["mean"], rtol=1e-13, atol=1e-13)
        assert float(prior.shrinkage) == expected["shrinkage"]
        assert float(prior.dof) == expected["dof"]
        assert float(prior.weight_concentration) == 1.0
        np.testing.assert_allclose(prior.scale, np.asarray(expected["scale"]), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_default_prior_with_fewer_samples_than_features_equals_mclust(covariance_type):
    X = datasets.load("wine")[:10]  # 10 rows, 13 features: mclust keeps only the diagonal of var(X)
    for k, expected in enumerate(_reference("wine")["default_prior_first_10_rows"][covariance_type], start=1):
        prior = gmm.ConjugatePrior.default(X, k, covariance_type)
        np.testing.assert_allclose(prior.scale, np.asarray(expected["scale"]), rtol=1e-12)
        assert float(prior.dof) == expected["dof"]


# ---------------------------------------------------------------------------
# The MAP M-step == mclust's mstep(..., prior = priorControl())


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_m_step_from_labels_equals_mclust_mstep(name, covariance_type):
    X = datasets.load(name)
    entry = _reference(name)["mstep"][covariance_type]
    k = entry["n_components"]
    resp = np.eye(k)[np.asarray(entry["labels"])]
    prior = gmm.ConjugatePrior.default(X, k, covariance_type)
    # Statistics around an arbitrary shift: the result must not depend on it.
    shift = np.tile(X[:1], (k, 1)) + 0.5
    diff = X[:, None, :] - shift[None]
    nk = resp.sum(0)
    s1 = np.einsum("nk,nkd->kd", resp, diff)
    if covariance_type in ("full", "tied"):
        s2 = np.einsum("nk,nkd,nke->kde", resp, diff, diff)
    else:
        s2 = np.einsum("nk,nkd->kd", resp, diff * diff)
    weights, means, covariances = _prior.posterior_mode(
        jnp.asarray(nk), jnp.asarray(s1), jnp.asarray(s2), jnp.asarray(shift), covariance_type, 0.0, prior
    )
    assert _relative_error(weights, entry["weights"]) < 1e-12
    assert _relative_error(means, entry["means"]) < 1e-12
    assert _relative_error(covariances, entry["covariances"]) < 1e-12


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_one_map_em_iteration_from_mclust_converged_fit_moves_nothing(name, covariance_type):
    X = datasets.load(name)
    entry = _reference(name)["map_fit"][covariance_type]
    assert entry["self_step_change"] < 1e-10  # mclust's own fit sits at its fixed point
    k = entry["n_components"]
    start = _params_from_mclust(entry, covariance_type)
    prior = gmm.ConjugatePrior.default(X, k, covariance_type)
    result = gmm.fit(
        jax.random.key(0), X, k, covariance_type=covariance_type, init_params=start,
        prior=prior, max_iter=1, tol=0.0, reg_covar=0.0,
    )  # fmt: skip
    assert int(result.n_iter) == 1
    moved = result.params
    assert _relative_error(moved.weights, start.weights) < 1e-8
    assert _relative_error(moved.means, start.means) < 1e-8
    assert _relative_error(moved.covariances, start.covariances) < 1e-8
    # The plain log-likelihood at mclust's fit is mclust's loglik.
    np.testing.assert_allclose(float(gmm.score(start, X)) * X.shape[0], entry["loglik"], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_em_from_mclust_fit_stays_at_the_mclust_fit(covariance_type):
    X = datasets.load("iris")
    entry = _reference("iris")["map_fit"][covariance_type]
    k = entry["n_components"]
    start = _params_from_mclust(entry, covariance_type)
    prior = gmm.ConjugatePrior.default(X, k, covariance_type)
    result = gmm.fit(
        jax.random.key(0), X, k, covariance_type=covariance_type, init_params=start,
        prior=prior, max_iter=50, tol=0.0, reg_covar=0.0,
    )  # fmt: skip
    assert _relative_error(result.params.means, start.means) < 1e-7
    assert _relative_error(result.params.covariances, start.covariances) < 1e-7


# ---------------------------------------------------------------------------
# The penalised objective


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("name", ["iris", "faithful"])
@pytest.mark.slow
def test_penalised_trace_never_decreases(name, covariance_type):
    X = datasets.load(name)
    for k in (2, 4):
        prior = gmm.ConjugatePrior.default(X, k, covariance_type)
        result = gmm.fit(
            jax.random.key(k), X, k, covariance_type=covariance_type, prior=prior,
            init="random", max_iter=150, tol=0.0, reg_covar=0.0,
        )  # fmt: skip
        trace = np.asarray(result.log_likelihood)
        assert int(result.status) == 0 and np.all(np.isfinite(trace))
        assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:])), np.diff(trace).min()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_is_mean_log_likelihood_plus_log_prior_over_n(covariance_type):
    X = datasets.load("iris")
    prior = gmm.ConjugatePrior.default(X, 3, covariance_type)
    result = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, prior=prior, max_iter=0)
    n = X.shape[0]
    expected = float(gmm.score(result.params, X)) + float(_prior.log_prior(result.params, prior)) / n
    np.testing.assert_allclose(float(result.lower_bound), expected, rtol=1e-12)


def _random_params(rng, covariance_type, k, d):
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    full = a @ np.swapaxes(a, -1, -2) / d + 0.5 * np.eye(d)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.3, 2.0, (k, d)),
        "spherical": rng.uniform(0.3, 2.0, k),
    }[covariance_type]
    return gmm.GMMParams.from_covariances(weights, means, covariances, covariance_type)


def _scipy_log_prior(params, prior, covariance_type):
    """Normal-inverse-Wishart (or normal-inverse-gamma) and Dirichlet log densities from scipy."""
    k, d = params.means.shape
    mean, kappa, nu = np.asarray(prior.mean), float(prior.shrinkage), float(prior.dof)
    scale, alpha = np.asarray(prior.scale), float(prior.weight_concentration)
    means, covs = np.asarray(params.means), np.asarray(params.covariances)
    total = stats.dirichlet.logpdf(np.asarray(params.weights), np.full(k, alpha))
    if covariance_type == "full":
        for j in range(k):
            total += stats.invwishart.logpdf(covs[j], df=nu, scale=scale)
            total += stats.multivariate_normal.logpdf(means[j], mean, covs[j] / kappa)
    elif covariance_type == "tied":
        total += stats.invwishart.logpdf(covs, df=nu, scale=scale)
        total += sum(stats.multivariate_normal.logpdf(means[j], mean, covs / kappa) for j in range(k))
    elif covariance_type == "diag":
        total += np.sum(stats.invgamma.logpdf(covs, a=nu / 2, scale=scale / 2))
        total += np.sum(stats.norm.logpdf(means, mean[None], np.sqrt(covs / kappa)))
    else:
        total += np.sum(stats.invgamma.logpdf(covs, a=nu / 2, scale=scale / 2))
        total += np.sum(stats.norm.logpdf(means, mean[None], np.sqrt(covs / kappa)[:, None]))
    return total


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prior_matches_scipy_densities_up_to_a_constant(covariance_type, rng):
    k, d = 3, 3
    X = rng.normal(size=(40, d))
    prior = gmm.ConjugatePrior.default(X, k, covariance_type, shrinkage=0.7).replace(weight_concentration=2.5)
    a, b = (_random_params(rng, covariance_type, k, d) for _ in range(2))
    ours = float(_prior.log_prior(a, prior) - _prior.log_prior(b, prior))
    theirs = _scipy_log_prior(a, prior, covariance_type) - _scipy_log_prior(b, prior, covariance_type)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_mode_maximises_log_likelihood_plus_log_prior(covariance_type, rng):
    """With fixed responsibilities, perturbing the MAP estimate never increases the M-step objective."""
    k, d = 2, 2
    X = rng.normal(size=(30, d)) + np.array([3.0, -1.0])
    resp = rng.dirichlet(np.ones(k), size=30)
    prior = gmm.ConjugatePrior.default(X, k, covariance_type).replace(weight_concentration=3.0)
    nk, s1 = resp.sum(0), np.einsum("nk,nd->kd", resp, X)
    if covariance_type in ("full", "tied"):
        s2 = np.einsum("nk,nd,ne->kde", resp, X, X)
    else:
        s2 = np.einsum("nk,nd->kd", resp, X * X)
    w, mu, cov = _prior.posterior_mode(nk, s1, s2, jnp.zeros((k, d)), covariance_type, 0.0, prior)
    best = gmm.GMMParams.from_covariances(w, mu, cov, covariance_type)

    def objective(p):  # expected complete-data log-likelihood + log prior
        return float(jnp.sum(resp * weighted_log_prob(p, jnp.asarray(X)))) + float(_prior.log_prior(p, prior))

    top = objective(best)
    for _ in range(10):
        cov_step = np.asarray(cov) * np.exp(0.05 * rng.normal(size=np.shape(cov)))
        if covariance_type in ("full", "tied"):
            cov_step = np.asarray(cov) + 0.02 * np.eye(d)
        w_step = np.asarray(w) * np.exp(0.05 * rng.normal(size=k))
        other = gmm.GMMParams.from_covariances(
            w_step / w_step.sum(), np.asarray(mu) + 0.05 * rng.normal(size=(k, d)), cov_step, covariance_type
        )
        assert objective(other) < top


# ---------------------------------------------------------------------------
# Degenerate data: the prior keeps covariances positive definite


def _duplicated_points():
    return np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [3.0, -1.0]]), 20, axis=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_prior_fits_duplicated_points_where_plain_em_fails(covariance_type):
    X = _duplicated_points()
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gmm.fit(jax.random.key(0), X, 4, covariance_type=covariance_type, reg_covar=0.0)
    prior = gmm.ConjugatePrior.default(X, 4, covariance_type)
    result = gmm.fit(jax.random.key(0), X, 4, covariance_type=covariance_type, prior=prior, reg_covar=0.0)
    assert int(result.status) == 0
    for leaf in jax.tree_util.tree_leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert np.all(np.linalg.eigvalsh(full_covariances(result.params)) > 0)


def test_empty_component_gets_the_prior_mode():
    X = _duplicated_points()
    prior = gmm.ConjugatePrior.default(X, 5, "diag")
    nk = jnp.array([20.0, 20.0, 20.0, 0.0, 0.0])
    s1 = jnp.zeros((5, 2))
    s2 = jnp.zeros((5, 2))
    _, means, covs = _prior.posterior_mode(nk, s1, s2, jnp.zeros((5, 2)), "diag", 0.0, prior)
    np.testing.assert_allclose(means[3], prior.mean, rtol=1e-12)
    np.testing.assert_allclose(covs[3], float(prior.scale) / (float(prior.dof) + 3), rtol=1e-12)


# ---------------------------------------------------------------------------
# Pytree, transformations and validation


@pytest.mark.slow
def test_conjugate_prior_is_a_pytree_that_passes_through_jit_and_vmap():
    X = datasets.load("faithful")
    prior = gmm.ConjugatePrior.default(X, 2, "full")
    leaves, treedef = jax.tree_util.tree_flatten(prior)
    assert len(leaves) == 5 and treedef.num_leaves == 5
    doubled = jax.jit(lambda p: p.replace(scale=2 * p.scale))(prior)
    np.testing.assert_allclose(doubled.scale, 2 * np.asarray(prior.scale))
    keys = jax.random.split(jax.random.key(0), 3)
    results = jax.vmap(lambda key: gmm.fit(key, X, 2, prior=prior))(keys)
    assert results.params.means.shape == (3, 2, 2)
    alone = gmm.fit(keys[1], X, 2, prior=prior)
    np.testing.assert_allclose(results.params.means[1], alone.params.means, rtol=1e-10)


@pytest.mark.slow
def test_fit_with_prior_keeps_float32():
    X = datasets.load("faithful").astype(np.float32)
    prior = gmm.ConjugatePrior.default(X, 2, "diag")
    assert prior.scale.dtype == jnp.float32
    result = gmm.fit(jax.random.key(0), X, 2, covariance_type="diag", prior=prior)
    assert result.params.means.dtype == jnp.float32
    X64 = X.astype(np.float64)
    result64 = gmm.fit(jax.random.key(0), X64, 2, covariance_type="diag", prior=gmm.ConjugatePrior.default(X64, 2, "diag"))
    np.testing.assert_allclose(result.params.means, result64.params.means, rtol=1e-4)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(mean=np.zeros((2, 2))), "prior.mean must have shape"),
        (dict(shrinkage=-1.0), "shrinkage must be >= 0"),
        (dict(dof=0.5), "dof must be > n_features - 1"),
        (dict(scale=-np.eye(2)), "positive definite"),
        (dict(scale=np.ones((3, 3))), "must be a scalar or have shape"),
        (dict(weight_concentration=0.5), "weight_concentration must be >= 1"),
    ],
)
def test_create_rejects_bad_hyperparameters(changes, message):
    arguments = dict(mean=np.zeros(2), shrinkage=0.01, dof=4.0, scale=np.eye(2), weight_concentration=1.0)
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        gmm.ConjugatePrior.create(**arguments)


def test_fit_rejects_a_prior_for_another_covariance_type_or_data():
    X = datasets.load("faithful")
    with pytest.raises(ValueError, match="must be a scalar for covariance_type='diag'"):
        gmm.fit(jax.random.key(0), X, 2, covariance_type="diag", prior=gmm.ConjugatePrior.default(X, 2, "full"))
    with pytest.raises(ValueError, match="must be a \\(2, 2\\) matrix"):
        gmm.fit(jax.random.key(0), X, 2, covariance_type="tied", prior=gmm.ConjugatePrior.default(X, 2, "spherical"))
    with pytest.raises(ValueError, match="has 4 features but the data has 2"):
        gmm.fit(jax.random.key(0), X, 2, prior=gmm.ConjugatePrior.default(datasets.load("iris"), 2))
    with pytest.raises(TypeError, match="prior must be a ConjugatePrior"):
        gmm.fit(jax.random.key(0), X, 2, prior={"dof": 4})
