"""The fused pass equals the reference math, for every covariance type, width and chunking.

The reference (``_covariance.log_gaussian_prob`` and the models'
``second_moment``) is the documented definition of the densities and of the
sufficient statistics; ``_pass`` is the fast implementation every entry point
runs. Widths cover the element-wise small-D path (1, 2, 4), the product path
with and without pairwise norms (5, 16, 17, 33) and both tuning tables; the
chunked runs use a ragged chunk of 7 rows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import gmm_jax as gmm
from gmm_jax import _covariance, _em, _pass, _tuning

from conftest import random_params

WIDTHS = (1, 2, 4, 5, 16, 17, 33)
# (rows per chunk, tuning): unchunked and chunked on the CPU table, and for
# the full pass (the only one the tables change beyond rows per chunk) also
# chunked on the accelerator table: reduction norms, one chunk per loop step.
# The diag and tied passes expand into matrix products only for passes of at least
# diag_expand_min_size rows x components x features; "expanded" lowers that to 0.
LAYOUTS = {"unchunked": (None, _tuning.CPU), "chunked": (7, _tuning.CPU), "chunked-accelerator": (7, _tuning.ACCELERATOR),
           "chunked-expanded": (7, _tuning.CPU._replace(diag_expand_min_size=0))}  # fmt: skip
QUICK = {(2, "unchunked"), (5, "chunked"), (17, "chunked-accelerator"), (17, "chunked-expanded")}


def _cases():
    for covariance_type in gmm.COVARIANCE_TYPES:
        for n_features in WIDTHS:
            for layout in LAYOUTS:
                if layout == "chunked-accelerator" and covariance_type != "full":
                    continue
                if layout == "chunked-expanded" and covariance_type == "full":
                    continue
                marks = () if (n_features, layout) in QUICK else (pytest.mark.slow,)
                yield pytest.param(covariance_type, n_features, layout, marks=marks,
                                   id=f"{covariance_type}-{n_features}-{layout}")  # fmt: skip


def _reference(params, X, w):
    """Scores and statistics from the plain definitions, around the current means."""
    log_gauss = _covariance.log_gaussian_prob(X, params.means, params.precisions_cholesky, params.covariance_type)
    wlp = log_gauss + jnp.log(params.weights)[None, :]
    log_prob = logsumexp(wlp, axis=1)
    resp = jnp.exp(wlp - log_prob[:, None]) * w[:, None]
    shift = params.means
    model = _covariance.covariance_model(params.covariance_type)
    stats = _pass.SufficientStatistics(
        jnp.sum(w * log_prob), jnp.sum(w), resp.sum(0), resp.T @ X - resp.sum(0)[:, None] * shift,
        model.second_moment(X, resp, shift),
    )  # fmt: skip
    return log_gauss, log_prob, wlp - log_prob[:, None], stats


def _fused(params, X, w, chunk_size, tuning):
    # Run op by op (jax.disable_jit): 84 layouts would otherwise compile 84
    # programs; the operations, and so the numbers, are the same.
    p = _pass.pass_for(params.covariance_type, tuning)
    log_gauss, _ = p.log_densities(p.constants(params.means, params.precisions_cholesky), X)
    log_resp, log_prob = _pass.map_scores(params, X, "log_resp_and_log_prob", chunk_size, None, tuning)
    proba = _pass.map_scores(params, X, "proba", chunk_size, None, tuning)
    labels = _pass.map_scores(params, X, "labels", chunk_size, None, tuning)
    stats = _pass.accumulate_statistics(params, X, w, chunk_size, None, tuning)
    return log_gauss.T, log_prob, log_resp, proba, labels, stats


def _data(covariance_type, n_features, dtype=np.float64, n=40, seed=0):
    rng = np.random.default_rng(seed + n_features)
    params = random_params(rng, covariance_type, n_components=3, n_features=n_features, spread=2.0)
    X = rng.normal(size=(n, n_features)) * 1.5
    w = rng.uniform(0.2, 2.0, size=n)
    w[3] = 0.0  # a padding row
    return params.astype(dtype), jnp.asarray(X, dtype), jnp.asarray(w, dtype)


@pytest.mark.parametrize("covariance_type, n_features, layout", list(_cases()))
def test_fused_pass_equals_the_reference_in_float64(covariance_type, n_features, layout):
    chunk_size, tuning = LAYOUTS[layout]
    params, X, w = _data(covariance_type, n_features)
    ref_gauss, ref_log_prob, ref_log_resp, ref = _reference(params, X, w)
    with jax.disable_jit():
        log_gauss, log_prob, log_resp, proba, labels, stats = _fused(params, X, w, chunk_size, tuning)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_gauss, ref_gauss, **tol)
    np.testing.assert_allclose(log_prob, ref_log_prob, **tol)
    np.testing.assert_allclose(log_resp, ref_log_resp, **tol)
    np.testing.assert_allclose(proba, np.exp(ref_log_resp), **tol)
    np.testing.assert_array_equal(labels, np.argmax(ref_log_resp, axis=1))
    for name in ("log_likelihood", "weight_sum", "nk", "s1", "s2"):
        got, want = getattr(stats, name), getattr(ref, name)
        if name == "s2" and covariance_type == "tied":  # a tied M-step reads (and the pass keeps) their sum
            got, want = jnp.sum(got, axis=0), jnp.sum(want, axis=0)
        np.testing.assert_allclose(got, want, **tol, err_msg=name)
    # The M-step from either set of sums (covariances: with 40 rows in up to 33
    # dimensions the precision factors are too ill-conditioned to compare at 1e-10).
    m_fused = _em.params_from_statistics(stats, params.means, covariance_type, 1e-6)
    m_ref = _em.params_from_statistics(ref, params.means, covariance_type, 1e-6)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(m_fused, name), getattr(m_ref, name), **tol, err_msg=name)


@pytest.mark.parametrize("n_features", [1, 2, 5, 16, 17])
@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_statistics_for_given_responsibilities_equal_the_reference(covariance_type, n_features):
    rng = np.random.default_rng(n_features)
    X = jnp.asarray(rng.normal(size=(30, n_features)))
    resp = jnp.asarray(rng.dirichlet(np.ones(3), size=30))
    shift = jnp.asarray(rng.normal(size=(3, n_features)))
    w = jnp.ones(30)
    got = _pass.statistics_from_responsibilities(lambda Xc, wc, _: resp.T, X, w, shift, covariance_type, _tuning.CPU)
    model = _covariance.covariance_model(covariance_type)
    np.testing.assert_allclose(got.nk, resp.sum(0), rtol=1e-12)
    np.testing.assert_allclose(got.s1, resp.T @ X - resp.sum(0)[:, None] * shift, rtol=1e-10, atol=1e-10)
    got_s2, want_s2 = got.s2, model.second_moment(X, resp, shift)
    if covariance_type == "tied":  # a tied M-step reads (and the pass keeps) their sum
        got_s2, want_s2 = jnp.sum(got_s2, axis=0), jnp.sum(want_s2, axis=0)
    np.testing.assert_allclose(got_s2, want_s2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_features", [2, 16, 33])
@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_fused_pass_keeps_float32_digits_far_from_the_origin(covariance_type, n_features):
    # Narrow components 1e4 away from the origin; rows centred at the data
    # mean as the driver does. float32 must agree with float64 to ~1e-4.
    params64, X64, w64 = _data(covariance_type, n_features, n=200, seed=5)
    offset = 1e4
    X64 = X64 * 0.01 + offset
    params64 = params64.replace(means=params64.means * 0.01 + offset)
    params64 = params64.replace(precisions_cholesky=params64.precisions_cholesky * 100.0)  # 100x narrower
    center32 = jnp.mean(X64, axis=0).astype(jnp.float32)  # a float32 origin, exact in both precisions
    center = center32.astype(jnp.float64)
    centred64 = params64.replace(means=params64.means - center[None, :])
    params32, X32, w32 = centred64.astype(jnp.float32), jnp.asarray(X64, jnp.float32), w64.astype(jnp.float32)
    log_prob = _pass.map_scores(params32, X32, "log_prob", None, center32, _tuning.CPU)
    stats = _pass.accumulate_statistics(params32, X32, w32, 16, center32, _tuning.CPU)
    # Rounding X to float32 at 1e4 moves each row by up to 5e-4, 0.05 standard deviations:
    # compare with float64 on the same rounded rows.
    X_rounded = jnp.asarray(X32, jnp.float64)
    _, ref_log_prob, _, ref = _reference(centred64, X_rounded - center[None, :], w64)
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(stats.nk, ref.nk, rtol=1e-4, atol=1e-4)
    for name in ("s1", "s2"):
        got, want = np.asarray(getattr(stats, name)), np.asarray(getattr(ref, name))
        if name == "s2" and covariance_type == "tied":  # pooled
            got, want = got.sum(axis=0), want.sum(axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(), err_msg=name)


# --- the diag pass's forms: expanded, expanded with explicit slots, explicit -----------------------------


def _diag_params(covariance_type, n_components, n_features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = random_params(rng, covariance_type, n_components=n_components, n_features=n_features, spread=2.0)
    X = rng.normal(size=(60, n_features)) * 1.5
    return params.astype(dtype), jnp.asarray(X, dtype)


def _form_cases():
    for covariance_type in ("diag", "spherical"):
        for n_features in (5, 17):
            for form, name in enumerate(("expanded", "slotted", "explicit")):
                quick = (covariance_type, n_features) == ("diag", 17) or (covariance_type, form) == ("spherical", 1)
                yield pytest.param(covariance_type, n_features, form, marks=() if quick else (pytest.mark.slow,),
                                   id=f"{covariance_type}-{n_features}-{name}")  # fmt: skip


@pytest.mark.parametrize("covariance_type, n_features, form", list(_form_cases()))
def test_each_diag_form_equals_the_reference_in_float64(covariance_type, n_features, form):
    # Every branch of the pass's switch, forced (slots all explicit), against the definitions.
    params, X = _diag_params(covariance_type, 20, n_features, np.float64)  # 20 components: 2 slots
    w = jnp.ones(X.shape[0])
    ref_gauss, _, ref_log_resp, _ = _reference(params, X, w)
    resp = jnp.exp(ref_log_resp).T  # (K, B)
    p = _pass.pass_for(covariance_type, _tuning.CPU)
    consts = p.constants(params.means, params.precisions_cholesky)
    consts = consts._replace(form=jnp.asarray(form, jnp.int32), slot_explicit=jnp.ones_like(consts.slot_explicit))
    assert consts.slots.shape == (2,)
    log_gauss, feats = p.log_densities(consts, X)
    s1, s2 = p.moments(consts, p.sums(consts, feats, resp), resp.sum(1), params.means)
    model = _covariance.covariance_model(covariance_type)
    np.testing.assert_allclose(log_gauss.T, ref_gauss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s1, resp @ X - resp.sum(1)[:, None] * params.means, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s2, model.second_moment(X, resp.T, params.means), rtol=1e-10, atol=1e-10)


def _narrow_far_components(covariance_type, n_components, n_far, n_features=17, n=600, seed=3):
    """float64 params and rows: ``n_far`` components 1e4 of their own standard deviations from the data mean.

    The other components are broad and near the mean; a fifth of the rows sit
    around the narrow ones, so their densities and sums matter.
    """
    rng = np.random.default_rng(seed)
    params, _ = _diag_params(covariance_type, n_components, n_features, np.float64, seed)
    sigma = 1e-3
    direction = rng.normal(size=(n_far, n_features))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    far_means = 1e4 * sigma * direction  # |mu_k| / sigma_k = 1e4
    means = np.asarray(params.means).copy()
    means[:n_far] = far_means
    covs = np.asarray(params.covariances).copy()
    covs[:n_far] = sigma**2
    params = gmm.GMMParams.from_covariances(params.weights, means, covs, covariance_type)
    labels = rng.integers(0, n_components, size=n)
    labels[: n // 5] = rng.integers(0, n_far, size=n // 5)
    std = np.sqrt(np.broadcast_to(np.asarray(covs).reshape(n_components, -1), (n_components, n_features)))
    X = means[labels] + rng.normal(size=(n, n_features)) * std[labels]
    X32 = np.asarray(X, np.float32).astype(np.float64)  # rows float32 holds exactly
    return params, jnp.asarray(X32)


@pytest.mark.parametrize("covariance_type, n_components, n_far, form", [
    pytest.param("diag", 16, 1, 1, id="diag-one-slot"),
    pytest.param("diag", 40, 3, 1, id="diag-three-slots", marks=pytest.mark.slow),
    pytest.param("diag", 16, 2, 2, id="diag-beyond-the-slots"),
    pytest.param("spherical", 16, 1, 1, id="spherical-one-slot", marks=pytest.mark.slow),
    pytest.param("spherical", 16, 2, 2, id="spherical-beyond-the-slots", marks=pytest.mark.slow),
])  # fmt: skip
def test_diag_pass_keeps_float32_digits_for_narrow_components_far_from_the_data_mean(
    covariance_type, n_components, n_far, form
):
    # Narrow components 1e4 standard deviations from the data mean: the expansion
    # would lose every digit of their distances; their explicit slots (or, with
    # more of them than slots, the explicit pass) keep float32's.
    params64, X64 = _narrow_far_components(covariance_type, n_components, n_far)
    params32, X32 = params64.astype(jnp.float32), X64.astype(jnp.float32)
    w32 = jnp.ones(X32.shape[0], jnp.float32)
    p = _pass.pass_for(covariance_type, _tuning.CPU, X32.shape[0])  # as the scoring and EM passes below
    consts = p.constants(params32.means, params32.precisions_cholesky)
    assert int(consts.form) == form
    log_prob = _pass.map_scores(params32, X32, "log_prob", 64, None, _tuning.CPU)
    stats = _pass.accumulate_statistics(params32, X32, w32, 64, None, _tuning.CPU)
    _, ref_log_prob, _, ref = _reference(params64, X64, jnp.ones(X64.shape[0]))
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(stats.nk, ref.nk, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stats.s1, ref.s1, atol=1e-4 * np.abs(ref.s1).max())
    np.testing.assert_allclose(stats.s2, ref.s2, rtol=1e-3, atol=1e-6 * np.abs(ref.s2).max())
    # The check is not idle: the expansion alone is off by far more than the tolerance.
    expanded, _ = p.log_densities(consts._replace(form=jnp.zeros((), jnp.int32)), X32)
    exact, _ = p.log_densities(consts._replace(form=jnp.full((), 2, jnp.int32)), X32)
    assert np.max(np.abs(np.asarray(expanded) - np.asarray(exact))[:n_far]) > 1.0


def test_diag_pass_takes_the_expansion_when_every_component_is_within_budget():
    params, X = _diag_params("diag", 64, 64, np.float32)
    consts = _pass.pass_for("diag", _tuning.CPU).constants(params.means, params.precisions_cholesky)
    assert int(consts.form) == 0 and consts.slots.shape == (4,)
    # A pass smaller than tuning.diag_expand_min_size (rows x components x features) stays explicit.
    n_rows = _tuning.CPU.diag_expand_min_size // (64 * 64)
    for rows, form in ((n_rows, 0), (n_rows - 1, 2)):
        consts = _pass.pass_for("diag", _tuning.CPU, rows).constants(params.means, params.precisions_cholesky)
        assert int(consts.form) == form, rows


# --- the tied pass's forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [0, 1, 2], ids=["expanded", "slotted", "explicit"])
def test_each_tied_form_equals_the_reference_in_float64(form):
    # Every branch of the tied pass's switch, forced (slots all explicit), against the definitions.
    params, X = _diag_params("tied", 20, 17, np.float64)  # 20 components: 2 slots
    ref_gauss, _, ref_log_resp, _ = _reference(params, X, jnp.ones(X.shape[0]))
    resp = jnp.exp(ref_log_resp).T  # (K, B)
    p = _pass.pass_for("tied", _tuning.CPU)
    consts = p.constants(params.means, params.precisions_cholesky)
    consts = consts._replace(form=jnp.asarray(form, jnp.int32), slot_explicit=jnp.ones_like(consts.slot_explicit))
    assert consts.slots.shape == (2,)
    log_gauss, feats = p.log_densities(consts, X)
    s1, s2 = p.moments(consts, p.sums(consts, feats, resp), resp.sum(1), params.means)
    np.testing.assert_allclose(log_gauss.T, ref_gauss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s1, resp @ X - resp.sum(1)[:, None] * params.means, rtol=1e-10, atol=1e-10)
    pooled = jnp.sum(_covariance.Tied.second_moment(X, resp.T, params.means), axis=0)
    np.testing.assert_allclose(jnp.sum(s2, axis=0), pooled, rtol=1e-10, atol=1e-10)


def _tied_far_components(n_components, n_far, n_features=17, n=600, seed=3):
    """float64 tied params and rows: a shared narrow covariance, ``n_far`` means 1e4 of its deviations out."""
    rng = np.random.default_rng(seed)
    sigma = 1e-3
    direction = rng.normal(size=(n_components, n_features))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = np.where(np.arange(n_components) < n_far, 1e4, 20.0) * sigma  # the others within the budget
    means = radius[:, None] * direction
    params = gmm.GMMParams.from_covariances(np.full(n_components, 1.0 / n_components), means,
                                            sigma**2 * np.eye(n_features), "tied")  # fmt: skip
    labels = rng.integers(0, n_components, size=n)
    X = means[labels] + rng.normal(size=(n, n_features)) * sigma
    return params, jnp.asarray(np.asarray(X, np.float32).astype(np.float64))


@pytest.mark.parametrize("n_components, n_far, form", [(16, 0, 0), (16, 1, 1), (16, 2, 2)],
                         ids=["within-budget", "one-slot", "beyond-the-slots"])  # fmt: skip
def test_tied_pass_keeps_float32_digits_for_components_far_from_the_data_mean(n_components, n_far, form):
    # Means 1e4 shared standard deviations from the data mean: the expansion would
    # lose every digit of their distances; explicit slots (or, with more of them
    # than slots, the explicit pass) keep float32's.
    params64, X64 = _tied_far_components(n_components, n_far)
    params32, X32 = params64.astype(jnp.float32), X64.astype(jnp.float32)
    tuning = _tuning.CPU._replace(diag_expand_min_size=0)
    p = _pass.pass_for("tied", tuning, X32.shape[0])
    consts = p.constants(params32.means, params32.precisions_cholesky)
    assert int(consts.form) == form
    log_prob = _pass.map_scores(params32, X32, "log_prob", 64, None, tuning)
    stats = _pass.accumulate_statistics(params32, X32, jnp.ones(X32.shape[0], jnp.float32), 64, None, tuning)
    _, ref_log_prob, _, ref = _reference(params64, X64, jnp.ones(X64.shape[0]))
    np.testing.assert_allclose(log_prob, ref_log_prob, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(stats.nk, ref.nk, rtol=1e-4, atol=1e-3)
    # The mean moves (s1 / nk) to within a few float32 units of the means themselves
    # (a mean 10 from the origin holds no more than ~1e-6 in float32).
    ulp = np.finfo(np.float32).eps * np.abs(params64.means).max()
    np.testing.assert_allclose(stats.s1 / ref.nk[:, None], ref.s1 / ref.nk[:, None], atol=4 * ulp)
    pooled, want = np.asarray(stats.s2).sum(0), np.asarray(ref.s2).sum(0)
    np.testing.assert_allclose(pooled, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    if n_far:  # the check is not idle: the expansion alone is off by far more than the tolerance
        expanded, _ = p.log_densities(consts._replace(form=jnp.zeros((), jnp.int32)), X32)
        exact, _ = p.log_densities(consts._replace(form=jnp.full((), 2, jnp.int32)), X32)
        assert np.max(np.abs(np.asarray(expanded) - np.asarray(exact))[:n_far]) > 1.0


def test_the_tied_expansion_differentiates_as_the_full_pass():
    # The same M-step and log-likelihood from the whitened form and the full
    # pass's, and so the same derivatives in the means and the factor.
    params, X = _diag_params("tied", 5, 17, np.float64)
    w = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]))

    def objective(means, factor, tuning):
        p = params.replace(means=means, precisions_cholesky=factor)
        stats = _pass.accumulate_statistics(p, X, w, 16, None, tuning)
        new = _em.params_from_statistics(stats, means, "tied", 1e-6)
        return stats.log_likelihood + jnp.sum(new.covariances ** 2) + jnp.sum(new.means ** 2)

    expanded, full = (_tuning.CPU._replace(diag_expand_min_size=size) for size in (0, 2**62))
    consts = _pass.pass_for("tied", expanded, X.shape[0]).constants(params.means, params.precisions_cholesky)
    assert isinstance(consts, _pass.TiedConstants) and int(consts.form) == 0
    args = (params.means, params.precisions_cholesky)
    np.testing.assert_allclose(objective(*args, expanded), objective(*args, full), rtol=1e-10)
    (d_means, d_factor), (want_means, want_factor) = (jax.grad(objective, (0, 1))(*args, t) for t in (expanded, full))
    np.testing.assert_allclose(d_means, want_means, rtol=1e-8, atol=1e-10)
    # The factor is upper triangular: the two forms read its (zero) lower
    # triangle differently, and only the upper one is a parameter.
    np.testing.assert_allclose(np.triu(d_factor), np.triu(want_factor), rtol=1e-8, atol=1e-10)
