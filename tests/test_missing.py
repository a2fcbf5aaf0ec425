"""Missing data (NaN entries, nan_policy="marginalize"): exact EM against a per-row numpy/scipy reference.

The reference below is written row by row from the textbook formulas
(Ghahramani & Jordan 1994; Little & Rubin): the marginal density of the
observed entries, the conditional mean and covariance of the missing block
given the observed block, and the EM update built from them. It shares no
code with gmm_jax beyond reading a mixture's parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import gmm_jax as gmm
from test_online import _epochs  # shuffled mini-batches, epoch by epoch
from gmm_jax import _em, _missing, _rows, _tuning
from conftest import COVARIANCE_TYPES, full_covariances, random_params, sample_numpy


def mcar(rng, X, fraction, all_missing_rows=(), mostly_missing_feature=None):
    """``X`` with entries removed completely at random, some rows emptied, one feature mostly gone."""
    X = np.array(X, dtype=float)
    mask = rng.random(X.shape) < fraction
    for row in all_missing_rows:
        mask[row] = True
    if mostly_missing_feature is not None:
        mask[:, mostly_missing_feature] |= rng.random(X.shape[0]) < 0.9
    X[mask] = np.nan
    return X


# --- the reference ----------------------------------------------------------


def reference_row(x, weights, means, covs):
    """Per component: observed-marginal log density, completed row, conditional covariance (D, D)."""
    obs = ~np.isnan(x)
    miss = ~obs
    out = []
    for mu, sigma in zip(means, covs):
        if obs.any():
            log_density = stats.multivariate_normal(mu[obs], sigma[np.ix_(obs, obs)]).logpdf(x[obs])
        else:
            log_density = 0.0  # the density of observing nothing is 1
        xhat = x.copy()
        cond = np.zeros((x.size, x.size))
        if miss.any():
            s_oo = sigma[np.ix_(obs, obs)]
            s_mo = sigma[np.ix_(miss, obs)]
            gain = s_mo @ np.linalg.inv(s_oo) if obs.any() else np.zeros((miss.sum(), 0))
            xhat[miss] = mu[miss] + gain @ (x[obs] - mu[obs])
            cond[np.ix_(miss, miss)] = sigma[np.ix_(miss, miss)] - gain @ s_mo.T
        out.append((log_density, xhat, cond))
    return out


def reference_statistics(params, X, w):
    """Sufficient statistics around the current means, summed row by row (rows with nothing observed skipped)."""
    weights = np.asarray(params.weights)
    means = np.asarray(params.means)
    covs = full_covariances(params)
    K, D = means.shape
    ll = weight_sum = 0.0
    nk, s1, s2 = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D))
    for x, wn in zip(X, w):
        if np.isnan(x).all():
            continue
        per_k = reference_row(x, weights, means, covs)
        log_joint = np.log(weights) + np.array([lp for lp, _, _ in per_k])
        resp = np.exp(log_joint - logsumexp(log_joint))
        ll += wn * logsumexp(log_joint)
        weight_sum += wn
        for k, (_, xhat, cond) in enumerate(per_k):
            e = xhat - means[k]
            nk[k] += wn * resp[k]
            s1[k] += wn * resp[k] * e
            s2[k] += wn * resp[k] * (np.outer(e, e) + cond)
    return ll, weight_sum, nk, s1, s2


def reference_em_update(params, X, w, reg_covar):
    """One missing-data EM iteration: new (weights, means, covariances in sklearn shapes)."""
    _, _, nk, s1, s2 = reference_statistics(params, X, w)
    means = np.asarray(params.means)
    new_means = means + s1 / nk[:, None]
    d = new_means - means
    # E[(x - mu_new)(x - mu_new)^T] = E[(x - mu)(x - mu)^T] - d d^T per component.
    scatter = s2 - nk[:, None, None] * d[:, :, None] * d[:, None, :]
    D = means.shape[1]
    kind = params.covariance_type
    if kind == "full":
        covs = scatter / nk[:, None, None] + reg_covar * np.eye(D)
    elif kind == "tied":
        covs = scatter.sum(0) / nk.sum() + reg_covar * np.eye(D)
    elif kind == "diag":
        covs = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar
    else:
        covs = np.diagonal(scatter, axis1=1, axis2=2).mean(1) / nk + reg_covar
    return nk / nk.sum(), new_means, covs


def reference_log_prob(params, X):
    weights, means, covs = np.asarray(params.weights), np.asarray(params.means), full_covariances(params)
    out = []
    for x in X:
        per_k = reference_row(x, weights, means, covs)
        out.append(np.log(weights) + np.array([lp for lp, _, _ in per_k]))
    return np.array(out)  # (N, K) log w_k + log p_k(x_obs)


def reference_impute(params, X):
    weights, means, covs = np.asarray(params.weights), np.asarray(params.means), full_covariances(params)
    out = []
    for x in X:
        per_k = reference_row(x, weights, means, covs)
        log_joint = np.log(weights) + np.array([lp for lp, _, _ in per_k])
        resp = np.exp(log_joint - logsumexp(log_joint))
        out.append(sum(r * xhat for r, (_, xhat, _) in zip(resp, per_k)))
    return np.array(out)


# --- data -------------------------------------------------------------------


def _problem(covariance_type, fraction, seed=0, n=120, n_features=4, n_components=3):
    rng = np.random.default_rng(seed)
    params = random_params(rng, covariance_type, n_components, n_features)
    X, _ = sample_numpy(rng, params, n)
    X = mcar(rng, X, fraction, all_missing_rows=(3, 17), mostly_missing_feature=1)
    return rng, params, X


def _model_sums(params, X, w, n_slots=None, chunk_size=None):
    model = _missing.missing_model(params.covariance_type, _missing.max_missing(X) if n_slots is None else n_slots)
    return _missing.accumulate_sums(
        model, params.means, params.precisions_cholesky, params.weights, jnp.asarray(X), jnp.asarray(w), chunk_size
    )


# --- the statistics and one EM iteration -------------------------------------


def _full_s2(params, s2):
    """The engine's s2 (diag/spherical: per-feature) next to the reference's (K, D, D)."""
    return s2 if params.covariance_type in ("full", "tied") else np.diagonal(s2, axis1=1, axis2=2)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_missing_statistics_equal_per_row_reference(covariance_type, fraction, weighted):
    rng, params, X = _problem(covariance_type, fraction)
    w = rng.uniform(0.2, 3.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    ll, weight_sum, nk, s1, s2 = _model_sums(params, X, w)
    ref = reference_statistics(params, X, w)
    np.testing.assert_allclose(ll, ref[0], rtol=1e-10)
    np.testing.assert_allclose(weight_sum, ref[1], rtol=1e-12)
    np.testing.assert_allclose(nk, ref[2], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s1, ref[3], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(s2, _full_s2(params, ref[4]), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.slow
def test_missing_statistics_do_not_depend_on_slots_or_chunks(covariance_type):
    # More slots than needed (the bound used under a transformation) and a
    # ragged chunking give the same sums.
    rng, params, X = _problem(covariance_type, 0.3)
    w = np.ones(X.shape[0])
    tight = _model_sums(params, X, w)
    wide = _model_sums(params, X, w, n_slots=X.shape[1], chunk_size=37)
    for a, b in zip(tight, wide):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_missing_data_em_iteration_equals_reference(covariance_type, weighted):
    rng, params, X = _problem(covariance_type, 0.25, seed=1)
    w = rng.uniform(0.2, 3.0, X.shape[0]) if weighted else None
    result = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, init_params=params,
                     max_iter=1, tol=0.0, reg_covar=1e-6, sample_weight=w, nan_policy="marginalize")
    weights, means, covs = reference_em_update(params, X, np.ones(X.shape[0]) if w is None else w, 1e-6)
    np.testing.assert_allclose(result.params.weights, weights, rtol=1e-8)
    np.testing.assert_allclose(result.params.means, means, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(result.params.covariances, covs, rtol=1e-8, atol=1e-8)
    # The trace holds the observed-data log-likelihood of the starting parameters.
    ref = reference_statistics(params, X, np.ones(X.shape[0]) if w is None else w)
    np.testing.assert_allclose(result.log_likelihood[0], ref[0] / ref[1], rtol=1e-10)


def test_missing_m_step_is_the_engine_m_step():
    # The statistics plug into the ordinary M-step unchanged.
    rng, params, X = _problem("full", 0.3, seed=2)
    w = np.ones(X.shape[0])
    stats_ = _em.SufficientStatistics(*_model_sums(params, X, w))
    new = _em.params_from_statistics(stats_, params.means, "full", 1e-6)
    _, means, covs = reference_em_update(params, X, w, 1e-6)
    np.testing.assert_allclose(new.means, means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(new.covariances, covs, rtol=1e-9, atol=1e-9)


# --- slot groups: the rows sorted by their number of NaN entries ----------------

# Groups of a few rows, so that the small problems here fall into several.
_SMALL_GROUPS = _tuning.CPU._replace(min_chunk_rows=6, slot_groups_min_rows=1)


def test_slot_groups_bound_every_row_and_hold_enough_rows():
    rng, _, X = _problem("full", 0.3, n=300, n_features=6)
    groups = _missing.slot_groups(X, "full", 3, _SMALL_GROUPS)
    counts = np.sort(np.isnan(X).sum(axis=1))
    sizes = [group.n_rows for group in groups.groups]
    bounds = [group.n_slots for group in groups.groups]
    assert sum(sizes) == X.shape[0] and len(sizes) >= 3
    assert bounds == sorted(set(bounds)) and bounds[-1] == counts.max()
    start = 0
    for n_rows, bound, _, _ in groups.groups:
        assert n_rows >= _SMALL_GROUPS.min_chunk_rows
        assert counts[start:start + n_rows].max() <= bound  # each row fits its group's slots
        start += n_rows
    # The sorted rows are the same rows, in the groups' order.
    Xs, ws = _missing.sorted_rows(jnp.asarray(X), jnp.arange(X.shape[0], dtype=float))
    np.testing.assert_array_equal(np.isnan(Xs).sum(axis=1), counts)
    np.testing.assert_array_equal(np.asarray(Xs), X[np.asarray(ws).astype(int)])
    # Small data (compile time), one group for all rows, diag and spherical (no slots): no groups.
    assert _missing.slot_groups(X, "full", 3, _tuning.CPU) is None
    assert _missing.slot_groups(X, "full", 3, _SMALL_GROUPS._replace(min_chunk_rows=1000)) is None
    assert _missing.slot_groups(X, "diag", 3, _SMALL_GROUPS) is None


def test_sorted_rows_hold_each_pattern_as_a_run_and_groups_bound_the_patterns_per_chunk():
    # Within a count the rows are sorted by pattern, as the host counts them,
    # and n_patterns bounds the distinct patterns of every window of a chunk's rows.
    rng, _, X = _problem("full", 0.3, n=400, n_features=5)
    tuning = _SMALL_GROUPS._replace(pattern_sums_max_share=1.0)
    groups = _missing.slot_groups(X, "full", 3, tuning, chunk_size=16)
    Xs, _ = _missing.sorted_rows(jnp.asarray(X), jnp.zeros(X.shape[0]))
    miss = np.isnan(np.asarray(Xs))
    codes = miss @ (1 << np.arange(5))
    new = np.r_[True, codes[1:] != codes[:-1]]
    assert new.sum() == len(np.unique(codes))  # each pattern is one run
    start = 0
    for group in groups.groups:
        part = codes[start:start + group.n_rows]
        if group.n_slots:
            rows = group.n_rows if group.chunk_size is None else _rows.even_chunks(group.n_rows, group.chunk_size)[1]
            windows = [len(np.unique(part[i:i + rows])) for i in range(len(part) - rows + 1)]
            assert group.n_patterns == max(windows)
        start += group.n_rows
    assert any(group.n_patterns for group in groups.groups)
    # Many patterns per row of a chunk: per-row placement.
    none = _missing.slot_groups(X, "full", 3, tuning._replace(pattern_sums_max_share=0.0), chunk_size=16)
    assert not any(group.n_patterns for group in none.groups)


def test_patterns_wider_than_one_word_are_summed_per_pattern_as_per_row():
    # 33 features: a pattern spans two int32 words (31 features each), with
    # runs of repeated patterns, in float64; against the sums per row.
    rng = np.random.default_rng(7)
    n, d = 300, 33
    mask = rng.random((n, d)) < 0.04
    mask[100:200] = mask[np.arange(100) % 10]  # runs of repeated patterns
    X = np.where(mask, np.nan, rng.normal(size=(n, d)))
    tuning = _tuning.CPU._replace(min_chunk_rows=90, slot_groups_min_rows=1, pattern_sums_max_share=1.0)
    groups = _missing.slot_groups(X, "full", 2, tuning, chunk_size=64)
    assert any(group.n_patterns for group in groups.groups)
    params = gmm.GMMParams.from_covariances(np.ones(2) / 2, rng.normal(size=(2, d)),
                                            np.stack([np.eye(d) * 2.0, np.eye(d)]), "full")  # fmt: skip
    w = jnp.asarray(rng.uniform(0.5, 2.0, n))
    Xs, ws = _missing.sorted_rows(jnp.asarray(X), w)
    per_row = _missing.SlotGroups(tuple(group._replace(n_patterns=0) for group in groups.groups))
    per_pattern = _em.statistics(params, Xs, ws, None, None, tuning, groups)
    for got, want in zip(per_pattern, _em.statistics(params, Xs, ws, None, None, tuning, per_row), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# The accelerator's table: chunks as large as the groups, so a group's patterns are counted over all its rows.
_LAYOUTS = {"one-chunk": (None, _SMALL_GROUPS), "chunked": (7, _SMALL_GROUPS),
            "accelerator": (None, _tuning.ACCELERATOR._replace(min_chunk_rows=6, slot_groups_min_rows=1))}


@pytest.mark.parametrize("pattern_sums", [False, True], ids=["per-row", "per-pattern"])
@pytest.mark.parametrize("layout", list(_LAYOUTS))
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_grouped_statistics_equal_per_row_reference(covariance_type, layout, pattern_sums):
    # The EM pass on rows sorted into slot groups, the complete rows through
    # the complete-data pass, against the textbook per-row statistics; the
    # conditional covariances summed per row or per missingness pattern.
    rng, params, X = _problem(covariance_type, 0.3, n=150, n_features=5)
    X[rng.random(X.shape[0]) < 0.2] = rng.normal(size=5)  # some complete rows
    w = rng.uniform(0.2, 3.0, X.shape[0])
    chunk_size, table = _LAYOUTS[layout]
    tuning = table._replace(pattern_sums_max_share=1.0 if pattern_sums else 0.0)
    groups = _missing.slot_groups(X, covariance_type, 3, tuning, chunk_size)
    assert groups.groups[0].n_slots == 0 and len(groups.groups) >= 3
    assert any(group.n_patterns for group in groups.groups) == pattern_sums
    Xs, ws = _missing.sorted_rows(jnp.asarray(X), jnp.asarray(w))
    statistics = jax.jit(_em.statistics, static_argnums=(3, 5, 6))
    got = statistics(params, Xs, ws, None, None, tuning, groups)
    ref = reference_statistics(params, X, w)
    np.testing.assert_allclose(got.log_likelihood, ref[0], rtol=1e-10)
    np.testing.assert_allclose(got.weight_sum, ref[1], rtol=1e-12)
    np.testing.assert_allclose(got.nk, ref[2], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got.s1, ref[3], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(got.s2, ref[4], rtol=1e-8, atol=1e-8)


def test_grouped_criterion_sums_equal_the_one_bound_ones():
    # select's score of each cell: the observed-data log-likelihood and the classification term.
    rng, params, X = _problem("full", 0.3, n=150, n_features=5)
    w = rng.uniform(0.2, 3.0, X.shape[0])
    groups = _missing.slot_groups(X, "full", 3, _SMALL_GROUPS)
    assert groups is not None
    grouped = _missing.criterion_sums(params, jnp.asarray(X), jnp.asarray(w), groups)
    one_bound = _missing.criterion_sums(params, jnp.asarray(X), jnp.asarray(w), _missing.max_missing(X))
    np.testing.assert_allclose(grouped, one_bound, rtol=1e-12)


def test_fit_and_scores_in_slot_groups_equal_the_one_bound_ones(monkeypatch):
    # gmm.fit sorts the rows into groups after the start: the same fit as
    # with every row given the largest bound, up to the order of the sums.
    # The scores are put back in the rows' order.
    monkeypatch.setattr(_tuning, "CPU", _tuning.CPU._replace(slot_groups_min_rows=512))
    rng, _, X = _problem("full", 0.25, n=900, n_features=4)
    assert _missing.slot_groups(X, "full", 3, _tuning.CPU) is not None
    kwargs = dict(covariance_type="full", max_iter=8, tol=0.0, nan_policy="marginalize")

    def run():
        fitted = gmm.fit(jax.random.key(3), X, 3, **kwargs)
        return fitted, (gmm.predict_proba(fitted.params, X, nan_policy="marginalize"),
                        gmm.log_prob(fitted.params, X, nan_policy="marginalize"), gmm.impute(fitted.params, X),
                        gmm.impute(fitted.params, X, sample=True, key=jax.random.key(4)))

    grouped, grouped_scores = run()
    assert isinstance(_missing.scoring_options(grouped.params, jnp.asarray(X))[0], _missing.SlotGroups)
    monkeypatch.setattr(_missing, "slot_groups", lambda *args, **kw: None)
    one_bound, one_bound_scores = run()
    np.testing.assert_allclose(grouped.log_likelihood, one_bound.log_likelihood, rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(grouped.params), jax.tree_util.tree_leaves(one_bound.params)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
    for a, b in zip(grouped_scores, one_bound_scores):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


# --- scoring ------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_and_predict_proba_are_observed_marginals(covariance_type):
    rng, params, X = _problem(covariance_type, 0.4, seed=3, n=60)
    ref = reference_log_prob(params, X)  # scipy.stats.multivariate_normal on the observed entries
    ref_lp = logsumexp(ref, axis=1)
    np.testing.assert_allclose(gmm.log_prob(params, X, nan_policy="marginalize"), ref_lp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gmm.predict_proba(params, X, nan_policy="marginalize"),
                               np.exp(ref - ref_lp[:, None]), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(gmm.predict(params, X, nan_policy="marginalize"), np.argmax(ref, axis=1))
    informative = ~np.isnan(X).all(axis=1)
    np.testing.assert_allclose(gmm.score(params, X, nan_policy="marginalize"), ref_lp[informative].mean(), rtol=1e-10)
    ll, log_resp = gmm.e_step(params, X, nan_policy="marginalize")
    np.testing.assert_allclose(ll, ref_lp[informative].mean(), rtol=1e-10)
    np.testing.assert_allclose(np.exp(log_resp), np.exp(ref - ref_lp[:, None]), rtol=1e-9, atol=1e-12)
    n, p = informative.sum(), gmm.n_parameters(params)
    np.testing.assert_allclose(gmm.bic(params, X, nan_policy="marginalize"),
                               -2 * ref_lp[informative].sum() + p * np.log(n), rtol=1e-10)
    np.testing.assert_allclose(gmm.aic(params, X, nan_policy="marginalize"),
                               -2 * ref_lp[informative].sum() + 2 * p, rtol=1e-10)


def test_rows_with_nothing_observed_score_zero_and_get_the_weights():
    rng, params, X = _problem("full", 0.2, seed=4, n=30)
    lp = np.asarray(gmm.log_prob(params, X, nan_policy="marginalize"))
    proba = np.asarray(gmm.predict_proba(params, X, nan_policy="marginalize"))
    assert np.isnan(X[3]).all() and np.isnan(X[17]).all()
    np.testing.assert_allclose(lp[[3, 17]], 0.0, atol=1e-12)
    np.testing.assert_allclose(proba[[3, 17]], np.tile(params.weights, (2, 1)), rtol=1e-12)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(proba))


@pytest.mark.slow
def test_complete_data_scores_equal_with_either_policy():
    rng = np.random.default_rng(5)
    for covariance_type in COVARIANCE_TYPES:
        params = random_params(rng, covariance_type, 3, 3)
        X, _ = sample_numpy(rng, params, 50)
        np.testing.assert_allclose(gmm.log_prob(params, X, nan_policy="marginalize"), gmm.log_prob(params, X),
                                   rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_rows_with_missing_entries_go_to_the_nearest_component(covariance_type):
    # float32: at 1e20 every squared distance overflows and no density is
    # finite. As in the complete-data scorer, the component nearest on the
    # observed entries takes all the mass: never NaN.
    covariances = {"full": [[[1.0, 0.3], [0.3, 1.0]]] * 2, "tied": [[1.0, 0.3], [0.3, 1.0]],
                   "diag": [[1.0, 1.0]] * 2, "spherical": [1.0, 1.0]}[covariance_type]
    params = gmm.GMMParams.from_covariances(
        np.array([0.5, 0.5], np.float32), np.array([[0.0, 0.0], [5e19, -5e19]], np.float32),
        np.array(covariances, np.float32), covariance_type)
    X = np.array([[1e20, np.nan], [np.nan, 1e20], [1e20, -1e20], [1.0, np.nan]], np.float32)
    nearest = [1, 0, 1]  # observed distances 1e20 vs 5e19; 1e20 vs 1.5e20; both entries half as far from 1
    proba = np.asarray(gmm.predict_proba(params, X, nan_policy="marginalize"))
    assert np.isfinite(proba).all()
    np.testing.assert_array_equal(proba[:3], np.eye(2)[nearest])
    np.testing.assert_array_equal(gmm.predict(params, X, nan_policy="marginalize")[:3], nearest)
    assert int(gmm.predict(params, X[2:3])[0]) == 1  # the complete-data scorer agrees on the complete row
    log_density = np.asarray(gmm.log_prob(params, X, nan_policy="marginalize"))
    assert np.all(log_density[:3] == -np.inf) and np.isfinite(log_density[3])
    # The ordinary row is scored as before: its observed marginal.
    one = stats.norm(0.0, 1.0).logpdf(1.0), stats.norm(5e19, 1.0).logpdf(1.0)
    np.testing.assert_allclose(log_density[3], logsumexp(np.log(0.5) + np.array(one)), rtol=1e-5)
    filled = np.asarray(gmm.impute(params, X))
    drawn = np.asarray(gmm.impute(params, X, sample=True, key=jax.random.key(0)))
    assert np.isfinite(filled).all() and np.isfinite(drawn).all()
    # Filled from the nearest component alone (the mean or its regression on the observed entry).
    slope = 0.3 if covariance_type in ("full", "tied") else 0.0
    np.testing.assert_allclose(filled[0, 1], -5e19 + slope * (1e20 - 5e19), rtol=1e-5)
    np.testing.assert_allclose(filled[1, 0], slope * 1e20, rtol=1e-5, atol=1.0)


# --- impute -------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_impute_is_the_conditional_expectation(covariance_type):
    rng, params, X = _problem(covariance_type, 0.35, seed=6, n=60)
    filled = np.asarray(gmm.impute(params, X))
    np.testing.assert_allclose(filled, reference_impute(params, X), rtol=1e-9, atol=1e-10)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(filled[observed], X[observed])


def test_impute_sample_draws_from_the_conditional_distribution():
    # One component, one row: the draws' mean and covariance are the
    # conditional moments, computed here by the Schur complement.
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.5, -0.4], [0.3, -0.4, 0.8]])
    mean = np.array([0.5, -1.0, 2.0])
    params = gmm.GMMParams.from_covariances(np.ones(1), mean[None], cov[None], "full")
    x = np.array([1.2, np.nan, np.nan])
    X = np.tile(x, (20000, 1))
    draws = np.asarray(gmm.impute(params, X, sample=True, key=jax.random.key(0)))[:, 1:]
    gain = cov[1:, :1] / cov[0, 0]
    cond_mean = mean[1:] + gain[:, 0] * (x[0] - mean[0])
    cond_cov = cov[1:, 1:] - gain @ cov[:1, 1:]
    np.testing.assert_allclose(draws.mean(0), cond_mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), cond_cov, atol=0.04)
    assert np.all(draws.std(0) > 0.5)


def test_impute_sample_picks_components_by_posterior():
    # Two far-apart diagonal components: a row observed near component 1
    # draws its missing entry from component 1 only.
    params = gmm.GMMParams.from_covariances(np.array([0.5, 0.5]), np.array([[-10.0, -10.0], [10.0, 10.0]]),
                                            np.ones((2, 2)), "diag")
    X = np.tile([9.5, np.nan], (5000, 1))
    draws = np.asarray(gmm.impute(params, X, sample=True, key=jax.random.key(1)))[:, 1]
    np.testing.assert_allclose([draws.mean(), draws.var()], [10.0, 1.0], atol=0.06)
    empty = np.full((4000, 2), np.nan)  # nothing observed: a draw from the mixture
    draws = np.asarray(gmm.impute(params, empty, sample=True, key=jax.random.key(2)))
    np.testing.assert_allclose((draws[:, 0] > 0).mean(), 0.5, atol=0.03)


def test_impute_key_rules():
    params = gmm.GMMParams.from_covariances(np.ones(1), np.zeros((1, 2)), np.ones(1), "spherical")
    X = np.array([[1.0, np.nan]])
    with pytest.raises(ValueError, match="sample=True.*key"):
        gmm.impute(params, X, sample=True)
    with pytest.raises(ValueError, match="key is only used with sample=True"):
        gmm.impute(params, X, key=jax.random.key(0))
    with pytest.raises(ValueError, match="infinite"):
        gmm.impute(params, np.array([[np.inf, np.nan]]))


# --- fitting ------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_missing_data_em_log_likelihood_never_decreases(covariance_type):
    rng, params, X = _problem(covariance_type, 0.3, seed=7, n=300, n_features=3)
    result = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=60, tol=0.0,
                     nan_policy="marginalize")
    trace = np.asarray(result.log_likelihood)
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:])), np.diff(trace).min()
    # The trace is the observed-data log-likelihood: score() of the parameters agrees.
    final = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, init_params=result.params,
                    max_iter=1, tol=0.0, nan_policy="marginalize")
    np.testing.assert_allclose(final.log_likelihood[0], gmm.score(result.params, X, nan_policy="marginalize"),
                               rtol=1e-10)


@pytest.mark.slow
def test_seed_scenario_means_recovered_with_a_quarter_missing():
    truth = gmm.GMMParams.from_covariances(
        weights=jnp.array([0.5, 0.2, 0.3]),
        means=jnp.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]),
        covariances=jnp.full(3, 0.3), covariance_type="spherical")
    X, _ = gmm.sample(jax.random.key(0), truth, 500)
    X = mcar(np.random.default_rng(0), np.asarray(X), 0.25)
    assert 0.23 < np.isnan(X).mean() < 0.27
    result = gmm.fit(jax.random.key(1), X, 3, n_init=4, nan_policy="marginalize")
    assert bool(result.converged) and int(result.status) == 0
    fitted = np.asarray(result.params.means)
    for true_mean in np.asarray(truth.means):
        assert np.min(np.linalg.norm(fitted - true_mean, axis=1)) < 0.2


@pytest.mark.parametrize(("covariance_type", "init"),
                         list(zip(COVARIANCE_TYPES, ("kmeans", "random", "random_from_data", "k-means++"))))
@pytest.mark.slow
def test_fit_with_mostly_missing_feature_and_empty_rows_is_finite(covariance_type, init):
    rng, params, X = _problem(covariance_type, 0.5, seed=8, n=200, n_features=3)
    assert np.isnan(X[:, 1]).mean() > 0.85
    result = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, init=init,
                     nan_policy="marginalize")
    assert int(result.status) == 0
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(result.params))


@pytest.mark.slow
def test_complete_data_fit_is_the_same_with_either_policy():
    rng = np.random.default_rng(9)
    params = random_params(rng, "full", 3, 3)
    X, _ = sample_numpy(rng, params, 200)
    a = gmm.fit(jax.random.key(0), X, 3, max_iter=20, tol=0.0)
    b = gmm.fit(jax.random.key(0), X, 3, max_iter=20, tol=0.0, nan_policy="marginalize")
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(a.params.covariances, b.params.covariances, rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_fit_under_jit_and_vmap_with_missing_values():
    rng, params, X = _problem("full", 0.2, seed=10, n=100, n_features=3)
    expected = gmm.fit(jax.random.key(0), X, 2, max_iter=10, tol=0.0, nan_policy="marginalize")
    jitted = jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 2, max_iter=10, tol=0.0, nan_policy="marginalize"))
    got = jitted(jnp.asarray(X))  # traced X: every row may miss every entry (D slots)
    np.testing.assert_allclose(got.log_likelihood, expected.log_likelihood, rtol=1e-9)
    batched = jax.vmap(lambda X: gmm.fit(jax.random.key(0), X, 2, max_iter=10, tol=0.0, nan_policy="marginalize"))
    out = batched(jnp.stack([jnp.asarray(X)] * 2))
    np.testing.assert_allclose(out.log_likelihood[1], expected.log_likelihood, rtol=1e-9)


# --- errors -------------------------------------------------------------------


def test_nan_raises_by_default_and_names_the_option():
    X = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r'X contains 1 NaN or infinite.*nan_policy="marginalize"'):
        gmm.fit(jax.random.key(0), X, 1)
    params = gmm.GMMParams.from_covariances(np.ones(1), np.zeros((1, 2)), np.ones(1), "spherical")
    for fn in (gmm.log_prob, gmm.predict, gmm.predict_proba, gmm.score, gmm.e_step, gmm.bic, gmm.aic):
        with pytest.raises(ValueError, match="nan_policy"):
            fn(params, X)



def test_functions_without_the_option_refuse_nan_without_naming_it():
    X = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]])
    calls = [lambda: gmm.m_step(X, np.zeros((3, 1)), "full"), lambda: gmm.kmeans(jax.random.key(0), X, 1),
             lambda: gmm.ConjugatePrior.default(X, 1, "full")]  # fmt: skip
    for call in calls:
        with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\); remove or impute them\.$"):
            call()

def test_marginalize_rejects_inf_empty_data_and_never_observed_features():
    with pytest.raises(ValueError, match="infinite"):
        gmm.fit(jax.random.key(0), np.array([[np.inf, 1.0], [0.0, np.nan]]), 1, nan_policy="marginalize")
    with pytest.raises(ValueError, match="no observed entry"):
        gmm.fit(jax.random.key(0), np.full((3, 2), np.nan), 1, nan_policy="marginalize")
    with pytest.raises(ValueError, match=r"feature\(s\) \[1\] missing \(NaN\) in every row"):
        gmm.fit(jax.random.key(0), np.array([[0.0, np.nan], [1.0, np.nan]]), 1, nan_policy="marginalize")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        gmm.log_prob(gmm.GMMParams.from_covariances(np.ones(1), np.zeros((1, 1)), np.ones(1), "spherical"),
                     np.zeros((1, 1)), nan_policy="omit")


# --- streams: fit_stream and fit_online with missing values -----------------


def _seed_data(fraction=0.25, n=500):
    """The seed scenario (three spherical clusters in 2-D) with entries missing completely at random."""
    truth = gmm.GMMParams.from_covariances(
        weights=jnp.array([0.5, 0.2, 0.3]),
        means=jnp.array([[-1.0, -1.0], [1.0, -1.5], [0.0, 2.0]]),
        covariances=jnp.full(3, 0.3), covariance_type="spherical")  # fmt: skip
    X, _ = gmm.sample(jax.random.key(0), truth, n)
    return mcar(np.random.default_rng(0), np.asarray(X), fraction)


def _source(X, rows, w=None):
    if w is None:
        return lambda: (X[i : i + rows] for i in range(0, len(X), rows))
    return lambda: ((X[i : i + rows], w[i : i + rows]) for i in range(0, len(X), rows))


def _assert_same_fit(a, b, rtol=1e-9, atol=1e-11):
    assert int(a.n_iter) == int(b.n_iter) and int(a.status) == int(b.status) == 0
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(a.params, name), getattr(b.params, name), rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol, atol=atol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.slow
def test_fit_stream_with_missing_values_equals_fit(covariance_type):
    # 20-25% MCAR, two rows with nothing observed, weighted ragged batches.
    rng = np.random.default_rng(11)
    X, _ = sample_numpy(rng, random_params(rng, covariance_type, 3, 4), 230)
    X = mcar(rng, X, 0.22, all_missing_rows=(3, 17))
    assert 0.2 < np.isnan(X).mean() < 0.25
    w = rng.uniform(0.5, 2.0, X.shape[0])
    start = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=0,
                    nan_policy="marginalize").params  # fmt: skip
    kwargs = dict(covariance_type=covariance_type, init_params=start, max_iter=8, tol=0.0, nan_policy="marginalize")
    in_memory = gmm.fit(jax.random.key(0), X, 3, sample_weight=w, **kwargs)
    streamed = gmm.fit_stream(jax.random.key(0), _source(X, 50, w), 3, **kwargs)
    _assert_same_fit(in_memory, streamed)


@pytest.mark.slow
def test_fit_stream_with_missing_values_initialises_like_fit():
    # With fewer rows than init_sample_size the sample is every row, in order:
    # the start (NaN replaced by the centre, as in fit) and the fit are fit's.
    X = _seed_data(0.25)
    in_memory = gmm.fit(jax.random.key(3), X, 3, max_iter=30, tol=0.0, nan_policy="marginalize")
    streamed = gmm.fit_stream(jax.random.key(3), _source(X, 120), 3, max_iter=30, tol=0.0, nan_policy="marginalize")
    _assert_same_fit(in_memory, streamed, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_fit_stream_slot_bound_grows_with_the_rows_read():
    # With init_params there is no initialisation pass: the first batches miss
    # at most one entry per row, a later one up to three of four. The bound
    # grows when that batch arrives, so the fit still equals fit's.
    rng = np.random.default_rng(12)
    params = random_params(rng, "full", 3, 4)
    X, _ = sample_numpy(rng, params, 300)
    X[rng.random(300) < 0.3, 1] = np.nan
    X[250:, :3][rng.random((50, 3)) < 0.5] = np.nan
    assert np.isnan(X[:250]).sum(axis=1).max() == 1 and np.isnan(X).sum(axis=1).max() == 3
    kwargs = dict(init_params=params, max_iter=5, tol=0.0, nan_policy="marginalize")
    _assert_same_fit(gmm.fit(jax.random.key(0), X, 3, **kwargs),
                     gmm.fit_stream(jax.random.key(0), _source(X, 50), 3, **kwargs))  # fmt: skip


@pytest.mark.slow
def test_rows_with_nothing_observed_contribute_nothing_to_a_stream():
    X = _seed_data(0.2, n=200)
    X = X[~np.isnan(X).all(axis=1)][:160]
    plain = [X[i : i + 40] for i in range(0, len(X), 40)]  # batches of one shape: one compiled online step
    # Empty rows, with a large weight, inside every batch, and a batch of nothing but empty rows.
    empty = np.full((3, 2), np.nan)
    padded = [(np.concatenate([b[:10], empty, b[10:]]), np.concatenate([np.ones(10), np.full(3, 50.0),
                                                                          np.ones(len(b) - 10)])) for b in plain]
    padded = [(empty, np.ones(3)), *padded]
    start = gmm.fit(jax.random.key(0), X, 3, max_iter=0, nan_policy="marginalize").params
    kwargs = dict(init_params=start, max_iter=5, tol=0.0, nan_policy="marginalize")
    _assert_same_fit(gmm.fit_stream(jax.random.key(0), lambda: iter(plain), 3, **kwargs),
                     gmm.fit_stream(jax.random.key(0), lambda: iter(padded), 3, **kwargs), rtol=1e-12, atol=1e-13)
    online_kwargs = dict(init_params=start, nan_policy="marginalize")
    online = gmm.fit_online(jax.random.key(0), iter(plain), 3, **online_kwargs)
    online_padded = gmm.fit_online(jax.random.key(0), iter(padded), 3, **online_kwargs)
    assert int(online_padded.n_iter) == int(online.n_iter) == len(plain)  # the batch of empty rows is skipped
    for a, b in zip(jax.tree_util.tree_leaves(online.params), jax.tree_util.tree_leaves(online_padded.params)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(online_padded.state.n_samples_seen, len(X))


SHARDED_MISSING_SCRIPT = """
import json
import jax, numpy as np
import gmm_jax as gmm

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")  # as in the suite's conftest
assert jax.device_count() == 4, jax.devices()
rng = np.random.default_rng(0)
n = 1001  # not a multiple of the devices: shard pads with zero weight
X = rng.normal(size=(n, 3)) + rng.integers(0, 3, size=(n, 1)) * 4.0
X[rng.random(X.shape) < 0.22] = np.nan
X[[5, 400]] = np.nan  # rows with nothing observed
X_sharded, w_sharded = gmm.distributed.shard(X)

