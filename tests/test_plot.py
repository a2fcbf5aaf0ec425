"""gmm_jax.plot: projections are exact marginals; plots draw what they claim."""

import matplotlib

matplotlib.use("Agg")  # headless; must precede any pyplot import

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import gmm_jax as gmm  # noqa: E402
from gmm_jax import plot  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _params(covariance_type, n_features=3):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, n_features, n_features))
    full = a @ np.swapaxes(a, 1, 2) + np.eye(n_features)[None, :, :]
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.array([0.7, 1.6]),
    }[covariance_type]
    means = rng.normal(size=(2, n_features)) * 3.0
    return gmm.GMMParams.from_covariances(
        jnp.asarray([0.35, 0.65]), jnp.asarray(means), jnp.asarray(covariances),
        covariance_type=covariance_type)


def _axes():
    return Figure().subplots()


@pytest.fixture(autouse=True)
def _close_pyplot_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_marginal_density_equals_integral_over_dropped_feature(
        covariance_type):
    # The defining property, checked without the sub-block formula: the
    # marginal density of x0 is the joint density integrated over x1.
    params = _params(covariance_type, n_features=2)
    projected = plot.marginal(params, (0,))
    x0 = np.linspace(-4.0, 4.0, 9)
    x1 = np.linspace(-40.0, 40.0, 8001)
    grid = np.stack(np.broadcast_arrays(x0[:, None], x1[None, :]), axis=-1)
    joint = np.exp(np.asarray(gmm.log_prob(params, grid.reshape(-1, 2))))
    integral = np.trapezoid(joint.reshape(x0.size, x1.size), x1, axis=1)
    expected = np.exp(np.asarray(gmm.log_prob(projected, x0[:, None])))
    np.testing.assert_allclose(integral, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_marginal_keeps_weights_sub_means_sub_blocks_and_type(covariance_type):
    params = _params(covariance_type)
    projected = plot.marginal(params, (2, 0))
    assert projected.covariance_type == covariance_type
    np.testing.assert_array_equal(projected.weights, params.weights)
    np.testing.assert_array_equal(projected.means, params.means[:, [2, 0]])
    dense = plot._dense_covariances(params)
    # Covariances are recomputed from the precision factor: equal to rounding.
    np.testing.assert_allclose(plot._dense_covariances(projected),
                               dense[:, [2, 0]][:, :, [2, 0]], rtol=1e-12)


@pytest.mark.parametrize("features", [(0, 0), (0, 3), (-1, 1), ()])
def test_marginal_rejects_repeated_or_out_of_range_features(features):
    with pytest.raises(ValueError, match="features"):
        plot.marginal(_params("full"), features)


def test_plot_data_colours_points_by_label_and_marks_each_mean():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0], [6.0, 6.0]])
    ax = plot.plot_data(X, np.array([0, 0, 1, 1, 1]),
                        means=np.array([[0.5, 0.0], [5.7, 5.3]]), ax=_axes())
    points, stars = ax.collections[:2], ax.collections[2:]
    assert [len(c.get_offsets()) for c in points] == [2, 3]
    np.testing.assert_allclose([c.get_offsets()[0] for c in stars],
                               [[0.5, 0.0], [5.7, 5.3]])
    assert [tuple(c.get_facecolor()[0][:3]) for c in points] == [
        matplotlib.colors.to_rgb("C0"), matplotlib.colors.to_rgb("C1")]


def test_plot_data_needs_two_features():
    with pytest.raises(ValueError, match="at least 2"):
        plot.plot_data(np.zeros((5, 1)), ax=_axes())


