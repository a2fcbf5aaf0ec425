"""Initialisation: k-means (k-means++ seeding, Lloyd iterations) and the other initialisers.

Every initialiser turns the data into starting *responsibilities* (hard
labels, or random soft ones) and then applies the ordinary M-step, as
scikit-learn does, so the starting covariances are estimated from data.
``"hierarchical"`` takes its labels from mclust's agglomeration
(``_hierarchical``).
All of it is JAX, traceable, and vmaps over PRNG keys.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from gmm_jax import _em, _hierarchical, _loops, _pass, _rows, _tuning, _validation
from gmm_jax._params import GMMParams
from gmm_jax._precision import float32_matmuls
from gmm_jax._tuning import Tuning

__all__ = ["kmeans", "kmeans_plusplus", "start_centers", "initialize", "CENTER_INITS"]


def _squared_distances(X, points, tuning: Tuning):
    """``|x_n - p_t|^2`` as ``(T, N)`` (point-major), exact: explicit differences.

    Up to ``tuning.feature_loop_d`` features, summed feature by feature with
    the rows on the fast axis: a (rows, D) layout with a short minor axis
    wastes the vector units (3x slower for 100k x 8 rows), and under vmap tiny
    matrix products become thousands of GEMM calls (15x slower for 1,000
    datasets of 500 x 2).
    """
    if X.shape[1] <= tuning.feature_loop_d:
        return sum((X[:, i][None, :] - points[:, i][:, None]) ** 2 for i in range(X.shape[1]))
    return jnp.sum((X[None, :, :] - points[:, None, :]) ** 2, axis=2)


def _nearest(X, centers, tuning: Tuning, active=None):
    """``(N,)`` index of the nearest centre of each row (``X`` centred near the data mean).

    ``active``: optional ``(K,)`` bool; inactive centres are never nearest.
    """
    if X.shape[1] <= tuning.small_d:
        distances = _squared_distances(X, centers, tuning)
    else:
        # |c|^2 - 2 c.x (|x|^2 does not change the argmin) as one matrix product.
        distances = jnp.sum(centers * centers, axis=1)[:, None] - 2.0 * centers @ X.T
    if active is not None:
        distances = jnp.where(active[:, None], distances, jnp.inf)
    return jnp.argmin(distances, axis=0)


def _hard_responsibilities(labels, w, n_clusters):
    """``(K, N)`` component-major one-hot assignments of each row to its label, times its weight."""
    return (labels[None, :] == jnp.arange(n_clusters)[:, None]).astype(w.dtype) * w[None, :]


def _label_sums(X, w, labels, n_clusters, tuning: Tuning):
    """Weighted counts ``(K,)`` and row sums ``(K, D)`` of the rows with each label."""
    onehot = _hard_responsibilities(labels, w, n_clusters)
    if X.shape[1] <= tuning.small_d:
        sums = jnp.stack([onehot @ X[:, i] for i in range(X.shape[1])], axis=1)
    else:
        sums = onehot @ X
    return onehot.sum(axis=1), sums


def _sample_index(key, p, shape=(), chunk_size=None):
    """Indices sampled (with replacement) proportionally to non-negative ``p``.

    Inverse-CDF sampling, the draw of ``jax.random.choice(key, N, shape, p=p)``
    with the search written as a count: appending zero-probability rows (the
    zero-weight padding of ragged datasets) does not change which rows are
    drawn, so a padded dataset is initialised exactly like the unpadded one.
    The count compiles faster than ``choice``'s binary search (a loop), and on
    row-sharded ``p`` neither it nor the per-device CDF gathers ``p``.
    """
    cdf, total = _rows.cumsum_rows(p / jnp.sum(p), chunk_size)
    r = total * (1 - jax.random.uniform(key, shape, dtype=cdf.dtype))
    return jnp.sum(cdf.reshape((1,) * r.ndim + cdf.shape) < r[..., None], axis=-1, dtype=jnp.int32)


def _sample_distinct(key, w, n, chunk_size=None):
    """``n`` distinct row indices, drawn one by one proportionally to ``w``."""

    rows = jnp.arange(w.shape[0])

    def draw(w, step_key):
        i = _sample_index(step_key, w, chunk_size=chunk_size)
        # A mask, not w.at[i].set(0): a scatter into row-sharded w makes XLA gather it.
        return jnp.where(rows == i, jnp.zeros_like(w), w), i

    _, idx = jax.lax.scan(draw, w, jax.random.split(key, n))
    return idx


def kmeans_plusplus(key, X, w, n_clusters: int, chunk_size, tuning: Tuning, n_active=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; scikit-learn's variant).

    Each new centre is the best of ``2 + log(K)`` candidates drawn with
    probability proportional to ``w * distance^2`` to the nearest chosen centre.
    Zero-weight rows (padding) are never chosen.

    ``n_active`` (traced, ``<= n_clusters``): seed only the first ``n_active``
    centres, exactly as a seeding of ``n_active`` clusters would (the draws
    are prefixes of the same random streams); the others repeat the first.

    Returns:
      ``(n_clusters, n_features)`` centres, all rows of ``X``.
    """
    X = jax.lax.stop_gradient(X)
    n_trials = 2 + int(math.log(n_clusters))
    # chunk_size is sized for EM's K x D values per row; these passes hold
    # n_trials distances per row (times D above tuning.feature_loop_d).
    width = n_trials * (1 if X.shape[1] <= tuning.feature_loop_d else X.shape[1])
    chunk_size = _rows.widen_chunks(chunk_size, (n_clusters * X.shape[1]) // width)
    key, first_key = jax.random.split(key)
    first = _sample_index(first_key, w, chunk_size=chunk_size)
    # take_rows, not X[i]: indexing a row-sharded X would gather it onto every device.
    first_row = _rows.take_rows(X, first, chunk_size)
    closest = _rows.map_over_rows(lambda Xc: _squared_distances(Xc, first_row[None], tuning)[0], X, chunk_size)
    centers = jnp.zeros((n_clusters, X.shape[1]), X.dtype).at[0].set(first_row)
    if n_active is not None:
        active_trials = 2 + jnp.floor(jnp.log(n_active)).astype(jnp.int32)

    def seed_step(carry, inputs):
        centers, closest = carry
        c, step_key = inputs
        potential = w * closest
        # If every weighted row already sits on a centre (fewer distinct points
        # than clusters), fall back to the weights alone: duplicates, not NaN.
        p = jnp.where(jnp.sum(potential) > 0, potential, w)
        candidates = _sample_index(step_key, p, (n_trials,), chunk_size)
        candidate_rows = _rows.take_rows(X, candidates, chunk_size)  # (trials, D)

        # The potential after adding each candidate, summed chunk by chunk
        # (closest travels with the rows): memory stays O(N), never (N, trials).
        def potential_with(Xc, wc_near, _):
            wc, near = wc_near
            return jnp.minimum(near[None, :], _squared_distances(Xc, candidate_rows, tuning)) @ wc

        potentials = _rows.sum_over_rows(potential_with, X, (w, closest), chunk_size)
        if n_active is not None:  # the candidates a seeding of n_active clusters draws
            potentials = jnp.where(jnp.arange(n_trials) < active_trials, potentials, jnp.inf)
        best_row = candidate_rows[jnp.argmin(potentials)]
        d = _rows.map_over_rows(lambda Xc: _squared_distances(Xc, best_row[None], tuning)[0], X, chunk_size)
        return (centers.at[c].set(best_row), jnp.minimum(closest, d)), None

    def skip_step(carry, inputs):  # a centre beyond n_active repeats the first
        centers, closest = carry
        return (centers.at[inputs[0]].set(centers[0]), closest), None

    def add_center(carry, inputs):
        if n_active is None:
            return seed_step(carry, inputs)
        # A branch, not a mask: one K after another (lax.map) the steps beyond
        # n_active are skipped (benchmarks/README.md, "Model selection");
        # under vmap it is a select, as a mask would be.
        return jax.lax.cond(inputs[0] < n_active, seed_step, skip_step, carry, inputs)

    steps = (jnp.arange(1, n_clusters), jax.random.split(key, n_clusters - 1))
    (centers, _), _ = jax.lax.scan(add_center, (centers, closest), steps)
    return centers


def _lloyd(X, w, centers, max_iter: int, tol, chunk_size, center, tuning: Tuning, active=None):
    """Lloyd iterations until the squared centre shift is below ``tol``; empty clusters keep their centre.

    ``centers`` are in coordinates centred at ``center`` (rows are centred
    chunk by chunk). Stops at convergence, under ``vmap`` too (see ``_loops``).
    Inactive centres (``active``, optional ``(K,)`` bool) take no rows.
    """

    def update(data, centers):
        X, w, center, _, active = data

        def chunk(Xc, wc, _):
            return _label_sums(Xc, wc, _nearest(Xc, centers, tuning, active), centers.shape[0], tuning)

        counts, sums = _rows.sum_over_rows(chunk, X, w, chunk_size, center)
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    def running(data, state):
        _, shift, i = state
        return (i < max_iter) & (shift > data[3])

    def body(data, state):
        centers, _, i = state
        new = update(data, centers)
        return new, jnp.sum((new - centers) ** 2), i + 1

    # The iterations only decide which rows go with which centre, so they
    # carry no derivative: every input is cut from the tangents. (A tangent
    # reaching _loops.while_loop would meet its custom_vmap rule, which has
    # no linearisation: jax.grad failed with "Linearization failed ..." and
    # jax.jacfwd saw batched primal outputs.) Derivatives of what is built
    # from the labels (the starting M-step, `_kmeans`'s centres) come from
    # the labelled data, with the labels held fixed.
    data = jax.lax.stop_gradient((X, w, center, tol, active))  # passed, not closed over: see _loops
    init = (jax.lax.stop_gradient(centers), jnp.asarray(jnp.inf, X.dtype), jnp.zeros((), jnp.int32))
    centers, _, _ = _loops.while_loop(running, body, data, init)
    return centers


def _lloyd_chunks(chunk_size, pass_width: int, n_clusters: int):
    """Rows per chunk for Lloyd's iterations, from ``chunk_size`` sized for a pass ``pass_width`` values wide per row.

    Lloyd holds two ``(K,)`` values per row (distances and the one-hot
    labels), so it takes the same elements per chunk in more rows: with the
    full pass's chunks an iteration on 10^5 x 8 rows, K = 10 cost 3.9 ms
    instead of 0.7 ms (benchmarks/README.md, "Model selection").
    """
    return _rows.widen_chunks(chunk_size, pass_width // (2 * n_clusters))


def _kmeans_tolerance(X, w, tol, center, chunk_size):
    # scikit-learn scales tol by the mean per-feature variance of the data
    # (about its mean, which differs from the working origin ``center``).
    total = jnp.sum(w)
    s1, s2 = _rows.sum_over_rows(lambda Xc, wc, _: (wc @ Xc, wc @ (Xc * Xc)), X, w, chunk_size, center)
    offset = s1 / total
    return tol * jnp.mean(s2 / total - offset * offset)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _as_label_means(X, w, centers, center, chunk_size, tuning):
    """``centers`` (centred at ``center``), differentiated as the means of the rows nearest to them.

    At a fixed point of Lloyd's iteration each centre is the weighted mean of
    its rows, and small changes of ``X`` or ``w`` do not change which rows
    those are, so that mean's derivative (labels fixed) is the derivative of
    the converged centres. The value is ``centers`` itself: no extra pass
    unless a derivative is asked for.
    """
    return centers


@_as_label_means.defjvp
def _as_label_means_jvp(chunk_size, tuning, primals, tangents):
    X, w, centers, center = primals
    dX, dw, _, _ = tangents  # centers and center only place the labels

    def label_means(X, w):
        def chunk(Xc, wc, _):
            return _label_sums(Xc, wc, _nearest(Xc, centers, tuning), centers.shape[0], tuning)

        counts, sums = _rows.sum_over_rows(chunk, X, w, chunk_size, center)
        # An empty cluster keeps its centre: no rows, no derivative.
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1e-30)[:, None], centers)

    _, d_centers = jax.jvp(label_means, (X, w), (dX, dw))
    return centers, d_centers