def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

out = {}
for covariance_type in ("full", "diag"):
    kwargs = dict(covariance_type=covariance_type, max_iter=10, tol=0.0, nan_policy="marginalize")
    one = gmm.fit(jax.random.key(1), X, 3, **kwargs)
    sharded = gmm.fit(jax.random.key(1), X_sharded, 3, sample_weight=w_sharded, **kwargs)
    streamed = gmm.fit_stream(jax.random.key(1), lambda: (X[i:i + 250] for i in range(0, n, 250)), 3,
                              init_params=one.params, mesh=gmm.distributed.data_mesh(), **kwargs)
    again = gmm.fit(jax.random.key(1), X, 3, init_params=one.params, **kwargs)
    out[covariance_type] = {"sharded": max_diff(one.params, sharded.params),
                            "trace": max_diff(one.log_likelihood, sharded.log_likelihood),
                            "stream": max_diff(again.params, streamed.params),
                            "status": [int(one.status), int(sharded.status), int(streamed.status)]}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_sharded_fits_with_missing_values_equal_the_single_device_fit():
    from test_distributed import run_with_devices

    out = run_with_devices(SHARDED_MISSING_SCRIPT, 4, timeout=300)
    for covariance_type, diffs in out.items():
        assert diffs["status"] == [0, 0, 0], covariance_type
        # float64: only the order of the sums differs.
        assert diffs["sharded"] < 1e-9 and diffs["trace"] < 1e-11, (covariance_type, diffs)
        assert diffs["stream"] < 1e-9, (covariance_type, diffs)


