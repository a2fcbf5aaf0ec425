"""Hierarchical starts for EM, as mclust's ``hc`` (a prototype, not wired into ``fit``).

mclust starts EM from model-based hierarchical agglomeration (``hc``): every
point begins as its own cluster and the pair whose merge costs the least
classification likelihood is merged, ``N - 1`` times; cutting the tree at
``K`` clusters gives the starting classification for every ``K`` at once.
mclust's default criterion is the ``VVV`` one (:func:`vvv_merges`, its
``hcVVV``, regularised by ``alpha`` and ``beta`` while clusters are small);
for the spherical equal-volume model (``EII``) the cost is Ward's,
``n_i n_j / (n_i + n_j) |c_i - c_j|^2`` (:func:`ward_merges`). Like mclust's
default (``hcUse = "SVD"``) the agglomeration runs on the data standardised
and whitened by its singular value decomposition, ``Z = X_std V D^(-1/2)``,
so it does not depend on the units of the features.

Everything is JAX: each agglomeration is one ``lax.fori_loop`` over the
``N - 1`` merges on an ``(N, N)`` matrix of merge costs (``O(N^2)`` memory,
so meant for the few thousand rows mclust also subsamples to), ``labels_at``
replays the first ``N - K`` merges, and ``initial_params`` applies the
M-step (the MAP one with a prior) to the resulting classification.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gmm_jax import _em, _pass, _tuning
from gmm_jax._params import GMMParams

__all__ = ["whiten", "ward_merges", "vvv_merges", "labels_at", "initial_params"]


def whiten(X) -> jax.Array:
    """mclust's ``"SVD"`` transformation: standardised columns times ``V D^(-1/2)``: ``(N, min(N, D))``."""
    centred = X - jnp.mean(X, axis=0)[None, :]
    std = jnp.std(X, axis=0, ddof=1)
    Xs = centred / jnp.where(std > 0, std, 1.0)[None, :]
    _, s, vt = jnp.linalg.svd(Xs, full_matrices=False)
    return Xs @ vt.T / jnp.sqrt(jnp.where(s > 0, s, 1.0))[None, :]


@jax.jit
def ward_merges(Z) -> jax.Array:
    """The ``N - 1`` merges of Ward agglomeration of the rows of ``Z``: ``(N - 1, 2)`` ints.

    Row ``t`` is ``(i, j)``: cluster ``j`` was merged into cluster ``i``
    (clusters are named by one of their rows). Ties go to the lowest flat
    index, so the result is deterministic.
    """
    n = Z.shape[0]
    dtype = Z.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    sq = jnp.sum(Z * Z, axis=1)
    dist = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0)
    cost = 0.5 * dist  # n_i n_j / (n_i + n_j) = 1/2 for singletons
    eye = jnp.eye(n, dtype=bool)
    cost = jnp.where(eye, inf, cost)

    def merge(t, state):
        cost, centres, sizes, merges = state
        flat = jnp.argmin(cost)
        a, b = flat // n, flat % n
        i, j = jnp.minimum(a, b), jnp.maximum(a, b)
        ni, nj = sizes[i], sizes[j]
        centre = (ni * centres[i] + nj * centres[j]) / (ni + nj)
        centres = centres.at[i].set(centre)
        sizes = sizes.at[i].set(ni + nj).at[j].set(0.0)
        alive = sizes > 0
        d = jnp.sum((centres - centre[None, :]) ** 2, axis=1)
        row = sizes * (ni + nj) / (sizes + ni + nj) * d
        row = jnp.where(alive & (jnp.arange(n) != i), row, inf)
        cost = cost.at[i, :].set(row).at[:, i].set(row)
        cost = cost.at[j, :].set(inf).at[:, j].set(inf)
        merges = merges.at[t].set(jnp.stack([i, j]).astype(jnp.int32))
        return cost, centres, sizes, merges

    init = (cost, Z, jnp.ones((n,), dtype), jnp.zeros((n - 1, 2), jnp.int32))
    return jax.lax.fori_loop(0, n - 1, merge, init)[3]


def _vvv_term(n, scatter, trace, alpha, beta):
    """mclust's ``vvvtij``: ``n log(det(W / n) [n > D] + beta (tr W + alpha) / n)`` of clusters ``(...)``."""
    d = scatter.shape[-1]
    sign, logdet = jnp.linalg.slogdet(scatter / n[..., None, None])
    det = jnp.where((n > d) & (sign > 0), jnp.exp(logdet), 0.0)
    return n * jnp.log(det + beta * (trace + alpha) / n)


