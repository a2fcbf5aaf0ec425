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
        return {"moment": wc @ Xc, "extra": ec @ Xc[:, 0], "index": jnp.sum(rows * wc)}

    got = _rows.sum_over_rows(fn, X, (w, extra), layout, center)
    Xc = X - center[None]
    np.testing.assert_allclose(got["moment"], w @ Xc, rtol=1e-12)
    np.testing.assert_allclose(got["extra"], extra @ Xc[:, 0], rtol=1e-12)
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