@functools.partial(jax.jit, static_argnames=("n_clusters", "max_iter", "chunk_size", "tuning"))
@float32_matmuls
def _kmeans(key, X, w, tol, n_clusters, max_iter, chunk_size, tuning):
    center = jax.lax.stop_gradient(_rows.robust_center(X, w, missing=False))  # kmeans refuses NaN
    centers = kmeans_plusplus(key, X, w, n_clusters, chunk_size, tuning) - center[None]
    tol = _kmeans_tolerance(X, w, tol, center, chunk_size)
    chunk_size = _lloyd_chunks(chunk_size, n_clusters * X.shape[1], n_clusters)  # sized for K x D (kmeans)
    centers = _lloyd(X, w, centers, max_iter, tol, chunk_size, center, tuning)
    labels = _rows.map_over_rows(lambda Xc: _nearest(Xc, centers, tuning), X, chunk_size, center)
    return _as_label_means(X, w, centers, center, chunk_size, tuning) + center[None], labels


def kmeans(key, X, n_clusters: int, *, sample_weight=None, max_iter: int = 300, tol: float = 1e-4):
    """k-means clustering: k-means++ seeding, then Lloyd iterations, all in JAX.

    Args:
      key: PRNG key.
      X: ``(n_samples, n_features)`` data.
      n_clusters: number of clusters, ``1 <= n_clusters <= n_samples``.
      sample_weight: optional ``(n_samples,)`` non-negative weights.
      max_iter: maximum number of Lloyd iterations.
      tol: stop when the squared movement of the centres is below ``tol``
        times the mean feature variance (scikit-learn's convention).

    Returns:
      ``(centers (n_clusters, n_features), labels (n_samples,))``.

    Derivatives (``jax.grad``, ``jax.jacfwd``) of the centres with respect to
    ``X`` and ``sample_weight`` are those of the weighted mean of the rows
    assigned to each centre, with the assignment held fixed: the derivative
    of the converged clustering wherever no row is on the boundary between
    two clusters. The seeding and the assignments carry no derivative.

    Example:
      >>> import jax, jax.numpy as jnp, gmm_jax as gmm
      >>> X = jnp.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
      >>> centers, labels = gmm.kmeans(jax.random.key(0), X, 2)
      >>> bool(labels[0] == labels[1]) and bool(labels[2] == labels[3]) and bool(labels[0] != labels[2])
      True
    """
    _validation.check_key(key)
    X = _validation.check_data(X)
    n_clusters = _validation.check_int(n_clusters, "n_clusters", 1)
    if n_clusters > X.shape[0]:
        raise ValueError(f"n_clusters={n_clusters} must be <= n_samples={X.shape[0]}.")
    max_iter = _validation.check_int(max_iter, "max_iter", 0)
    tol = _validation.check_scalar_option(tol, "tol", X.dtype)
    w = _validation.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    tuning = _tuning.for_data(X)
    chunk = _pass.chunk_rows(X.shape[0], n_clusters, X.shape[1], None, tuning)
    return _kmeans(key, X, w, tol, n_clusters, max_iter, chunk, tuning)


