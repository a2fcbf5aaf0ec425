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
so the same component has the same colour in every panel. Data-space plots
use equal scales on both axes (a round cluster looks round) unless the two
features' ranges differ more than tenfold, as features in different units
do; pass ``aspect=`` to choose. This module is imported on first use of
``gmm_jax.plot``, so ``import gmm_jax`` does not pull in matplotlib, which
is an optional dependency: ``pip install "gmm-jax[plot]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

try:
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse
    from matplotlib.ticker import MaxNLocator
except ImportError as e:  # matplotlib is the optional [plot] extra
    raise ImportError(
        "gmm_jax.plot needs matplotlib, which is not installed: "
        'pip install "gmm-jax[plot]" (or pip install matplotlib)') from e

from gmm_jax import GMMParams, _covariance, log_prob
from gmm_jax.metrics import clustering_accuracy

__all__ = [
    "marginal",
    "plot_criterion",
    "plot_data",
    "plot_density",
    "plot_label_comparison",
    "plot_log_likelihood",
    "selection",
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
      >>> m.means.tolist(), m.covariances.round(6).tolist()
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
    feature_names: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    s: float = 12.0,
    alpha: float = 0.6,
    aspect: str | float | None = None,
) -> Any:
    """Scatter plot of data, coloured by label, with component means marked.

    Args:
      X: (n_samples, n_features) data, at least two features.
      labels: optional (n_samples,) integer labels; point ``i`` is drawn in
        colour ``"C{labels[i]}"``. Without labels every point is grey.
      means: optional (n_components, n_features) means, drawn as stars in
        the colour of their component, e.g. ``params.means``.
      features: the two features to plot, as (x-axis, y-axis) indices.
      feature_names: optional (n_features,) names for the axis labels;
        ``x_i`` when None.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      title: axes title.
      s: marker size of the data points.
      alpha: opacity of the data points.
      aspect: ``"equal"``, ``"auto"`` or a number, as matplotlib's
        ``set_aspect``; None: equal unless the ranges differ tenfold.

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
      >>> len(ax.collections), ax.get_aspect()  # a scatter per label and per mean
      (4, 1.0)
      >>> plt.close(fig)
    """
    X = _as_data(X, "X")
    i, j = _check_features(features, X.shape[1], at_least=2, exactly=2)
    names = _check_names(feature_names, X.shape[1])
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
    _decorate(ax, (i, j), names, title)
    _set_aspect(ax, aspect, np.ptp(X[:, [i, j]], axis=0) if len(X) else None)
    if labels is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_density(
    params: GMMParams,
    X: Any = None,
    *,
    labels: Any = None,
    features: Sequence[int] = (0, 1),
    feature_names: Sequence[str] | None = None,
    ax: Any = None,
    levels: int = 4,
    n_std: Sequence[float] = (1.0, 2.0),
    colors: Sequence[Any] | None = None,
    filled: bool = False,
    cmap: str = "Greys",
    grid_size: int = 120,
    title: str | None = None,
    aspect: str | float | None = None,
) -> Any:
    """Each component's density contours and ellipses, over the data.

    Draws the data (grey, or coloured by ``labels``); for each component, in
    its colour, ``levels`` contour lines of its weighted density
    ``w_k N(x | mu_k, Sigma_k)`` (levels at fixed fractions of that
    component's peak, so a light component gets as many lines as a heavy
    one), ellipses at ``n_std`` standard deviations and a star at the mean.
    With ``filled=True`` the mixture density lies underneath as filled
    contours on a logarithmic scale, with a colorbar. With more than two
    features the marginal mixture on ``features`` is drawn. The legend names
    every component and every line style.

    Args:
      params: the mixture to draw.
      X: optional (n_samples, n_features) data drawn underneath; it also
        sets the plotted range (otherwise the means ± 3 standard deviations).
      labels: optional (n_samples,) integer labels used to colour ``X``.
      features: the two features to plot, as (x-axis, y-axis) indices.
      feature_names: optional (n_features,) names for the axis labels.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      levels: contour lines per component (0 for none).
      n_std: radii of the covariance ellipses, in standard deviations.
      colors: one matplotlib colour per component; default ``"C{k}"``.
      filled: also draw the mixture density as filled contours, with a
        colorbar.
      cmap: colour map of the filled layer; its light end is the background.
      grid_size: density grid points per axis.
      title: axes title.
      aspect: as in :func:`plot_data`.

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
      >>> [t.get_text() for t in ax.get_legend().get_texts()][1:]
      ['component 1 (weight 0.50)', '2σ ellipse', 'density contours']
      >>> plt.close(fig)
    """
    n_features = params.n_features
    i, j = _check_features(features, n_features, at_least=2, exactly=2)
    names = _check_names(feature_names, n_features)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) \
            or levels < 0:
        raise ValueError(f"levels must be an integer >= 0, got {levels!r}")
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
            ax.scatter(xy[:, 0], xy[:, 1], s=10, alpha=0.5, color="0.3",
                       linewidths=0, zorder=1)
        else:
            labels = _as_labels(labels, X.shape[0])
            ax.scatter(xy[:, 0], xy[:, 1], s=10, alpha=0.5, linewidths=0,
                       color=[colors[k % len(colors)] for k in labels],
                       zorder=1)
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

    if filled:
        density = np.exp(np.asarray(log_prob(
            params, jnp.asarray(grid, dtype=params.means.dtype)),
            dtype=np.float64)).reshape(xx.shape)
        top = density.max()
        if top > 0 and np.isfinite(top):
            # Log-spaced levels: linear ones pile up on the heaviest
            # component and leave the tails of the others blank.
            fill_levels = _nice_log_levels(top * 1e-3, top)
            filled_set = ax.contourf(
                xx, yy, np.clip(density, fill_levels[0], None),
                levels=fill_levels, cmap=cmap, norm=LogNorm(), alpha=0.4,
                zorder=0)
            bar = ax.figure.colorbar(filled_set, ax=ax, label="mixture density",
                                     format="%.3g")
            bar.set_ticks(fill_levels[::2] if len(fill_levels) > 8 else fill_levels)

    styles = ("-", "--", ":", "-.")
    for k in range(params.n_components):
        if levels:
            density_k = _weighted_component_density(
                grid, weights[k], means[k], covariances[k]).reshape(xx.shape)
            peak = weights[k] / (2 * np.pi * np.sqrt(
                max(np.linalg.det(covariances[k]), 1e-300)))
            fractions = np.arange(1, levels + 1) / (levels + 1)
            ax.contour(xx, yy, density_k, levels=peak * fractions,
                       colors=[colors[k]], linewidths=0.8, alpha=0.8,
                       linestyles="solid", zorder=2)
        values, vectors = np.linalg.eigh(covariances[k])
        values = np.clip(values, 0.0, None)
        angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
        for m, r in enumerate(n_std):
            ax.add_patch(Ellipse(
                means[k], width=2 * r * np.sqrt(values[-1]),
                height=2 * r * np.sqrt(values[0]), angle=angle, fill=False,
                edgecolor=colors[k], linewidth=2.0 if m == 0 else 1.4,
                linestyle=styles[m % len(styles)], zorder=3))
        ax.scatter(means[k, 0], means[k, 1], marker="*", s=260,
                   color=colors[k], edgecolors="black", linewidths=1.2,
                   zorder=4)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    _decorate(ax, (i, j), names, title)
    _set_aspect(ax, aspect, high - low)
    handles = [Line2D([], [], color=colors[k], linewidth=2.0,
                      marker="*", markersize=10, markeredgecolor="black",
                      label=f"component {k} (weight {weights[k]:.2f})")
               for k in range(params.n_components)]
    handles += [Line2D([], [], color="0.2", linewidth=2.0 if m == 0 else 1.4,
                       linestyle=styles[m % len(styles)], label=f"{r:g}σ ellipse")
                for m, r in enumerate(n_std)]
    if levels:
        handles.append(Line2D([], [], color="0.2", linewidth=0.8,
                              label="density contours"))
    ax.legend(handles=handles, loc="best", fontsize="small")
    return ax


