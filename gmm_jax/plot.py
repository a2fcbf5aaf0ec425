"""Matplotlib helpers for looking at data and fitted Gaussian mixtures.

Every function draws onto the ``ax`` it is given (or a new figure when
``ax`` is None) and returns it, so plots compose::

    fig, (left, right) = plt.subplots(1, 2)
    gmm.plot.plot_data(X, labels, means=true_params.means, ax=left)
    gmm.plot.plot_density(result.params, X, ax=right)

Data with more than two features is shown on a pair of features chosen with
``features=(i, j)``. The mixture drawn there is the exact marginal of the
fitted mixture on those features (see :func:`marginal`), not a refit.

Component ``k`` is drawn in matplotlib's cycle colour ``"C{k}"`` everywhere,
so the same component has the same colour in every panel. This module is
imported on first use of ``gmm_jax.plot``, so ``import gmm_jax`` does not
pull in matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator

from gmm_jax import GMMParams, _covariance, log_prob
from gmm_jax.metrics import clustering_accuracy

__all__ = [
    "marginal",
    "plot_data",
    "plot_density",
    "plot_label_comparison",
    "plot_log_likelihood",
]


def marginal(params: GMMParams, features: Sequence[int]) -> GMMParams:
    """The mixture's marginal distribution over a subset of features.

    The marginal of a Gaussian mixture is a Gaussian mixture with the same
    weights, whose components keep the chosen entries of each mean and the
    chosen rows and columns of each covariance. The covariance type is kept.

    Args:
      params: a mixture over ``n_features`` features.
      features: indices of the features to keep, in the order wanted;
        distinct, each in ``[0, n_features)``.

    Returns:
      ``GMMParams`` over ``len(features)`` features.

    Raises:
      ValueError: if ``features`` is empty, repeats an index or is out of range.

    Example:
      >>> import gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     [0.3, 0.7], [[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]],
      ...     [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], covariance_type="diag")
      >>> m = gmm.plot.marginal(params, (2, 0))
      >>> m.means.tolist(), m.covariances.tolist()
      ([[2.0, 0.0], [7.0, 5.0]], [[3.0, 1.0], [6.0, 4.0]])
    """
    idx = _check_features(features, params.n_features, at_least=1)
    sub = _covariance.select_features(params.covariances, params.covariance_type, jnp.asarray(idx))
    return GMMParams.from_covariances(
        params.weights, params.means[:, idx], sub,
        covariance_type=params.covariance_type)


def plot_data(
    X: Any,
    labels: Any = None,
    *,
    means: Any = None,
    features: Sequence[int] = (0, 1),
    ax: Any = None,
    title: str | None = None,
    s: float = 12.0,
    alpha: float = 0.6,
) -> Any:
    """Scatter plot of data, coloured by label, with component means marked.

    Args:
      X: (n_samples, n_features) data, at least two features.
      labels: optional (n_samples,) integer labels; point ``i`` is drawn in
        colour ``"C{labels[i]}"``. Without labels every point is grey.
      means: optional (n_components, n_features) means, drawn as stars in
        the colour of their component, e.g. ``params.means``.
      features: the two features to plot, as (x-axis, y-axis) indices.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      title: axes title.
      s: marker size of the data points.
      alpha: opacity of the data points.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import numpy as np
      >>> import gmm_jax as gmm
      >>> X = np.array([[0.0, 0.1], [0.2, -0.1], [3.0, 3.1], [2.9, 3.2]])
      >>> fig, ax = plt.subplots()
      >>> ax = gmm.plot.plot_data(X, [0, 0, 1, 1], means=[[0.1, 0.0], [3.0, 3.1]],
      ...                         ax=ax, title="two clusters")
      >>> len(ax.collections)  # one scatter per label, one per mean
      4
      >>> plt.close(fig)
    """
    X = _as_data(X, "X")
    i, j = _check_features(features, X.shape[1], at_least=2, exactly=2)
    ax = _axes(ax)
    if labels is None:
        ax.scatter(X[:, i], X[:, j], s=s, alpha=alpha, color="0.5",
                   linewidths=0, label="data")
    else:
        labels = _as_labels(labels, X.shape[0])
        for k in np.unique(labels):
            mask = labels == k
            ax.scatter(X[mask, i], X[mask, j], s=s, alpha=alpha,
                       color=_colour(k), linewidths=0,
                       label=f"component {k} ({mask.sum()} points)")
    if means is not None:
        means = _as_data(means, "means")
        if means.shape[1] != X.shape[1]:
            raise ValueError(
                f"means has {means.shape[1]} features but X has "
                f"{X.shape[1]}; pass means of shape (n_components, "
                f"{X.shape[1]})")
        for k, mean in enumerate(means):
            ax.scatter(mean[i], mean[j], marker="*", s=260, color=_colour(k),
                       edgecolors="black", linewidths=1.2, zorder=4)
    _decorate(ax, (i, j), title)
    if labels is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_density(
    params: GMMParams,
    X: Any = None,
    *,
    labels: Any = None,
    features: Sequence[int] = (0, 1),
    ax: Any = None,
    levels: int = 8,
    n_std: Sequence[float] = (1.0, 2.0),
    colors: Sequence[Any] | None = None,
    grid_size: int = 120,
    title: str | None = None,
) -> Any:
    """Contours of a mixture's density, with an ellipse per component.

    Draws the data (grey, or coloured by ``labels``), contour lines of the
    mixture density, and for each component ellipses at ``n_std`` standard
    deviations around its mean plus a star at the mean. With more than two
    features the marginal mixture on ``features`` is drawn.

    Args:
      params: the mixture to draw.
      X: optional (n_samples, n_features) data drawn underneath; it also
        sets the plotted range (otherwise the means ± 3 standard deviations).
      labels: optional (n_samples,) integer labels used to colour ``X``.
      features: the two features to plot, as (x-axis, y-axis) indices.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      levels: number of density contour levels.
      n_std: radii of the covariance ellipses, in standard deviations.
      colors: one matplotlib colour per component; default ``"C{k}"``.
      grid_size: density grid points per axis.
      title: axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import gmm_jax as gmm
      >>> params = gmm.GMMParams.from_covariances(
      ...     [0.5, 0.5], [[0.0, 0.0], [3.0, 1.0]],
      ...     [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.4]]])
      >>> fig, ax = plt.subplots()
      >>> ax = gmm.plot.plot_density(params, ax=ax, n_std=(2.0,))
      >>> len(ax.patches)  # one ellipse per component
      2
      >>> plt.close(fig)
    """
    n_features = params.n_features
    i, j = _check_features(features, n_features, at_least=2, exactly=2)
    if (i, j) != (0, 1) or n_features != 2:
        params = marginal(params, (i, j))
    if colors is None:
        colors = [_colour(k) for k in range(params.n_components)]
    elif len(colors) != params.n_components:
        raise ValueError(
            f"colors has {len(colors)} entries but the mixture has "
            f"{params.n_components} components; pass one colour per component")
    ax = _axes(ax)
    covariances = _dense_covariances(params)             # (K, 2, 2)
    means = np.asarray(params.means, dtype=np.float64)   # (K, 2)
    weights = np.asarray(params.weights, dtype=np.float64)

    if X is not None:
        X = _as_data(X, "X")
        if X.shape[1] != n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but params has {n_features}; "
                "pass the data the mixture was fitted to")
        xy = X[:, [i, j]]
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.4, color="0.45",
                       linewidths=0)
        else:
            labels = _as_labels(labels, X.shape[0])
            ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.4, linewidths=0,
                       color=[colors[k % len(colors)] for k in labels])
        low, high = xy.min(axis=0), xy.max(axis=0)
        pad = 0.08 * np.maximum(high - low, 1e-12)
        low, high = low - pad, high + pad
    else:
        spread = 3.0 * np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
        low, high = (means - spread).min(axis=0), (means + spread).max(axis=0)

    gx = np.linspace(low[0], high[0], grid_size)
    gy = np.linspace(low[1], high[1], grid_size)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    grid = jnp.asarray(grid, dtype=params.means.dtype)
    density = np.exp(np.asarray(log_prob(params, grid))).reshape(xx.shape)
    ax.contour(xx, yy, density, levels=levels, cmap="viridis",
               linewidths=0.9, alpha=0.9)

    for k in range(params.n_components):
        values, vectors = np.linalg.eigh(covariances[k])
        values = np.clip(values, 0.0, None)
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        for m, r in enumerate(n_std):
            ax.add_patch(Ellipse(
                means[k], width=2 * r * np.sqrt(values[-1]),
                height=2 * r * np.sqrt(values[0]), angle=angle, fill=False,
                edgecolor=colors[k], linewidth=2.0 if m == 0 else 1.2,
                linestyle="-" if m == 0 else "--",
                label=f"component {k} (weight {weights[k]:.2f})"
                if m == 0 else None))
        ax.scatter(means[k, 0], means[k, 1], marker="*", s=260,
                   color=colors[k], edgecolors="black", linewidths=1.2,
                   zorder=4)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    _decorate(ax, (i, j), title)
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_log_likelihood(
    log_likelihood: Any,
    *,
    n_iter: Any = None,
    converged: Any = None,
    ax: Any = None,
    title: str | None = "EM log-likelihood",
) -> Any:
    """The EM log-likelihood trace, one point per iteration.

    ``fit`` returns a trace of length ``max_iter`` whose entries after
    convergence repeat the final value; only the first ``n_iter`` entries
    are drawn. Pass a ``FitResult`` to take ``n_iter`` and ``converged``
    from it, or a 2-D array of traces (one row per fit, e.g. from
    ``jax.vmap(fit)``) to overlay them.

    Args:
      log_likelihood: a ``FitResult``, or a (max_iter,) or (n_fits, max_iter)
        array of mean per-sample log-likelihoods.
      n_iter: iterations run (scalar, or one per row); all entries when None.
      converged: whether the fit converged, used to annotate a single trace.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      title: axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import gmm_jax as gmm
      >>> fig, ax = plt.subplots()
      >>> ax = gmm.plot.plot_log_likelihood([-3.0, -2.5, -2.4, -2.4, -2.4],
      ...                                   n_iter=3, converged=True, ax=ax)
      >>> ax.lines[0].get_xdata().tolist()
      [1, 2, 3]
      >>> plt.close(fig)
    """
    if hasattr(log_likelihood, "log_likelihood"):  # a FitResult
        result = log_likelihood
        log_likelihood = result.log_likelihood
        n_iter = result.n_iter if n_iter is None else n_iter
        converged = result.converged if converged is None else converged
    traces = np.asarray(log_likelihood, dtype=np.float64)
    if traces.ndim not in (1, 2) or traces.shape[-1] == 0:
        raise ValueError(
            f"log_likelihood has shape {traces.shape}; pass a FitResult, a "
            "(max_iter,) trace or an (n_fits, max_iter) stack of traces")
    single = traces.ndim == 1
    traces = np.atleast_2d(traces)
    if n_iter is None:
        n_iter = np.full(traces.shape[0], traces.shape[1])
    n_iter = np.broadcast_to(np.asarray(n_iter, dtype=np.int64).reshape(-1),
                             (traces.shape[0],))
    ax = _axes(ax)
    for row, n in zip(traces, n_iter):
        n = int(np.clip(n, 1, traces.shape[1]))
        ax.plot(np.arange(1, n + 1), row[:n], marker="o" if single else None,
                markersize=3, linewidth=1.8 if single else 1.0,
                color="C0" if single else None, alpha=1.0 if single else 0.6)
    if single and converged is not None:
        n = int(n_iter[0])
        text = (f"converged after {n} iterations" if bool(converged)
                else f"not converged after {n} iterations")
        ax.annotate(text, xy=(0.97, 0.05), xycoords="axes fraction",
                    ha="right", va="bottom", fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Late iterations change the value in the 4th decimal; an offset label
    # ("-2.601 + 1e-4") would hide the actual level.
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("mean log-likelihood per sample")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_label_comparison(
    X: Any,
    true_labels: Any,
    pred_labels: Any,
    *,
    features: Sequence[int] = (0, 1),
    ax: Any = None,
    mark_errors: bool = True,
) -> Any:
    """True and learned labels side by side, components matched up.

    EM numbers its components arbitrarily, so predicted labels are first
    renamed to the true labels they best agree with
    (:func:`gmm_jax.metrics.clustering_accuracy`); matched components then
    share a colour. Points whose matched label is wrong are circled.

    Args:
      X: (n_samples, n_features) data, at least two features.
      true_labels: (n_samples,) integer labels of the generating components.
      pred_labels: (n_samples,) integer labels from ``gmm_jax.predict``.
      features: the two features to plot, as (x-axis, y-axis) indices.
      ax: a pair of matplotlib Axes (true, learned); a new 1×2 figure is
        made when None.
      mark_errors: circle the points assigned to the wrong component.

    Returns:
      The pair of Axes drawn on, (true, learned).

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import numpy as np
      >>> import gmm_jax as gmm
      >>> X = np.array([[0.0, 0.0], [0.1, 0.2], [3.0, 3.0], [3.1, 2.9]])
      >>> fig, axes = plt.subplots(1, 2)
      >>> axes = gmm.plot.plot_label_comparison(X, [0, 0, 1, 1], [1, 1, 0, 0],
      ...                                       ax=axes)
      >>> axes[1].get_title()
      'learned components (accuracy 100.0%)'
      >>> plt.close(fig)
    """
    X = _as_data(X, "X")
    true_labels = _as_labels(true_labels, X.shape[0], "true_labels")
    pred_labels = _as_labels(pred_labels, X.shape[0], "pred_labels")
    accuracy, mapping = clustering_accuracy(true_labels, pred_labels)
    mapping = np.array(mapping)
    # With more learned than true components some stay unmatched (-1):
    # give them labels (and colours) of their own after the true ones.
    unmatched = np.flatnonzero(mapping < 0)
    mapping[unmatched] = true_labels.max() + 1 + np.arange(unmatched.size)
    matched = mapping[pred_labels]
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True,
                             layout="constrained")
    if len(ax) != 2:
        raise ValueError(
            f"ax must be a pair of Axes (true, learned), got {len(ax)}")
    ax_true, ax_learned = ax[0], ax[1]
    plot_data(X, true_labels, features=features, ax=ax_true,
              title="true components")
    plot_data(X, matched, features=features, ax=ax_learned,
              title=f"learned components (accuracy {float(accuracy):.1%})")
    wrong = matched != true_labels
    if mark_errors and wrong.any():
        i, j = _check_features(features, X.shape[1], at_least=2, exactly=2)
        ax_learned.scatter(X[wrong, i], X[wrong, j], s=60, facecolors="none",
                           edgecolors="black", linewidths=0.9,
                           label=f"misassigned ({wrong.sum()})")
        ax_learned.legend(loc="best", fontsize="small")
    return ax


# --------------------------------------------------------------------------
# helpers


def _colour(k: int) -> str:
    return f"C{int(k) % 10}"


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt  # only when the caller wants a figure
        _, ax = plt.subplots(layout="constrained")
    return ax


def _as_data(X: Any, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"{name} has shape {X.shape}; expected (n_samples, n_features)")
    return X


def _as_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} has shape {labels.shape} and dtype {labels.dtype}; "
            f"expected ({n},) integers, one per sample")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must be non-negative component indices")
    return labels


def _check_features(features: Sequence[int], n_features: int, *,
                    at_least: int, exactly: int | None = None) -> np.ndarray:
    idx = np.asarray(features)
    if (idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer)
            or idx.size < at_least or (exactly and idx.size != exactly)):
        want = f"{exactly}" if exactly else f"at least {at_least}"
        raise ValueError(
            f"features={features!r}: expected {want} feature indices")
    if n_features < at_least:
        raise ValueError(
            f"the data has {n_features} feature(s); this plot needs at least "
            f"{at_least}")
    if idx.min() < 0 or idx.max() >= n_features or len(set(idx.tolist())) != idx.size:
        raise ValueError(
            f"features={tuple(idx.tolist())}: indices must be distinct and in "
            f"[0, {n_features}) for data with {n_features} features")
    return idx


def _dense_covariances(params: GMMParams) -> np.ndarray:
    """Every covariance type as (n_components, n_features, n_features)."""
    dense = _covariance.dense_covariances(
        params.covariances, params.covariance_type, params.n_components, params.n_features)
    return np.asarray(dense, dtype=np.float64)


def _decorate(ax: Any, features: tuple, title: str | None) -> None:
    ax.set_xlabel(f"$x_{{{int(features[0])}}}$")
    ax.set_ylabel(f"$x_{{{int(features[1])}}}$")
    if title:
        ax.set_title(title)