def _params_from_labels(X, w, centers, covariance_type, reg_covar, chunk_size, center, tuning, active=None,
                        prior=None) -> GMMParams:  # fmt: skip
    """M-step from hard assignments of every row to its nearest centre (centred coordinates).

    The sums are the EM pass's own with one-hot responsibilities, taken
    around the centres: the same fast kernels, and moments around each row's
    own centre.
    """

    def responsibilities(Xc, wc, _):
        return _hard_responsibilities(_nearest(Xc, centers, tuning, active), wc, centers.shape[0])

    stats = _pass.statistics_from_responsibilities(
        responsibilities, X, w, centers, covariance_type, tuning, chunk_size, center)  # fmt: skip
    return _em.params_from_statistics(stats, centers, covariance_type, reg_covar, prior=prior, active=active)


def _params_from_random_resp(key, X, w, n_components, covariance_type, reg_covar, chunk_size, center, tuning,
                             active=None, prior=None):  # fmt: skip
    """M-step from uniformly random soft responsibilities (scikit-learn's ``init_params='random'``)."""
    shift = jnp.zeros((n_components, X.shape[1]), X.dtype)  # every mean starts near the data mean

    def responsibilities(Xc, wc, offset):
        # One draw per row, keyed by the row's index: the same start whatever
        # the chunking, the device layout or zero-weight padding rows, and the
        # first K' entries of a row are those of a K'-component start.
        rows = offset + jnp.arange(Xc.shape[0], dtype=jnp.int32)
        u = jax.vmap(lambda n: jax.random.uniform(jax.random.fold_in(key, n), (n_components,), Xc.dtype))(rows).T
        if active is not None:
            u = jnp.where(active[:, None], u, 0.0)
        return u / jnp.sum(u, axis=0, keepdims=True) * wc[None, :]

    stats = _pass.statistics_from_responsibilities(
        responsibilities, X, w, shift, covariance_type, tuning, chunk_size, center)  # fmt: skip
    return _em.params_from_statistics(stats, shift, covariance_type, reg_covar, prior=prior, active=active)


