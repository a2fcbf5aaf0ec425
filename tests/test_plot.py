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


# --------------------------------------------------------------------------
# what a figure shows: aspect, contour sets, legend, colorbar, ticks


def _legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _contour_sets(ax):
    from matplotlib.contour import ContourSet

    return [a for a in ax.get_children() if isinstance(a, ContourSet)]


def test_data_space_scatters_have_equal_aspect():
    X = np.random.default_rng(0).normal(size=(50, 2))
    assert plot.plot_data(X, ax=_axes()).get_aspect() == 1.0
    assert plot.plot_density(_params("full", 2), X, ax=_axes()).get_aspect() == 1.0
    fig = Figure()
    axes = plot.plot_label_comparison(X, np.arange(50) % 2, np.arange(50) % 2,
                                      ax=fig.subplots(1, 2, sharex=True,
                                                      sharey=True))
    assert [a.get_aspect() for a in axes] == [1.0, 1.0]


def test_features_in_different_units_fill_the_box_unless_asked():
    X = np.random.default_rng(0).normal(size=(50, 2)) * [1.0, 1000.0]
    assert plot.plot_data(X, ax=_axes()).get_aspect() == "auto"
    assert plot.plot_data(X, ax=_axes(), aspect="equal").get_aspect() == 1.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plot_density_draws_one_contour_set_per_component_in_its_colour(
        covariance_type):
    params = _params(covariance_type, n_features=2)
    ax = plot.plot_density(params, ax=_axes(), levels=3)
    sets = _contour_sets(ax)
    assert len(sets) == params.n_components
    for k, contours in enumerate(sets):
        assert len(contours.levels) == 3     # a light component gets lines too
        np.testing.assert_allclose(contours.get_edgecolor()[0][:3],
                                   matplotlib.colors.to_rgb(f"C{k}"))


def test_plot_density_legend_names_components_and_every_line_style():
    ax = plot.plot_density(_params("diag", 2), ax=_axes(), n_std=(1.0, 2.0))
    assert _legend_labels(ax) == [
        "component 0 (weight 0.35)", "component 1 (weight 0.65)",
        "1σ ellipse", "2σ ellipse", "density contours"]
    styles = [h.get_linestyle() for h in ax.get_legend().legend_handles[2:4]]
    assert styles == ["-", "--"]


def test_plot_density_filled_layer_adds_a_colorbar():
    fig = Figure()
    ax = plot.plot_density(_params("full", 2), ax=fig.subplots(), filled=True)
    sets = _contour_sets(ax)
    assert [s.filled for s in sets].count(True) == 1 and len(sets) == 3
    assert len(fig.axes) == 2                        # the axes and its colorbar
    assert fig.axes[1].get_ylabel() == "mixture density"


def test_plot_density_levels_zero_draws_no_component_contours():
    ax = plot.plot_density(_params("full", 2), ax=_axes(), levels=0)
    assert _contour_sets(ax) == []
    assert "density contours" not in _legend_labels(ax)


def test_plots_label_axes_with_feature_names():
    X = np.random.default_rng(0).normal(size=(30, 3))
    names = ["alcohol", "malic acid", "ash"]
    ax = plot.plot_density(_params("full", 3), X, features=(2, 0),
                           feature_names=names, ax=_axes())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("ash", "alcohol")
    ax = plot.plot_data(X, features=(1, 2), feature_names=names, ax=_axes())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("malic acid", "ash")
    with pytest.raises(ValueError, match="feature_names"):
        plot.plot_data(X, feature_names=names[:2], ax=_axes())


def test_plot_log_likelihood_says_per_sample_or_plots_the_total():
    trace = [-3.0, -2.5, -2.4]
    ax = plot.plot_log_likelihood(trace, ax=_axes())
    assert ax.get_ylabel() == "mean log-likelihood per sample"
    ax = plot.plot_log_likelihood(trace, n_samples=500, ax=_axes())
    assert ax.get_ylabel() == "total log-likelihood (500 samples)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [-1500, -1250, -1200])
    with pytest.raises(ValueError, match="n_samples"):
        plot.plot_log_likelihood(trace, n_samples=0, ax=_axes())


def test_integer_ticks_wherever_an_axis_counts():
    ax = plot.plot_criterion([300.0, 250.0, 260.0, 270.0], [1, 2, 3, 4],
                             ax=_axes())
    ticks = ax.xaxis.get_major_locator().tick_values(1, 4)
    assert np.all(ticks == np.round(ticks))
    ax = plot.plot_log_likelihood([-3.0, -2.5, -2.4], ax=_axes())
    ticks = ax.xaxis.get_major_locator().tick_values(1, 3)
    assert np.all(ticks == np.round(ticks))


def test_plot_criterion_rings_the_best_k_of_each_curve_and_skips_failures():
    class Selection:  # what gmm.select returns, as far as the plot is concerned
        criterion = np.array([[300.0, 250.0, 260.0], [310.0, np.inf, 240.0]])
        n_components = (1, 2, 3)
        covariance_types = ("full", "diag")

    ax = plot.plot_criterion(Selection(), ax=_axes())
    assert _legend_labels(ax) == ["full", "diag"]
    assert ax.lines[1].get_xdata().tolist() == [1, 3]        # inf left out
    rings = [c.get_offsets()[0].tolist() for c in ax.collections]
    assert rings == [[2.0, 250.0], [3.0, 240.0]]
    assert ax.get_xlabel() == "number of components K"


@pytest.mark.slow
def test_import_is_light_and_missing_matplotlib_names_the_extra(tmp_path):
    # One fresh interpreter: `import gmm_jax` loads neither matplotlib nor
    # scipy.optimize; without matplotlib, gmm.plot and the CLI's plotting
    # say how to install it.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = """
import sys
import gmm_jax as gmm
print(sorted(m for m in ("matplotlib", "scipy.optimize") if m in sys.modules))
sys.modules["matplotlib"] = None          # as if it were not installed
try:
    gmm.plot
except ImportError as e:
    print("plot:", e)
from gmm_jax.cli import main
print("demo exit", main(["demo", "--out", "figures"]))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1].startswith("plot: gmm_jax.plot needs matplotlib")
    assert 'pip install "gmm-jax[plot]"' in lines[1]
    assert lines[2] == "demo exit 2"
    assert proc.stderr.strip().splitlines()[-1] == (
        'gmm-jax demo: error: plotting needs matplotlib, which is not '
        'installed: pip install "gmm-jax[plot]"')