def test_plot_density_ellipses_follow_the_covariances():
    params = _params("full", n_features=2)
    ax = plot.plot_density(params, ax=_axes(), n_std=(2.0,))
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2
    for k, ellipse in enumerate(ellipses):
        values = np.linalg.eigvalsh(np.asarray(params.covariances[k]))
        np.testing.assert_allclose(ellipse.center, params.means[k])
        np.testing.assert_allclose(
            [ellipse.width, ellipse.height], 4.0 * np.sqrt(values[::-1]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plot_density_projects_a_higher_dimensional_mixture(covariance_type):
    params = _params(covariance_type, n_features=3)
    X = np.random.default_rng(1).normal(size=(40, 3))
    ax = plot.plot_density(params, X, features=(2, 1), ax=_axes(),
                           n_std=(1.0,))
    projected = plot._dense_covariances(plot.marginal(params, (2, 1)))
    for k, ellipse in enumerate(ax.patches):
        np.testing.assert_allclose(ellipse.center, params.means[k, [2, 1]])
        np.testing.assert_allclose(
            ellipse.width * ellipse.height,
            4.0 * np.sqrt(np.linalg.det(projected[k])))
    assert ax.get_xlabel() == "$x_{2}$"


def test_plot_density_rejects_data_of_another_dimension():
    with pytest.raises(ValueError, match="features"):
        plot.plot_density(_params("diag"), np.zeros((4, 2)), ax=_axes())


def test_plot_log_likelihood_draws_only_the_iterations_run():
    trace = jnp.asarray([-3.0, -2.5, -2.2, -2.1, -2.1, -2.1])

    class Result:  # what fit returns, as far as the plot is concerned
        log_likelihood, n_iter, converged = trace, jnp.asarray(4), True

    ax = plot.plot_log_likelihood(Result(), ax=_axes())
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), trace[:4])
    assert "converged after 4 iterations" in ax.texts[0].get_text()


def test_plot_log_likelihood_overlays_a_stack_of_traces():
    traces = np.array([[-3.0, -2.0, -2.0], [-4.0, -3.0, -2.5]])
    ax = plot.plot_log_likelihood(traces, n_iter=[2, 3], ax=_axes())
    assert [len(line.get_xdata()) for line in ax.lines] == [2, 3]


def test_plot_label_comparison_undoes_a_permutation_of_labels():
    rng = np.random.default_rng(2)
    true = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(30, 2)) + 5.0 * true[:, None]
    pred = np.array([2, 0, 1])[true]
    fig = Figure()
    axes = plot.plot_label_comparison(X, true, pred, ax=fig.subplots(1, 2))
    left, right = axes
    assert right.get_title() == "learned components (accuracy 100.0%)"
    colours = [[tuple(c.get_facecolor()[0]) for c in a.collections]
               for a in (left, right)]
    assert colours[0] == colours[1]


def test_plot_label_comparison_circles_misassigned_points():
    X = np.arange(12.0).reshape(6, 2)
    true = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1])
    left, right = plot.plot_label_comparison(X, true, pred,
                                             ax=Figure().subplots(1, 2))
    circled = right.collections[-1].get_offsets()
    np.testing.assert_array_equal(circled, X[[2]])


def test_plot_label_comparison_gives_extra_learned_components_own_colours():
    X = np.arange(16.0).reshape(8, 2)
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 2, 2, 1, 1, 1, 1])   # 3 learned, 2 true
    _, right = plot.plot_label_comparison(X, true, pred,
                                          ax=Figure().subplots(1, 2))
    assert len(right.collections) == 3 + 1      # 3 label groups + circles


@pytest.mark.parametrize("draw", [
    lambda ax: plot.plot_data(np.zeros((3, 2)), ax=ax),
    lambda ax: plot.plot_density(_params("tied", n_features=2), ax=ax),
    lambda ax: plot.plot_log_likelihood([-2.0, -1.0], ax=ax),
])
def test_each_plot_returns_the_axes_it_was_given(draw):
    ax = _axes()
    assert draw(ax) is ax


def test_plots_make_their_own_figure_when_no_axes_are_given():
    ax = plot.plot_density(_params("spherical", n_features=2))
    assert ax.figure is not None
    axes = plot.plot_label_comparison(np.zeros((4, 2)), [0, 0, 1, 1],
                                      [1, 1, 0, 0])
    assert len(axes) == 2 and axes[0].figure is axes[1].figure