CENTER_INITS = ("kmeans", "k-means++")  # the starts from centres that depend on the data alone (start_centers)


def start_centers(key, X, w, n_components, init, chunk_size, pass_type, center, tuning, n_active=None):
    """``(n_components, D)``: the centres an ``init`` of :data:`CENTER_INITS` starts from, centred at ``center``.

    k-means++ seeding, then for ``"kmeans"`` up to 100 Lloyd iterations (tol
    1e-4 of the data's variance, scikit-learn's). Nothing here depends on the
    covariance type but the chunking: ``chunk_size`` is sized for the pass of
    type ``pass_type``. So a selection computes these once for all its
    covariance types (``_select``) and passes them to :func:`initialize`.
    ``n_active`` (traced): only the first ``n_active`` centres, as in
    :func:`kmeans_plusplus`.
    """
    centers = kmeans_plusplus(key, X, w, n_components, chunk_size, tuning, n_active) - center[None]
    if init == "k-means++":
        return centers
    tol = _kmeans_tolerance(X, w, 1e-4, center, chunk_size)
    active = None if n_active is None else jnp.arange(n_components) < n_active
    pass_width = _pass.pass_for(pass_type, tuning, X.shape[0]).width(n_components, X.shape[1])
    chunks = _lloyd_chunks(chunk_size, pass_width, n_components)
    return _lloyd(X, w, centers, 100, tol, chunks, center, tuning, active)


