"""Degenerate and awkward datasets shared by the reliability tests and the table script.

Every dataset here has the same shape, ``(N_SAMPLES, N_FEATURES)``, so a test
that loops over them compiles ``fit`` once per covariance type and dtype.
"""

import numpy as np

N_SAMPLES, N_FEATURES, N_COMPONENTS = 60, 3, 3
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def three_blobs(seed=0, separation=8.0):
    """Three well-separated Gaussian blobs (20 rows each) and their labels."""
    rng = np.random.default_rng(seed)
    centres = separation * np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.5, 0.0]])
    labels = np.repeat(np.arange(N_COMPONENTS), N_SAMPLES // N_COMPONENTS)
    X = centres[labels] + rng.normal(size=(N_SAMPLES, N_FEATURES)) @ np.diag([1.0, 0.7, 0.4])
    return X, labels


def degenerate_datasets():
    """``name -> (X, description)``, every X of shape ``(60, 3)``."""
    rng = np.random.default_rng(1)
    blobs, _ = three_blobs()
    duplicated = np.tile([[1.0, -2.0, 0.5]], (N_SAMPLES, 1))
    duplicated[:9] = rng.normal(size=(9, N_FEATURES)) * 2.0
    constant = blobs.copy()
    constant[:, 2] = 7.0
    few = np.repeat(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), N_SAMPLES // 2, axis=0)
    outlier = blobs.copy()
    outlier[-1] = [1e6, -1e6, 1e6]
    collinear = rng.normal(size=(N_SAMPLES, 1)) * np.array([[1.0, -2.0, 0.5]]) + rng.normal(size=(N_SAMPLES, 1)) * np.array([[0.5, 1.0, 0.0]])
    return {
        "all points identical": (np.full((N_SAMPLES, N_FEATURES), 3.25), "60 copies of one point"),
        "heavily duplicated": (duplicated, "51 of 60 rows are one point"),
        "constant feature": (constant, "three blobs, third feature constant 7.0"),
        "fewer distinct points than components": (few, "2 distinct points, 3 components"),
        "one far outlier": (outlier, "three blobs, one row at 1e6"),
        "rank-deficient (collinear)": (collinear, "rows span a 2-D plane in 3-D"),
    }


def wide_dataset():
    """More features than samples: 8 rows in 12 dimensions."""
    return np.random.default_rng(2).normal(size=(8, 12))


def empty_component_start(X, covariance_type):
    """Starting parameters whose third component sits far from all data (it receives no mass)."""
    import gmm_jax as gmm

    _, labels = three_blobs()
    means = np.stack([X[labels == 0].mean(0), X[labels == 1].mean(0), np.full(N_FEATURES, 1e3)])
    cov = {
        "full": np.stack([np.eye(N_FEATURES)] * 3),
        "tied": np.eye(N_FEATURES),
        "diag": np.ones((3, N_FEATURES)),
        "spherical": np.ones(3),
    }[covariance_type]
    return gmm.GMMParams.from_covariances(np.array([0.45, 0.45, 0.1]), means, cov, covariance_type)


def fit_batch(stack, covariance_type, reg_covar=1e-6, seed=0):
    """``vmap``-ed fit of a stack of ``(60, 3)`` datasets; one list entry per dataset.

    Every module fits through this one helper with batches of the same size,
    so the compiled fit is shared across test files (one compile per
    covariance type and dtype), and every fit runs under a transformation.
    """
    import jax

    import gmm_jax as gmm

    key = jax.random.key(seed)
    fit = lambda X: gmm.fit(key, X, N_COMPONENTS, covariance_type=covariance_type, reg_covar=reg_covar)
    results = jax.vmap(fit)(stack)
    return [jax.tree_util.tree_map(lambda a, i=i: a[i], results) for i in range(stack.shape[0])]


BATCH = 6  # datasets per fit_batch call, shared by every test module
