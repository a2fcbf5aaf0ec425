"""``gmm_jax.sklearn.GaussianMixture``: scikit-learn's checks, scikit-learn's own tests, the ecosystem.

Three parts:

1. ``parametrize_with_checks``: every estimator check of scikit-learn.
2. scikit-learn's own ``sklearn/mixture/tests/test_gaussian_mixture.py``, read
   from the installed wheel and run with its ``GaussianMixture`` import pointed
   at ours (``SKLEARN_SUITE_EXCLUDED`` lists what cannot apply, with reasons).
3. Our own tests: the ecosystem (``Pipeline``, ``GridSearchCV``, ``clone``,
   ``pickle``), the engine behind the estimator, float32, verbose output.

Parts 1 and 2 compile one engine program per shape and option the checks
try (about 4 minutes on 2 cores): they are ``slow`` (the full run), part 3
is mostly in the quick path.
"""

import collections.abc
import io
import os
import pickle
import subprocess
import sys
import types
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gmm_jax as gmm  # noqa: E402
from gmm_jax.sklearn import GaussianMixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]



def blobs(n=200, n_features=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = np.array([[-4.0] * n_features, [4.0] * n_features])
    labels = rng.integers(0, 2, n)
    return (rng.normal(size=(n, n_features)) + centers[labels]).astype(dtype), labels


# ---------------------------------------------------------------------------
# 1. scikit-learn's estimator checks. Every check applies and passes; a check
# that could not apply would be listed here with its reason.

EXPECTED_FAILED_CHECKS = {}


@pytest.mark.slow
@parametrize_with_checks([GaussianMixture()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------
# 2. scikit-learn's own GaussianMixture tests, against our estimator.

SKLEARN_TESTS = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"

SKLEARN_SUITE_EXCLUDED = {
    # Tests of scikit-learn's private helpers (not of the estimator); the same
    # behaviours are tested against gmm_jax in tests/test_sklearn_behaviours.py.
    "test_suffstat_sk_full": "tests sklearn's private _estimate_gaussian_covariances_full",
    "test_suffstat_sk_tied": "tests sklearn's private _estimate_gaussian_covariances_tied",
    "test_suffstat_sk_diag": "tests sklearn's private _estimate_gaussian_covariances_diag",
    "test_gaussian_suffstat_sk_spherical": "tests sklearn's private _estimate_gaussian_covariances_spherical",
    "test_compute_log_det_cholesky": "tests sklearn's private _compute_log_det_cholesky",
    "test_gaussian_mixture_log_probabilities": "tests sklearn's private _estimate_log_gaussian_prob",
    "test_gaussian_mixture_precisions_init": (
        "calls sklearn's private estimator hooks _set_parameters and _initialize(X, resp); "
        "precisions_init itself: test_gaussian_mixture_precisions_init_diag and "
        "test_precisions_init_is_the_start_of_the_fit"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts calls of sklearn's private _estimate_gaussian_parameters through a mock; "
        "our estimator never calls it"
    ),
    # scikit-learn's array API dispatch of its own implementation.
    "test_gaussian_mixture_array_api_compliance": "sklearn's array API dispatch (array_api_dispatch=True)",
    "test_gaussian_mixture_raises_where_array_api_not_implemented": "sklearn's array API dispatch",
}


def _sklearn_suite_against_ours():
    """scikit-learn's test module, its ``GaussianMixture`` import pointed at ours."""
    source = SKLEARN_TESTS.read_text()
    import_line = "from sklearn.mixture import GaussianMixture\n"
    assert source.count(import_line) == 1, "scikit-learn's test module changed its import"
    source = source.replace(import_line, "from gmm_jax.sklearn import GaussianMixture\n")
    module = types.ModuleType("sklearn_test_gaussian_mixture_on_gmm_jax")
    module.__file__ = str(SKLEARN_TESTS)
    # Compiled under the wheel's path: tracebacks point at scikit-learn's lines.
    exec(compile(source, str(SKLEARN_TESTS), "exec"), module.__dict__)
    assert module.GaussianMixture is GaussianMixture
    return module


def _listed_parameters(test):
    """``test`` with the values of its ``parametrize`` marks as lists.

    scikit-learn's module passes generators, which pytest 9.1 deprecates (an
    error under this suite's warnings-as-errors).
    """
    marks = []
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize" and not isinstance(mark.args[1], collections.abc.Collection):
            mark = pytest.mark.parametrize(mark.args[0], list(mark.args[1]), *mark.args[2:], **mark.kwargs).mark
        marks.append(mark)
    if marks:
        test.pytestmark = marks
    return test


_suite = _sklearn_suite_against_ours()
for _name, _test in sorted(vars(_suite).items()):
    if _name.startswith("test_") and callable(_test):
        _test = _listed_parameters(_test)
        if _name in SKLEARN_SUITE_EXCLUDED:
            _test = pytest.mark.skip(reason=f"not applicable: {SKLEARN_SUITE_EXCLUDED[_name]}")(_test)
        # scikit-learn's own test configuration lets ConvergenceWarning through
        # (its strictest mode makes only deprecation warnings errors), and its
        # estimator warns in these tests too; tests that expect the warning
        # still see it (pytest.warns records every warning).
        _test = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")(_test)
        _test = pytest.mark.slow(_test)
        globals()[f"test_sklearn_suite__{_name[len('test_'):]}"] = _test
del _name, _test


# The fixtures of scikit-learn's conftest that the module uses, as scikit-learn
# defines them: float64 only unless SKLEARN_RUN_FLOAT32_TESTS=1 (then float32
# too: all pass, at twice the time), and the seed 42 unless
# SKLEARN_TESTS_GLOBAL_RANDOM_SEED names others ("0-3" or "1,5").
def _global_random_seeds():
    spec = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42")
    if "-" in spec:
        start, stop = spec.split("-")
        return list(range(int(start), int(stop) + 1))
    return [int(seed) for seed in spec.split(",")]


_GLOBAL_DTYPES = [np.float64] + ([np.float32] if os.environ.get("SKLEARN_RUN_FLOAT32_TESTS") == "1" else [])


@pytest.fixture(params=_GLOBAL_DTYPES, ids=[np.dtype(d).name for d in _GLOBAL_DTYPES])
def global_dtype(request):
    return request.param


@pytest.fixture(params=_global_random_seeds())
def global_random_seed(request):
    return request.param


# ---------------------------------------------------------------------------
# 3. Our own tests.


def test_importing_gmm_jax_does_not_import_sklearn_and_the_estimator_is_exported_lazily():
    code = (
        "import sys, gmm_jax; assert 'sklearn' not in sys.modules; "
        "from gmm_jax.sklearn import GaussianMixture; assert gmm_jax.GaussianMixture is GaussianMixture"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_fitted_attributes_are_the_engines_fit_with_the_same_key():
    X, _ = blobs()
    model = GaussianMixture(2, covariance_type="diag", n_init=3, random_state=7).fit(X)
    result = gmm.fit(jax.random.key(7), X, 2, covariance_type="diag", n_init=3)
    np.testing.assert_allclose(model.means_, result.params.means, rtol=1e-12)
    np.testing.assert_allclose(model.covariances_, result.params.covariances, rtol=1e-12)
    np.testing.assert_allclose(model.precisions_, result.params.precisions, rtol=1e-12)
    np.testing.assert_allclose(model.precisions_cholesky_, result.params.precisions_cholesky, rtol=1e-12)
    assert model.converged_ == bool(result.converged) and model.n_iter_ == int(result.n_iter)
    assert model.lower_bound_ == float(result.lower_bound)
    assert model.lower_bounds_ == np.asarray(result.log_likelihood[: model.n_iter_]).tolist()
    assert isinstance(model.params_, gmm.GMMParams) and model.n_features_in_ == 2
    np.testing.assert_allclose(model.score_samples(X), gmm.log_prob(result.params, X), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), gmm.predict(result.params, X))
    assert model.bic(X) == pytest.approx(float(gmm.bic(result.params, X)))
    assert model.aic(X) == pytest.approx(float(gmm.aic(result.params, X)))


def test_random_state_seeds_the_key_and_a_random_state_object_draws_a_seed():
    X, _ = blobs()
    a = GaussianMixture(2, init_params="random", max_iter=0, random_state=3).fit(X)
    b = GaussianMixture(2, init_params="random", max_iter=0, random_state=3).fit(X)
    c = GaussianMixture(2, init_params="random", max_iter=0, random_state=np.random.RandomState(3)).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert not np.allclose(a.means_, c.means_)
    np.testing.assert_array_equal(a.sample(5)[0], a.sample(5)[0])  # as sklearn: int seed, same draws


@pytest.mark.parametrize("field", ["weights", "means", "precisions"])
def test_a_partial_start_is_the_engines_start_with_the_given_field_replaced(field):
    X, _ = blobs()
    start = gmm.fit(jax.random.key(0), X, 2, covariance_type="diag", max_iter=0, tol=0.0).params
    given = {
        "weights": np.array([0.3, 0.7]),
        "means": np.array([[-3.0, -3.0], [3.0, 3.0]]),
        "precisions": np.array([[1.0, 2.0], [0.5, 1.5]]),
    }[field]
    model = GaussianMixture(2, covariance_type="diag", max_iter=0, random_state=0, **{f"{field}_init": given})
    model.fit(X)
    expected = dict(weights=start.weights, means=start.means, precisions=start.precisions)
    expected[field] = given
    np.testing.assert_allclose(model.weights_, expected["weights"], rtol=1e-12)
    np.testing.assert_allclose(model.means_, expected["means"], rtol=1e-12)
    np.testing.assert_allclose(model.precisions_, expected["precisions"], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_precisions_init_is_the_start_of_the_fit(covariance_type):
    X, _ = blobs(n_features=3)
    means = np.array([[-4.0] * 3, [4.0] * 3])
    covariances = {
        "full": np.stack([np.eye(3) + 0.3, 2 * np.eye(3) - 0.2]),
        "tied": np.eye(3) + 0.3,
        "diag": np.array([[1.0, 2.0, 3.0], [0.5, 1.0, 1.5]]),
        "spherical": np.array([1.0, 2.0]),
    }[covariance_type]
    truth = gmm.GMMParams.from_covariances([0.4, 0.6], means, covariances, covariance_type)
    model = GaussianMixture(2, covariance_type=covariance_type, max_iter=0, weights_init=[0.4, 0.6],
                            means_init=means, precisions_init=np.asarray(truth.precisions)).fit(X)  # fmt: skip
    np.testing.assert_allclose(model.covariances_, covariances, rtol=1e-10)
    np.testing.assert_allclose(model.precisions_, truth.precisions, rtol=1e-10)
    # The factor is scikit-learn's: precision = U @ U.T with U upper triangular.
    np.testing.assert_allclose(model.precisions_cholesky_, truth.precisions_cholesky, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_warm_start_resumes_the_previous_fit_and_converges_at_once_from_a_converged_one():
    X, _ = blobs()
    two = GaussianMixture(2, max_iter=2, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning):
        two.fit(X)
    one = GaussianMixture(2, max_iter=1, tol=0.0, random_state=0, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        one.fit(X)
        one.fit(X)
    np.testing.assert_allclose(one.means_, two.means_, rtol=1e-10)
    model = GaussianMixture(2, random_state=0, tol=1e-8).fit(X)
    assert model.converged_
    model.set_params(warm_start=True, max_iter=1).fit(X)  # no warning: converges at once
    assert model.converged_ and model.n_iter_ == 1


@pytest.mark.slow
def test_convergence_warning_is_scikit_learns_and_comes_once():
    X, _ = blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GaussianMixture(2, max_iter=1, random_state=0, n_init=2).fit(X)
    assert [type(w.message) for w in caught] == [ConvergenceWarning]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(2, max_iter=0, random_state=0).fit(X)  # a 0-iteration start never warns


def test_sample_weight_counts_rows():
    X, _ = blobs(n=60)
    counts = np.arange(60) % 3
    weighted = GaussianMixture(2, covariance_type="spherical", random_state=0, tol=1e-10, max_iter=500)
    repeated = clone(weighted)
    weighted.fit(X, sample_weight=counts.astype(float))
    repeated.fit(np.repeat(X, counts, axis=0))
    order = np.argsort(weighted.means_[:, 0]), np.argsort(repeated.means_[:, 0])
    np.testing.assert_allclose(weighted.means_[order[0]], repeated.means_[order[1]], rtol=1e-6)
    np.testing.assert_allclose(weighted.covariances_[order[0]], repeated.covariances_[order[1]], rtol=1e-6)


@pytest.mark.slow
def test_float32_data_is_fitted_in_float32_and_agrees_with_float64():
    X, _ = blobs()
    m32 = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    m64 = GaussianMixture(2, random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(m32, name).dtype == np.float32 and getattr(m64, name).dtype == np.float64
    assert m32.score_samples(X.astype(np.float32)).dtype == np.float32
    order32, order64 = np.argsort(m32.means_[:, 0]), np.argsort(m64.means_[:, 0])  # labels may swap
    np.testing.assert_allclose(m32.means_[order32], m64.means_[order64], rtol=1e-4, atol=1e-4)
    assert m32.score(X) == pytest.approx(m64.score(X), rel=1e-5)


@pytest.mark.slow
def test_clone_and_pickle_round_trips_keep_the_model():
    X, _ = blobs()
    model = GaussianMixture(2, covariance_type="tied", chunk_size=64, random_state=0).fit(X)
    cloned = clone(model)
    assert cloned.get_params() == model.get_params() and not hasattr(cloned, "means_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(cloned.fit(X).means_, model.means_)


def test_in_a_pipeline_after_a_scaler():
    X, labels = blobs()
    X = X * [1.0, 1000.0] + [0.0, 1e4]
    pipe = make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0)).fit(X)
    accuracy, _ = gmm.metrics.clustering_accuracy(labels, pipe.predict(X))
    assert accuracy == 1.0
    assert pipe.score(X) == pytest.approx(pipe[-1].score(StandardScaler().fit_transform(X)))


@pytest.mark.slow
def test_grid_search_over_components_and_covariance_types_by_score():
    X, _ = blobs(n=120)
    search = GridSearchCV(
        GaussianMixture(random_state=0),
        {"n_components": [1, 2], "covariance_type": ["spherical", "full"]},
        cv=3,
    ).fit(X)
    assert search.best_params_["n_components"] == 2
    assert search.best_estimator_.n_components == search.best_params_["n_components"]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_verbose_prints_scikit_learns_lines():
    X, _ = blobs()
    out = io.StringIO()
    with redirect_stdout(out):
        GaussianMixture(2, random_state=0, verbose=2, verbose_interval=1, tol=1e-8).fit(X)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Initialization 0"
    assert lines[1].startswith("  Iteration 1\t time lapse ") and lines[1].endswith("ll change inf")
    assert lines[2].startswith("  Iteration 2\t time lapse ") and "\t ll change " in lines[2]
    assert lines[-1].startswith("Initialization converged. time lapse ") and "\t lower bound -" in lines[-1]
    out = io.StringIO()
    with redirect_stdout(out):
        GaussianMixture(2, random_state=0, verbose=1, verbose_interval=2, tol=1e-8).fit(X)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Initialization 0" and lines[1] == "  Iteration 2"
    assert lines[-1] == "Initialization converged."


def test_params_feed_the_functional_api_under_vmap():
    X, _ = blobs()
    model = GaussianMixture(2, random_state=0).fit(X)
    batched = jax.vmap(gmm.log_prob, in_axes=(None, 0))(model.params_, jnp.stack([X, X[::-1]]))
    np.testing.assert_allclose(batched[0], model.score_samples(X), rtol=1e-12)
