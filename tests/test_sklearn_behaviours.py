"""scikit-learn's ``sklearn/mixture/tests/test_gaussian_mixture.py``, behaviour by behaviour.

Each behaviour of ``GaussianMixture`` that has a meaning for the functional API
is tested here in our own words (or in the named test elsewhere). Mapping,
sklearn test -> ours:

- test_gaussian_mixture_attributes -> test_fit_result_has_every_field_with_documented_shapes
  (there is no estimator object; its attributes are the ``FitResult`` fields)
- test_check_weights, test_check_means, test_check_precisions ->
  test_starting_parameters_with_bad_shapes_or_values_are_rejected
- test_suffstat_sk_full/tied/diag, test_gaussian_suffstat_sk_spherical ->
  test_m_step_covariances_are_the_weighted_empirical_covariances
- test_compute_log_det_cholesky -> test_log_density_at_the_mean_gives_the_log_determinant
- test_gaussian_mixture_log_probabilities -> test_one_diagonal_covariance_in_every_type_gives_the_same_log_prob
- test_gaussian_mixture_estimate_log_prob_resp -> test_properties.py::test_densities_and_posteriors_are_well_formed
  (rows sum to one); inputs cannot be modified: ``GMMParams`` is immutable (tests/test_params.py)
- test_gaussian_mixture_predict_predict_proba -> test_predict_is_the_argmax_of_predict_proba_and_finds_the_clusters
- test_gaussian_mixture_fit_predict, test_gaussian_mixture_fit_predict_n_init ->
  test_predict_after_fit_agrees_with_the_final_e_step_and_keeps_dtype (no ``fit_predict``:
  labels are ``predict(result.params, X)`` whatever ``n_init`` was)
- test_gaussian_mixture_fit -> test_fit_recovers_the_per_cluster_maximum_likelihood_estimates
- test_gaussian_mixture_fit_best_params, test_multiple_init, test_init ->
  tests/test_fit.py::test_n_init_picks_the_best_of_single_fits_with_the_same_keys
- test_gaussian_mixture_fit_convergence_warning -> test_non_convergence_is_reported_in_the_result
  (a pure function does not warn: ``converged`` says it)
- test_gaussian_mixture_n_parameters -> test_n_parameters_counts_match_sklearn
- test_bic_1d_1component -> test_bic_of_one_component_in_one_dimension_is_the_same_for_every_type
- test_gaussian_mixture_aic_bic -> test_aic_and_bic_of_gaussian_data_are_near_the_entropy
- test_gaussian_mixture_verbose -> tests/test_fit.py::test_verbose_prints_each_iteration_from_the_compiled_loop
- test_warm_start -> test_warm_start_continues_where_the_previous_fit_stopped
- test_convergence_detected_with_warm_start -> test_repeated_warm_starts_converge (in chunks of
  two iterations: a call cannot compare its first iteration with the previous call's)
- test_score, test_score_samples -> test_score_is_the_mean_of_log_prob_and_improves_with_fitting
- test_monotonic_likelihood -> test_properties.py::test_log_likelihood_trace_never_decreases
  and tests/test_em.py::test_em_log_likelihood_never_decreases
- test_regularisation -> test_collapsed_clusters_fail_without_reg_covar_and_fit_with_it
  (every covariance type: tests/test_degenerate.py)
- test_fitted_precision_covariance_concistency -> test_fitted_precisions_are_the_inverse_covariances
- test_sample -> test_samples_reproduce_the_fitted_moments_and_shapes
- test_gaussian_mixture_setting_best_params -> tests/test_degenerate.py::
  test_singular_covariance_without_reg_covar_sets_status_under_vmap (a failed fit
  still returns every field; ``status`` says it failed)
- test_init_means_not_duplicated, test_means_for_all_inits ->
  test_every_init_starts_from_distinct_means_inside_the_data; convergence of every init:
  tests/test_fit.py::test_every_init_and_covariance_type_fits_the_seed_data
- test_max_iter_zero, test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters ->
  tests/test_em.py::test_max_iter_zero_returns_the_start_and_its_likelihood
- test_gaussian_mixture_precisions_init_diag, test_gaussian_mixture_precisions_init ->
  test_precisions_given_as_a_start_are_used_as_given
- test_gaussian_mixture_single_component_stable -> test_one_component_on_three_samples_fits_and_samples
- test_gaussian_mixture_array_api_compliance, test_gaussian_mixture_raises_where_array_api_not_implemented:
  not applicable (array API dispatch of the estimator; gmm_jax is JAX arrays throughout)
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from degenerate_data import BATCH, COVARIANCE_TYPES, N_COMPONENTS, fit_batch, three_blobs
from scipy import stats
from sklearn.metrics import adjusted_rand_score

import gmm_jax as gmm

KEY = jax.random.key(0)


def blob_stack(dtype=np.float64):
    data = [three_blobs(seed=s) for s in range(BATCH)]
    return np.stack([X for X, _ in data]).astype(dtype), [y for _, y in data]


@functools.lru_cache(maxsize=None)
def blob_fits(covariance_type, dtype=np.float64):
    return fit_batch(blob_stack(dtype)[0], covariance_type)


def dense(cov, covariance_type, k, d):
    cov = np.asarray(cov, np.float64)
    if covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    if covariance_type == "spherical":
        return np.stack([c * np.eye(d) for c in cov])
    return cov


def test_fit_result_has_every_field_with_documented_shapes():
    X, _ = three_blobs()
    result = gmm.fit(KEY, X, N_COMPONENTS, tol=1e-4, reg_covar=0.1, max_iter=100)
    assert result.params.weights.shape == (3,) and result.params.means.shape == (3, 3)
    assert result.params.covariances.shape == (3, 3, 3) and result.params.covariance_type == "full"
    assert result.log_likelihood.shape == (100,)
    for field in ("n_iter", "converged", "lower_bound", "status", "n_empty"):
        assert getattr(result, field).shape == ()
    # reg_covar is added to every variance: none can be below it.
    assert np.all(np.linalg.eigvalsh(np.asarray(result.params.covariances)) >= 0.1 - 1e-12)


def test_starting_parameters_with_bad_shapes_or_values_are_rejected():
    w, m = np.array([0.5, 0.5]), np.zeros((2, 2))
    with pytest.raises(ValueError, match="weights must have shape"):
        gmm.GMMParams.from_covariances(np.ones((2, 1)) / 2, m, np.ones(2), "spherical")
    with pytest.raises(ValueError, match="non-negative"):
        gmm.GMMParams.from_covariances(np.array([1.5, -0.5]), m, np.ones(2), "spherical")
    with pytest.raises(ValueError, match="sum to 1"):
        gmm.GMMParams.from_covariances(np.array([0.3, 0.3]), m, np.ones(2), "spherical")
    with pytest.raises(ValueError, match="weights must have shape"):
        gmm.GMMParams.from_covariances(w, np.zeros((3, 2)), np.ones(3), "spherical")
    bad_shapes = {"full": np.ones((3, 2, 2)), "tied": np.ones((3, 3)), "diag": np.ones((3, 2)), "spherical": np.ones(3)}
    not_positive = {
        "full": np.stack([np.diag([-1.0, 1.0]), np.eye(2)]),
        "tied": np.diag([-1.0, 1.0]),
        "diag": -np.ones((2, 2)),
        "spherical": -np.ones(2),
    }
    for covariance_type in COVARIANCE_TYPES:
        with pytest.raises(ValueError, match="must have shape"):
            gmm.GMMParams.from_covariances(w, m, bad_shapes[covariance_type], covariance_type)
        with pytest.raises(ValueError, match="positive definite"):
            gmm.GMMParams.from_covariances(w, m, not_positive[covariance_type], covariance_type)
    start = gmm.GMMParams.from_covariances(w, m, np.ones(2), "spherical")
    with pytest.raises(ValueError, match="init_params"):
        gmm.fit(KEY, np.zeros((10, 2)), 3, covariance_type="spherical", init_params=start)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_covariances_are_the_weighted_empirical_covariances(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(50, 3))
    resp = rng.uniform(size=(50, 2))
    resp /= resp.sum(axis=1, keepdims=True)
    params = gmm.m_step(X, np.log(resp), covariance_type, reg_covar=0.0)
    per_component = np.stack([np.cov(X.T, aweights=resp[:, k], bias=True) for k in range(2)])
    expected = {
        "full": per_component,
        # pooled within-component scatter divided by n_samples
        "tied": np.einsum("k,kde->de", resp.sum(0), per_component) / X.shape[0],
        "diag": np.diagonal(per_component, axis1=1, axis2=2),
        "spherical": np.diagonal(per_component, axis1=1, axis2=2).mean(1),
    }[covariance_type]
    np.testing.assert_allclose(params.covariances, expected, rtol=1e-10)
    np.testing.assert_allclose(params.means, (resp.T @ X) / resp.sum(0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(params.weights, resp.mean(0), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_density_at_the_mean_gives_the_log_determinant(covariance_type):
    rng = np.random.default_rng(1)
    d = 3
    cov = {
        "full": lambda: (lambda a: a @ a.T + np.eye(d))(rng.normal(size=(d, d)))[None],
        "tied": lambda: (lambda a: a @ a.T + np.eye(d))(rng.normal(size=(d, d))),
        "diag": lambda: rng.uniform(0.5, 2, size=(1, d)),
        "spherical": lambda: rng.uniform(0.5, 2, size=1),
    }[covariance_type]()
    mean = rng.normal(size=(1, d))
    params = gmm.GMMParams.from_covariances(np.ones(1), mean, cov, covariance_type)
    log_det = np.linalg.slogdet(dense(params.covariances, covariance_type, 1, d)[0])[1]
    np.testing.assert_allclose(gmm.log_prob(params, mean)[0], -0.5 * d * math.log(2 * math.pi) - 0.5 * log_det, rtol=1e-12)


def test_one_diagonal_covariance_in_every_type_gives_the_same_log_prob():
    rng = np.random.default_rng(2)
    k, d = 2, 3
    means, variances = rng.uniform(size=(k, d)) * 5, rng.uniform(0.2, 1.0, size=(k, d))
    X, w = rng.uniform(size=(40, d)), np.array([0.3, 0.7])
    naive = lambda var: np.log(np.sum(w * np.exp(np.stack([stats.norm.logpdf(X, means[j], np.sqrt(var[j])).sum(1) for j in range(k)], 1)), 1))
    np.testing.assert_allclose(gmm.log_prob(gmm.GMMParams.from_covariances(w, means, variances, "diag"), X), naive(variances), rtol=1e-12)
    full = np.stack([np.diag(v) for v in variances])
    np.testing.assert_allclose(gmm.log_prob(gmm.GMMParams.from_covariances(w, means, full, "full"), X), naive(variances), rtol=1e-12)
    tied = variances.mean(0)
    np.testing.assert_allclose(gmm.log_prob(gmm.GMMParams.from_covariances(w, means, np.diag(tied), "tied"), X), naive([tied, tied]), rtol=1e-12)
    sph = variances.mean(1)
    np.testing.assert_allclose(gmm.log_prob(gmm.GMMParams.from_covariances(w, means, sph, "spherical"), X), naive(np.repeat(sph[:, None], d, 1)), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_is_the_argmax_of_predict_proba_and_finds_the_clusters(covariance_type):
    stack, labels = blob_stack()
    for X, y, result in zip(stack, labels, blob_fits(covariance_type)):
        predicted = np.asarray(gmm.predict(result.params, X))
        np.testing.assert_array_equal(predicted, np.argmax(gmm.predict_proba(result.params, X), axis=1))
        assert adjusted_rand_score(y, predicted) > 0.95


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_after_fit_agrees_with_the_final_e_step_and_keeps_dtype(covariance_type):
    stack, _ = blob_stack(np.float32)
    for X, result in zip(stack, blob_fits(covariance_type, np.float32)):
        _, log_resp = gmm.e_step(result.params, X)
        np.testing.assert_array_equal(gmm.predict(result.params, X), np.argmax(log_resp, axis=1))
        for leaf in jax.tree_util.tree_leaves(result.params) + [result.lower_bound, result.log_likelihood]:
            assert leaf.dtype == jnp.float32


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_recovers_the_per_cluster_maximum_likelihood_estimates(covariance_type):
    # Well-separated clusters: the fitted mixture is the per-cluster MLE of
    # the true labels (weights = counts / n, sample means, biased covariances).
    stack, labels = blob_stack()
    for X, y, result in zip(stack, labels, blob_fits(covariance_type)):
        inverse = np.asarray(gmm.predict(result.params, X))[[0, 20, 40]]  # fitted index of each true cluster
        assert sorted(inverse) == [0, 1, 2]
        mle = gmm.m_step(X, np.log(np.eye(3)[y] + 1e-300), covariance_type, reg_covar=1e-6)
        np.testing.assert_allclose(result.params.weights[inverse], mle.weights, atol=1e-6)
        np.testing.assert_allclose(result.params.means[inverse], mle.means, atol=1e-4)
        fitted_cov = result.params.covariances if covariance_type == "tied" else result.params.covariances[inverse]
        np.testing.assert_allclose(fitted_cov, mle.covariances, atol=1e-4)


def test_non_convergence_is_reported_in_the_result():
    X, _ = three_blobs()
    result = gmm.fit(KEY, X, N_COMPONENTS, tol=0.0)
    assert not bool(result.converged) and int(result.n_iter) == 100
    assert bool(gmm.fit(KEY, X, N_COMPONENTS).converged)


def test_n_parameters_counts_match_sklearn():
    counts = {"spherical": 13, "diag": 21, "tied": 26, "full": 41}  # K=2, D=5
    rng = np.random.default_rng(3)
    for covariance_type, expected in counts.items():
        cov = {"full": np.stack([np.eye(5)] * 2), "tied": np.eye(5), "diag": np.ones((2, 5)), "spherical": np.ones(2)}[covariance_type]
        params = gmm.GMMParams.from_covariances(np.array([0.5, 0.5]), rng.normal(size=(2, 5)), cov, covariance_type)
        assert gmm.n_parameters(params) == expected


@pytest.mark.slow
def test_bic_of_one_component_in_one_dimension_is_the_same_for_every_type():
    X = np.random.default_rng(4).normal(size=(100, 1))
    log_resp = np.zeros((100, 1))  # one component: the M-step is the maximum-likelihood fit
    bics = [float(gmm.bic(gmm.m_step(X, log_resp, t), X)) for t in COVARIANCE_TYPES]
    np.testing.assert_allclose(bics, bics[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_aic_and_bic_of_gaussian_data_are_near_the_entropy(covariance_type):
    stack = np.random.default_rng(5).normal(size=(BATCH, 60, 3))
    n, d = 60, 3
    for X, result in zip(stack, fit_batch(stack, covariance_type)):
        entropy = 0.5 * (np.linalg.slogdet(np.cov(X.T, bias=True))[1] + d * (1 + np.log(2 * np.pi)))
        p = gmm.n_parameters(result.params)
        bound = d / np.sqrt(n)
        assert (float(gmm.aic(result.params, X)) - (2 * n * entropy + 2 * p)) / n < bound
        assert (float(gmm.bic(result.params, X)) - (2 * n * entropy + np.log(n) * p)) / n < bound


@pytest.mark.slow
def test_warm_start_continues_where_the_previous_fit_stopped():
    X = np.random.default_rng(6).uniform(size=(60, 3))
    start = gmm.fit(KEY, X, N_COMPONENTS, max_iter=0).params
    once = gmm.fit(KEY, X, N_COMPONENTS, init_params=start, max_iter=1, tol=0.0)
    twice = gmm.fit(KEY, X, N_COMPONENTS, init_params=once.params, max_iter=1, tol=0.0)
    direct = gmm.fit(KEY, X, N_COMPONENTS, init_params=start, max_iter=2, tol=0.0)
    for a, b in zip(jax.tree_util.tree_leaves(twice.params), jax.tree_util.tree_leaves(direct.params)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert float(gmm.score(twice.params, X)) > float(gmm.score(once.params, X))


def test_repeated_warm_starts_converge():
    # A pure function has no memory of the previous call's likelihood, so the
    # first iteration of each call has nothing to compare with: chunks of two
    # iterations (not sklearn's one) are the smallest that can detect convergence.
    X = np.random.default_rng(6).uniform(size=(60, 3))
    params = gmm.fit(KEY, X, N_COMPONENTS, max_iter=0).params
    for _ in range(500):
        result = gmm.fit(KEY, X, N_COMPONENTS, init_params=params, max_iter=2, tol=1e-6)
        params = result.params
        if bool(result.converged):
            break
    assert bool(result.converged) and int(result.n_iter) <= 2


@pytest.mark.slow
def test_score_is_the_mean_of_log_prob_and_improves_with_fitting():
    X = np.random.default_rng(6).uniform(size=(60, 3)).astype(np.float32)
    start = gmm.fit(KEY, X, N_COMPONENTS, max_iter=0).params
    fitted = gmm.fit(KEY, X, N_COMPONENTS, init_params=start, max_iter=2, tol=0.0).params
    for params in (start, fitted):
        lp = gmm.log_prob(params, X)
        assert lp.shape == (60,) and lp.dtype == jnp.float32
        np.testing.assert_allclose(gmm.score(params, X), lp.mean(), rtol=1e-6)
    assert float(gmm.score(fitted, X)) > float(gmm.score(start, X))


def test_collapsed_clusters_fail_without_reg_covar_and_fit_with_it():
    X = np.repeat(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), 30, axis=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
        gmm.fit(KEY, X, N_COMPONENTS, reg_covar=0.0)
    assert int(gmm.fit(KEY, X, N_COMPONENTS, reg_covar=1e-6).status) == 0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fitted_precisions_are_the_inverse_covariances(covariance_type):
    for result in blob_fits(covariance_type):
        p = result.params
        if covariance_type in ("full", "tied"):
            np.testing.assert_allclose(p.precisions @ p.covariances, np.broadcast_to(np.eye(3), p.covariances.shape), atol=1e-10)
        else:
            np.testing.assert_allclose(p.precisions * p.covariances, 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_samples_reproduce_the_fitted_moments_and_shapes(covariance_type):
    params = blob_fits(covariance_type)[0].params
    X, labels = gmm.sample(jax.random.key(1), params, 20000)
    X, labels = np.asarray(X), np.asarray(labels)
    assert X.shape == (20000, 3)
    cov = dense(params.covariances, covariance_type, 3, 3)
    for k in range(3):
        np.testing.assert_allclose(X[labels == k].mean(0), params.means[k], atol=0.1)
        np.testing.assert_allclose(np.cov(X[labels == k].T), cov[k], atol=0.1)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 20000, params.weights, atol=0.02)
    with pytest.raises(ValueError, match="n_samples"):
        gmm.sample(jax.random.key(1), params, 0)


@pytest.mark.slow
def test_every_init_starts_from_distinct_means_inside_the_data():
    X, _ = three_blobs()
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        means = np.asarray(gmm.fit(KEY, X, N_COMPONENTS, init=init, max_iter=0).params.means)
        for i in range(3):
            for j in range(i):
                assert not np.allclose(means[i], means[j]), init
        assert np.all(X.min(0) <= means) and np.all(means <= X.max(0)), init


def test_precisions_given_as_a_start_are_used_as_given():
    X, _ = three_blobs()
    fitted = blob_fits("diag")[0].params
    start = gmm.GMMParams.from_precisions_cholesky(fitted.weights, fitted.means, np.sqrt(fitted.precisions), "diag")
    np.testing.assert_allclose(start.covariances, fitted.covariances, rtol=1e-12)
    again = gmm.fit(KEY, blob_stack()[0][0], N_COMPONENTS, covariance_type="diag", init_params=start, max_iter=0)
    np.testing.assert_allclose(again.params.precisions_cholesky, fitted.precisions_cholesky, rtol=1e-12)


@pytest.mark.slow
def test_one_component_on_three_samples_fits_and_samples():
    X = np.random.default_rng(7).normal(size=(3, 2))
    result = gmm.fit(KEY, X, 1)
    assert int(result.status) == 0
    samples, _ = gmm.sample(jax.random.key(0), result.params, 1)
    assert samples.shape == (1, 2) and np.all(np.isfinite(samples))