def test_fit_online_with_missing_values_one_batch_is_one_fit_iteration():
    # The first batch's running average is that batch's statistics: its
    # update is one missing-data EM iteration of fit, exactly.
    rng, params, X = _problem("full", 0.25, seed=13, n=150)
    one = gmm.fit(jax.random.key(0), X, 3, init_params=params, max_iter=1, tol=0.0, nan_policy="marginalize")
    online = gmm.fit_online(jax.random.key(0), iter([X]), 3, init_params=params, nan_policy="marginalize")
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(online.params, name), getattr(one.params, name), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(online.log_likelihood, one.log_likelihood, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
@pytest.mark.slow
def test_fit_online_with_missing_values_approaches_fit(covariance_type):
    X = _seed_data(0.25)
    start = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=0,
                    nan_policy="marginalize").params  # fmt: skip
    batch_em = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, init_params=start, tol=1e-10,
                       max_iter=500, nan_policy="marginalize")  # fmt: skip
    online = gmm.fit_online(jax.random.key(0), _epochs(X, 40, 100), 3, covariance_type=covariance_type,
                            init_params=start, nan_policy="marginalize")  # fmt: skip
    assert np.all(np.isfinite(online.log_likelihood)) and int(online.status) == 0
    np.testing.assert_allclose(online.params.weights, batch_em.params.weights, atol=0.01)
    np.testing.assert_allclose(online.params.means, batch_em.params.means, atol=0.03)
    np.testing.assert_allclose(online.params.covariances, batch_em.params.covariances, atol=0.02)
    score = gmm.score(online.params, X, nan_policy="marginalize")
    assert abs(float(score) - float(batch_em.lower_bound)) < 1e-3