@jax.jit
def vvv_merges(Z, alpha_factor=1.0, beta=1.0) -> jax.Array:
    """The ``N - 1`` merges of mclust's model-based agglomeration for the ``VVV`` model (``hcVVV``).

    A cluster of ``n`` rows with scatter ``W`` costs ``n log(det(W / n) + beta
    (tr W + alpha) / n)`` (the determinant only once ``n > D``; mclust's
    ``vvvtij``), with ``alpha = alpha_factor * tr(W_total) / (N D)`` as mclust's
    ``hcVVV(alpha = 1, beta = 1)``. Each step merges the pair that increases
    the total cost least. ``O(N^2)`` memory and ``O(N^2 D^3)`` work.

    Returns:
      ``(N - 1, 2)`` ints, as :func:`ward_merges`.
    """
    n_rows, d = Z.shape
    dtype = Z.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    centred = Z - jnp.mean(Z, axis=0)[None, :]
    alpha = jnp.maximum(alpha_factor * jnp.sum(centred * centred) / (n_rows * d), jnp.finfo(dtype).eps)
    single = jnp.log(alpha * beta)  # the cost of a one-row cluster
    diff = Z[:, None, :] - Z[None, :, :]  # (N, N, D): pairs of singletons
    pair_scatter = 0.5 * diff[..., :, None] * diff[..., None, :]
    pair_trace = 0.5 * jnp.sum(diff * diff, axis=-1)
    two = jnp.full((n_rows, n_rows), 2.0, dtype)
    cost = _vvv_term(two, pair_scatter, pair_trace, alpha, beta) - 2 * single
    cost = jnp.where(jnp.eye(n_rows, dtype=bool), inf, cost)

    def merge(t, state):
        cost, centres, scatters, sizes, terms, merges = state
        flat = jnp.argmin(cost)
        a, b = flat // n_rows, flat % n_rows
        i, j = jnp.minimum(a, b), jnp.maximum(a, b)
        ni, nj = sizes[i], sizes[j]
        dc = centres[i] - centres[j]
        scatter = scatters[i] + scatters[j] + (ni * nj / (ni + nj)) * dc[:, None] * dc[None, :]
        centre = (ni * centres[i] + nj * centres[j]) / (ni + nj)
        size = ni + nj
        term = _vvv_term(size, scatter, jnp.trace(scatter), alpha, beta)
        centres = centres.at[i].set(centre)
        scatters = scatters.at[i].set(scatter)
        sizes = sizes.at[i].set(size).at[j].set(0.0)
        terms = terms.at[i].set(term)
        # The merged cluster against every other one.
        alive = sizes > 0
        dm = centres - centre[None, :]
        other = jnp.where(alive, sizes, 1.0)
        joint = scatters + scatter[None] + (other * size / (other + size))[:, None, None] * dm[:, :, None] * dm[:, None, :]
        row = _vvv_term(other + size, joint, jnp.trace(joint, axis1=-2, axis2=-1), alpha, beta) - terms - term
        row = jnp.where(alive & (jnp.arange(n_rows) != i), row, inf)
        cost = cost.at[i, :].set(row).at[:, i].set(row)
        cost = cost.at[j, :].set(inf).at[:, j].set(inf)
        merges = merges.at[t].set(jnp.stack([i, j]).astype(jnp.int32))
        return cost, centres, scatters, sizes, terms, merges

    init = (
        cost, Z, jnp.zeros((n_rows, d, d), dtype), jnp.ones((n_rows,), dtype),
        jnp.full((n_rows,), single, dtype), jnp.zeros((n_rows - 1, 2), jnp.int32),
    )  # fmt: skip
    return jax.lax.fori_loop(0, n_rows - 1, merge, init)[5]


@functools.partial(jax.jit, static_argnames=("n_clusters",))
def labels_at(merges, n_clusters: int) -> jax.Array:
    """Labels ``0..K-1`` of the ``N`` rows after the first ``N - K`` merges: ``(N,)`` ints."""
    n = merges.shape[0] + 1

    def step(t, owner):
        i, j = merges[t, 0], merges[t, 1]
        return jnp.where(owner == j, i, owner)

    owner = jax.lax.fori_loop(0, n - n_clusters, step, jnp.arange(n, dtype=jnp.int32))
    heads = jnp.unique(owner, size=n_clusters)
    return jnp.searchsorted(heads, owner).astype(jnp.int32)


def initial_params(
    X, n_components: int, covariance_type: str, *, prior=None, reg_covar=1e-6, merges=None, method="vvv"
) -> GMMParams:
    """Starting parameters from the hierarchical tree cut at ``n_components`` clusters.

    Args:
      X: ``(N, D)`` data.
      n_components: K.
      covariance_type: the type of the mixture to start.
      prior: optional ``ConjugatePrior``: the M-step from the classification
        is then the MAP one.
      reg_covar: added to the covariance diagonal.
      merges: ``vvv_merges(whiten(X))`` (or ``ward_merges``) computed once
        and reused across K.
      method: ``"vvv"`` (mclust's default ``hcVVV``) or ``"ward"`` (``hcEII``).

    Returns:
      ``GMMParams`` to pass to ``gmm.fit(..., init_params=...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gmm_jax import _hierarchical
      >>> X = jnp.concatenate([jax.random.normal(jax.random.key(0), (20, 2)) - 5,
      ...                      jax.random.normal(jax.random.key(1), (20, 2)) + 5])
      >>> p = _hierarchical.initial_params(X, 2, "full")
      >>> sorted(p.means[:, 0].round().astype(int).tolist())
      [-5, 5]
    """
    X = jnp.asarray(X)
    if merges is None:
        merges = {"vvv": vvv_merges, "ward": ward_merges}[method](whiten(X))
    labels = labels_at(merges, n_components)
    resp = (labels[:, None] == jnp.arange(n_components)[None, :]).astype(X.dtype)
    shift = (resp.T @ X) / resp.sum(axis=0)[:, None]  # moments around the class means: exact
    stats = _pass.statistics_from_responsibilities(lambda *_: resp.T, X, jnp.ones(X.shape[0], X.dtype), shift,
                                                   covariance_type, _tuning.for_data(X))  # fmt: skip
    if prior is not None:
        prior = prior.astype(X.dtype)
    return _em.params_from_statistics(stats, shift, covariance_type, jnp.asarray(reg_covar, X.dtype), prior=prior)
