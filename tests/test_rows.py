"""Row chunking: every layout (one chunk, chunks, blocks of chunks) gives the same sums and rows."""

import jax.numpy as jnp
import numpy as np
import pytest

from gmm_jax import _rows

LAYOUTS = [None, 7, _rows.RowBlocks(4, None), _rows.RowBlocks(4, 3), _rows.RowBlocks(2, 5)]


def _data():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=(40, 3))), jnp.asarray(rng.uniform(size=40)), jnp.asarray(rng.normal(size=40))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sum_over_rows_is_the_same_for_every_layout_with_per_row_pytrees(layout):
    X, w, extra = _data()
    center = jnp.array([0.5, -1.0, 2.0])

    def fn(Xc, per_row, offset):
        wc, ec = per_row
        rows = offset + jnp.arange(Xc.shape[0])
        # Weighted sums only: the last chunk holds rows of the one before at zero weight.
        return {"moment": wc @ Xc, "extra": (wc * ec) @ Xc[:, 0], "index": jnp.sum(rows * wc)}

    got = _rows.sum_over_rows(fn, X, (w, extra), layout, center)
    Xc = X - center[None]
    np.testing.assert_allclose(got["moment"], w @ Xc, rtol=1e-12)
    np.testing.assert_allclose(got["extra"], (w * extra) @ Xc[:, 0], rtol=1e-12)
    np.testing.assert_allclose(got["index"], jnp.sum(jnp.arange(40) * w), rtol=1e-12)  # offsets are global rows


@pytest.mark.parametrize("layout", LAYOUTS)
def test_map_take_and_cumsum_over_rows_are_the_same_for_every_layout(layout):
    X, w, _ = _data()
    np.testing.assert_allclose(_rows.map_over_rows(lambda Xc: Xc.sum(axis=1), X, layout), X.sum(axis=1))
    index = jnp.array([[0, 39], [17, 22]])
    np.testing.assert_array_equal(_rows.take_rows(X, index, layout), X[index])
    cdf, total = _rows.cumsum_rows(w, layout)
    np.testing.assert_allclose(cdf, jnp.cumsum(w), rtol=1e-12)
    np.testing.assert_allclose(total, jnp.sum(w), rtol=1e-12)


def test_weighted_median_is_numpys_lower_median_of_the_rows_repeated_by_their_weights():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(41, 4))
    counts = rng.integers(0, 4, size=41)
    X[5, 1] = np.nan  # a missing entry carries no weight in its column
    got = np.asarray(_rows.weighted_median(jnp.asarray(X), jnp.asarray(counts, float)))
    for d in range(4):
        observed = ~np.isnan(X[:, d])
        repeated = np.repeat(X[observed, d], counts[observed])
        assert got[d] == np.quantile(repeated, 0.5, method="inverted_cdf")


def test_robust_center_is_the_mean_of_ordinary_and_mixture_data_and_a_median_beside_a_far_row():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(10_000, 3)) + 5.0
    w = rng.uniform(0.5, 1.5, size=10_000)
    center = np.asarray(_rows.robust_center(jnp.asarray(X), jnp.asarray(w)))
    np.testing.assert_allclose(center, w @ X / w.sum(), rtol=1e-12)  # ordinary data: the weighted mean
    # So for a mixture whose mean lies far from its median in units of one component's spread.
    modes = np.where(np.arange(10_000) % 10 < 7, -1e3, 1e3)[:, None] + X
    center = np.asarray(_rows.robust_center(jnp.asarray(modes), jnp.asarray(w)))
    np.testing.assert_allclose(center, w @ modes / w.sum(), rtol=1e-12)
    for data in (X, modes):  # complete data: the unmasked mean is the same centre
        complete = _rows.robust_center(jnp.asarray(data), jnp.asarray(w), missing=False)
        np.testing.assert_allclose(complete, _rows.robust_center(jnp.asarray(data), jnp.asarray(w)), rtol=1e-12)
    stride = -(-10_000 // _rows.CENTER_SAMPLE_ROWS)
    X[stride, :2] = 1e30  # a sampled row (rows 0, stride, 2 stride, ...); the mean moves to ~1e26
    X[::2, 2] = np.nan
    center = np.asarray(_rows.robust_center(jnp.asarray(X), jnp.asarray(w)))
    sample, sample_w = X[::stride, :2], w[::stride]
    order = np.argsort(sample, axis=0)
    cumulative = np.cumsum(sample_w[order], axis=0)
    first = np.argmax(cumulative >= 0.5 * sample_w.sum(), axis=0)
    median = np.take_along_axis(np.take_along_axis(sample, order, 0), first[None], 0)[0]
    np.testing.assert_array_equal(center[:2], median)  # the sample's weighted median
    assert np.all(np.abs(center[:2] - 5.0) < 0.1)
    observed = ~np.isnan(X[:, 2])  # column 2: even rows missing, no far row: its weighted mean
    np.testing.assert_allclose(center[2], w[observed] @ X[observed, 2] / w[observed].sum(), rtol=1e-12)
    X[:, 2] = np.nan  # a column the sample sees nothing of keeps the mean of its observed entries
    X[1, 2] = 2.0
    center = np.asarray(_rows.robust_center(jnp.asarray(X), jnp.asarray(w)))
    assert center[2] == 2.0