@pytest.mark.slow
def test_fit_online_with_missing_values_never_produces_nan():
    # Full covariances, a feature missing in most rows, rows with nothing
    # observed, small batches, initialised from the first batch.
    rng, _, X = _problem("full", 0.3, seed=14, n=600, n_features=3)
    result = gmm.fit_online(jax.random.key(0), _epochs(X, 5, 60), 3, nan_policy="marginalize")
    assert int(result.status) == 0 and np.all(np.isfinite(result.log_likelihood))
    for leaf in jax.tree_util.tree_leaves((result.params, result.state)):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_streams_raise_on_nan_by_default_naming_the_option_and_refuse_inf():
    X = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0], [2.0, 2.0]])
    option = r'X in batch 0 \(0-based\).*1 NaN or infinite.*nan_policy="marginalize"'
    with pytest.raises(ValueError, match=option):
        gmm.fit_stream(jax.random.key(0), lambda: iter([X]), 1)
    with pytest.raises(ValueError, match=option):
        gmm.fit_online(jax.random.key(0), iter([X]), 1)
    bad = X.copy()
    bad[0, 0] = np.inf
    for fit in (lambda: gmm.fit_stream(jax.random.key(0), lambda: iter([bad]), 1, nan_policy="marginalize"),
                lambda: gmm.fit_online(jax.random.key(0), iter([bad]), 1, nan_policy="marginalize")):  # fmt: skip
        with pytest.raises(ValueError, match="1 infinite value.*only NaN marks a missing entry"):
            fit()
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([X]), 1, nan_policy="omit")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        gmm.fit_online(jax.random.key(0), iter([X]), 1, nan_policy="omit")
    never = np.array([[0.0, np.nan], [1.0, np.nan], [2.0, np.nan]])
    with pytest.raises(ValueError, match=r"the stream has feature\(s\) \[1\] missing \(NaN\) in every row"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([never]), 1, nan_policy="marginalize")
    with pytest.raises(ValueError, match=r"the first batch misses feature\(s\) \[1\]"):
        gmm.fit_online(jax.random.key(0), iter([never]), 1, nan_policy="marginalize")