def initialize(key, X, w, n_components, covariance_type, init, reg_covar, chunk_size, center, tuning,
               n_active=None, prior=None, hierarchy=None, centers=None) -> GMMParams:  # fmt: skip
    """Starting parameters by the method ``init``, in coordinates centred at ``center``.

    Traceable; ``n_components``, ``covariance_type``, ``init``,
    ``chunk_size`` and ``tuning`` are static. With ``n_active`` (traced,
    ``<= n_components``), only the first ``n_active`` components are
    initialised, exactly as a start of ``n_active`` components would be; the
    others get weight 0 (``_em.mask_components``): model selection fits every
    ``K`` in one program this way. With a ``prior`` (centred like the result)
    the M-step from the starting responsibilities is the MAP one, as mclust's.
    ``init="hierarchical"`` cuts ``hierarchy`` (a ``_hierarchical.Tree``,
    built here from ``key`` when None: pass one to cut a tree at several K).
    ``centers``: for an ``init`` of :data:`CENTER_INITS`, its centres when
    already computed (:func:`start_centers`, centred), else None.
    """
    if center is None:
        center = jnp.zeros((X.shape[1],), X.dtype)
    active = None if n_active is None else jnp.arange(n_components) < n_active
    if init == "hierarchical":
        if hierarchy is None:
            hierarchy = _hierarchical.tree(key, X, w, chunk_size)
        params = _hierarchical.start(hierarchy, X, w, n_components, covariance_type, reg_covar, center, tuning,
                                     chunk_size, n_active, prior)  # fmt: skip
        return params if active is None else _em.mask_components(params, active)
    if init == "random":
        params = _params_from_random_resp(key, X, w, n_components, covariance_type, reg_covar, chunk_size, center,
                                          tuning, active, prior)  # fmt: skip
        return params if active is None else _em.mask_components(params, active)
    if init == "random_from_data":
        # Distinct rows with positive weight as means; every row joins its nearest one.
        idx = _sample_distinct(key, w, n_components, chunk_size)
        centers = _rows.take_rows(jax.lax.stop_gradient(X), idx, chunk_size) - center[None]
    elif init in CENTER_INITS:
        if centers is None:
            centers = start_centers(key, X, w, n_components, init, chunk_size, covariance_type, center, tuning, n_active)
    else:
        raise ValueError(f"init must be one of {_validation.INITS}, got {init!r}.")
    params = _params_from_labels(X, w, centers, covariance_type, reg_covar, chunk_size, center, tuning, active, prior)
    return params if active is None else _em.mask_components(params, active)