def plot_log_likelihood(
    log_likelihood: Any,
    *,
    n_iter: Any = None,
    converged: Any = None,
    n_samples: float | None = None,
    ax: Any = None,
    title: str | None = "EM log-likelihood",
) -> Any:
    """The EM log-likelihood trace, one point per iteration.

    ``fit`` returns a trace of length ``max_iter`` whose entries after
    convergence repeat the final value; only the first ``n_iter`` entries
    are drawn. Pass a ``FitResult`` to take ``n_iter`` and ``converged``
    from it, or a 2-D array of traces (one row per fit, e.g. from
    ``jax.vmap(fit)``) to overlay them.

    The trace ``fit`` records is the *mean* log-likelihood per sample, and
    the y-axis says so. Pass ``n_samples`` to plot the *total*
    log-likelihood (mean × ``n_samples``) instead, the scale on which
    textbooks and the seed tutorial show EM; for a weighted fit pass the sum
    of the weights.

    Args:
      log_likelihood: a ``FitResult``, or a (max_iter,) or (n_fits, max_iter)
        array of mean per-sample log-likelihoods.
      n_iter: iterations run (scalar, or one per row); all entries when None.
      converged: whether the fit converged, used to annotate a single trace.
      n_samples: when given, plot the total log-likelihood over this many
        samples instead of the mean per sample.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      title: axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import gmm_jax as gmm
      >>> fig, ax = plt.subplots()
      >>> ax = gmm.plot.plot_log_likelihood([-3.0, -2.5, -2.4, -2.4, -2.4],
      ...                                   n_iter=3, converged=True,
      ...                                   n_samples=100, ax=ax)
      >>> ax.lines[0].get_xdata().tolist(), ax.lines[0].get_ydata().tolist()
      ([1, 2, 3], [-300.0, -250.0, -240.0])
      >>> ax.get_ylabel()
      'total log-likelihood (100 samples)'
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
    if n_samples is not None:
        if isinstance(n_samples, bool) or not np.isscalar(n_samples) \
                or not np.isfinite(n_samples) or n_samples <= 0:
            raise ValueError(
                f"n_samples must be a positive number, got {n_samples!r}; pass "
                "the number of samples (or the sum of sample weights) fitted")
        traces = traces * float(n_samples)
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
        n = int(np.clip(n_iter[0], 1, traces.shape[1]))
        gain = traces[0, n - 1] - traces[0, 0]
        text = (f"converged after {n} iterations" if bool(converged)
                else f"not converged after {n} iterations")
        text += f"\nrose by {gain:.3g} from iteration 1"
        ax.annotate(text, xy=(0.97, 0.05), xycoords="axes fraction",
                    ha="right", va="bottom", fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Late iterations change the value in the 4th decimal; an offset label
    # ("-2.601 + 1e-4") would hide the actual level.
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("mean log-likelihood per sample" if n_samples is None
                  else f"total log-likelihood ({n_samples:g} samples)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_criterion(
    criterion: Any,
    n_components: Sequence[int] | None = None,
    *,
    labels: Sequence[str] | None = None,
    ax: Any = None,
    ylabel: str = "BIC (lower is better)",
    title: str | None = "Model selection",
) -> Any:
    """An information criterion against the number of components K.

    K is drawn with integer ticks, and the smallest value of each curve is
    ringed. Pass a model-selection result (anything with ``criterion``,
    ``n_components`` and ``covariance_types`` attributes, e.g.
    ``gmm.select(...)``) or the values and their K.

    Args:
      criterion: (len(n_components),) values, or (n_curves,
        len(n_components)) for several curves (one per covariance type), or
        a selection result. Infinite values (failed fits) are left out.
      n_components: the K of each column; ``1, 2, ...`` when None.
      labels: one legend label per curve.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      ylabel: y-axis label.
      title: axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import matplotlib.pyplot as plt
      >>> import gmm_jax as gmm
      >>> fig, ax = plt.subplots()
      >>> ax = gmm.plot.plot_criterion([310.0, 250.0, 262.0], [1, 2, 3], ax=ax)
      >>> ax.lines[0].get_xdata().tolist()
      [1, 2, 3]
      >>> plt.close(fig)
    """
    if hasattr(criterion, "criterion"):  # a selection result
        selection = criterion
        criterion = selection.criterion
        n_components = (selection.n_components if n_components is None
                        else n_components)
        if labels is None and hasattr(selection, "covariance_types"):
            labels = [str(t) for t in selection.covariance_types]
    values = np.asarray(criterion, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] == 0:
        raise ValueError(
            f"criterion has shape {values.shape}; pass (n_K,) values or "
            "(n_curves, n_K), one row per curve")
    values = np.atleast_2d(values)
    ks = (np.arange(1, values.shape[1] + 1) if n_components is None
          else np.asarray(list(n_components)))
    if ks.shape != (values.shape[1],):
        raise ValueError(
            f"n_components has {ks.size} entries but criterion has "
            f"{values.shape[1]} columns; pass one K per column")
    if labels is not None and len(labels) != values.shape[0]:
        raise ValueError(
            f"labels has {len(labels)} entries for {values.shape[0]} curves")
    ax = _axes(ax)
    for row, curve in enumerate(values):
        ok = np.isfinite(curve)
        line, = ax.plot(ks[ok], curve[ok], marker="o",
                        label=None if labels is None else labels[row])
        if ok.any():
            best = np.flatnonzero(ok)[np.argmin(curve[ok])]
            ax.scatter(ks[best], curve[best], s=160, facecolors="none",
                       edgecolors=line.get_color(), linewidths=1.6, zorder=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if labels is not None:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def selection(result: Any, *, ax: Any = None, title: str | None = "Model selection") -> Any:
    """mclust's BIC plot of a :func:`gmm_jax.select` result.

    The criterion against K, one line per covariance type (the best K of
    each ringed), and the chosen model marked with a star and named in the
    legend.

    Args:
      result: a ``SelectionResult``.
      ax: matplotlib Axes to draw on; a new figure is made when None.
      title: axes title.

    Returns:
      The Axes drawn on.

    Example:
      >>> import jax, numpy as np, matplotlib.pyplot as plt, gmm_jax as gmm
      >>> X = np.random.default_rng(0).normal(size=(200, 2))
      >>> sel = gmm.select(jax.random.key(0), X, [1, 2, 3], covariance_types=("full", "diag"))
      >>> ax = gmm.plot.selection(sel)
      >>> len(ax.lines), ax.get_legend().get_texts()[-1].get_text()
      (2, 'chosen: diag, K = 1')
      >>> plt.close(ax.figure)
    """
    name = {"bic": "BIC", "aic": "AIC", "icl": "ICL"}.get(result.criterion_name, result.criterion_name)
    ax = plot_criterion(result, ax=ax, ylabel=f"{name} (lower is better)", title=title)
    t = int(result.best_type_index)
    k = int(result.best_n_components)
    j = int(np.flatnonzero(np.asarray(result.n_components) == k)[0])
    ax.scatter([k], [float(np.asarray(result.criterion)[t, j])], marker="*", s=260, color="black", zorder=4,
               label=f"chosen: {result.covariance_types[t]}, K = {k}")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_label_comparison(
    X: Any,
    true_labels: Any,
    pred_labels: Any,
    *,
    features: Sequence[int] = (0, 1),
    feature_names: Sequence[str] | None = None,
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
      feature_names: optional (n_features,) names for the axis labels.
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
    plot_data(X, true_labels, features=features, feature_names=feature_names,
              ax=ax_true, title="true components")
    plot_data(X, matched, features=features, feature_names=feature_names,
              ax=ax_learned,
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


def _weighted_component_density(grid, weight, mean, covariance):
    """``weight * N(grid | mean, covariance)`` for 2-D points, in numpy."""
    chol = np.linalg.cholesky(covariance + 1e-300 * np.eye(2))
    z = np.linalg.solve(chol, (grid - mean).T)             # (2, n)
    log_norm = np.log(2 * np.pi) + np.sum(np.log(np.diagonal(chol)))
    return weight * np.exp(-0.5 * np.sum(z * z, axis=0) - log_norm)


def _nice_log_levels(low: float, high: float) -> np.ndarray:
    """1-2-5 steps per decade covering [low, high], as a filled layer's levels."""
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    steps = (np.array([1.0, 2.0, 5.0])[None, :] * 10.0 ** decades[:, None]).ravel()
    inside = steps[(steps >= low) & (steps <= high)]
    below = steps[steps < low][-1:] if (steps < low).any() else steps[:0]
    above = steps[steps > high][:1]
    return np.concatenate([below, inside, above])


def _check_names(names: Sequence[str] | None, n_features: int):
    if names is None:
        return None
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise ValueError(
            f"feature_names has {len(names)} entries but the data has "
            f"{n_features} features; pass one name per feature")
    return names


def _set_aspect(ax: Any, aspect, spans) -> None:
    if aspect is None:
        spans = None if spans is None else np.asarray(spans, dtype=np.float64)
        aspect = "equal"
        if spans is not None and np.all(spans > 0):
            # Features in different units (say grams and metres): equal
            # scales would squash the plot to a line.
            if spans.max() / spans.min() > _EQUAL_ASPECT_MAX_RATIO:
                aspect = "auto"
    ax.set_aspect(aspect, adjustable="box")


_EQUAL_ASPECT_MAX_RATIO = 10.0


def _decorate(ax: Any, features: tuple, names, title: str | None) -> None:
    if names is None:
        ax.set_xlabel(f"$x_{{{int(features[0])}}}$")
        ax.set_ylabel(f"$x_{{{int(features[1])}}}$")
    else:
        ax.set_xlabel(names[int(features[0])])
        ax.set_ylabel(names[int(features[1])])
    if title:
        ax.set_title(title)