# --- numpy masked arrays: masked entries are missing values ------------------


def _masked(X):
    """``X`` (with NaN) as a masked array: NaN entries masked, and some other value under the mask."""
    return np.ma.masked_array(np.where(np.isnan(X), 123.0, X), mask=np.isnan(X))


@pytest.mark.slow
def test_masked_entries_are_marginalised_like_nan():
    rng, params, X = _problem("full", 0.25, seed=15, n=80, n_features=3)
    masked = _masked(X)
    kwargs = dict(init_params=params, max_iter=3, tol=0.0, nan_policy="marginalize")
    _assert_same_fit(gmm.fit(jax.random.key(0), X, 3, **kwargs), gmm.fit(jax.random.key(0), masked, 3, **kwargs),
                     rtol=1e-12, atol=1e-13)  # fmt: skip
    for name in ("log_prob", "predict_proba", "predict", "score", "bic", "aic"):
        fn = getattr(gmm, name)
        np.testing.assert_array_equal(fn(params, masked, nan_policy="marginalize"),
                                      fn(params, X, nan_policy="marginalize"), err_msg=name)  # fmt: skip
    np.testing.assert_array_equal(gmm.e_step(params, masked, nan_policy="marginalize")[1],
                                  gmm.e_step(params, X, nan_policy="marginalize")[1])  # fmt: skip
    np.testing.assert_array_equal(gmm.impute(params, masked), gmm.impute(params, X))
    batches = lambda: iter([masked[:40], masked[40:]])  # noqa: E731
    _assert_same_fit(gmm.fit(jax.random.key(0), X, 3, **kwargs),
                     gmm.fit_stream(jax.random.key(0), batches, 3, **kwargs))  # fmt: skip
    online = gmm.fit_online(jax.random.key(0), batches(), 3, init_params=params, nan_policy="marginalize")
    expected = gmm.fit_online(jax.random.key(0), iter([X[:40], X[40:]]), 3, init_params=params,
                              nan_policy="marginalize")  # fmt: skip
    np.testing.assert_array_equal(online.params.means, expected.params.means)


def test_masked_integer_data_becomes_float_with_nan():
    masked = np.ma.masked_array(np.array([[1, 2], [3, 4], [5, 6]]), mask=[[0, 1], [0, 0], [1, 0]])
    params = gmm.GMMParams.from_covariances(np.ones(1), np.zeros((1, 2)), np.ones(1), "spherical")
    X = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    np.testing.assert_array_equal(gmm.log_prob(params, masked, nan_policy="marginalize"),
                                  gmm.log_prob(params, X, nan_policy="marginalize"))  # fmt: skip


def test_masked_entries_raise_by_default_naming_the_option():
    masked = _masked(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]]))
    params = gmm.GMMParams.from_covariances(np.ones(1), np.zeros((1, 2)), np.ones(1), "spherical")
    message = r'X is a numpy.ma.MaskedArray with 1 masked entry;.*nan_policy="marginalize".*drop.*fill'
    calls = [lambda: gmm.fit(jax.random.key(0), masked, 1),
             lambda: gmm.select(jax.random.key(0), masked, range(1, 2)),
             *[lambda fn=fn: fn(params, masked) for fn in (gmm.log_prob, gmm.predict, gmm.predict_proba, gmm.score,
                                                           gmm.e_step, gmm.bic, gmm.aic)]]  # fmt: skip
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
    batch_message = r'X in batch 0 \(0-based\).*MaskedArray with 1 masked entry;.*nan_policy="marginalize"'
    with pytest.raises(ValueError, match=batch_message):
        gmm.fit_stream(jax.random.key(0), lambda: iter([masked]), 1)
    with pytest.raises(ValueError, match=batch_message):
        gmm.fit_online(jax.random.key(0), iter([masked]), 1)
    # Arrays that cannot hold missing values say so, without the option.
    with pytest.raises(ValueError, match="sample_weight is a numpy.ma.MaskedArray.*cannot hold missing values"):
        gmm.fit(jax.random.key(0), masked.filled(0.0), 1, sample_weight=np.ma.masked_array(np.ones(3), [0, 1, 0]))
