"""Compile latency: what a first call compiles, and the options that make small programs compile fast."""

import contextlib
import logging

import jax
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax import _driver, _tuning


def _data(seed=0, n=300, d=2):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(3, d))
    return centers[rng.integers(0, 3, n)] + rng.normal(size=(n, d))


def _trees_close(a, b, rtol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-10)


class _Compiles(logging.Handler):
    """The names of the programs XLA compiles while installed (``jax_log_compiles``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.names = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Finished XLA compilation of "):
            self.names.append(message.split(" ")[4])


@contextlib.contextmanager
def _compiles():
    handler, logger = _Compiles(), logging.getLogger("jax")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            yield handler.names
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_fit_of_host_data_compiles_its_program_and_nothing_else():
    # Checks, padding and defaults of host (NumPy) data run on the host: a
    # new shape compiles the fit's program only, not a dozen small operations.
    X, key = _data(1, 333), jax.random.key(0)
    with _compiles() as names:
        gmm.fit(key, X, 3, max_iter=5, tol=0.0)
    assert names == ["jit(fit_program)"]


def test_a_selection_of_host_data_compiles_one_program_per_covariance_type_its_starts_and_its_table():
    X, key = _data(2, 301), jax.random.key(0)
    with _compiles() as names:
        gmm.select(key, X, [1, 2], covariance_types=("diag", "spherical"), max_iter=5)
    # The k-means starts, shared by the types, are one program of their own.
    assert sorted(names) == ["jit(_best_fit)", "jit(_start_centers)", "jit(_sweep_program)", "jit(_sweep_program)",
                             "jit(_table)"]  # fmt: skip


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
def test_the_fast_compile_options_compute_the_default_programs_numbers(monkeypatch, covariance_type):
    X = _data(3, 400, 3)
    fast = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=15, tol=0.0)
    monkeypatch.setattr(_tuning, "CPU", _tuning.CPU._replace(fast_compile_max_size=0))
    default = gmm.fit(jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=15, tol=0.0)
    _trees_close(fast, default, rtol=1e-9)


def test_the_program_is_picked_by_size_and_never_fast_under_a_transformation():
    program = _driver.fit_program
    assert program.pick(_tuning.CPU, _tuning.CPU.fast_compile_max_size) is program.fast
    assert program.pick(_tuning.CPU, _tuning.CPU.fast_compile_max_size + 1) is program.default
    assert program.pick(_tuning.ACCELERATOR, 1) is program.default
    picked = []
    jax.jit(lambda: picked.append(program.pick(_tuning.CPU, 1)))()
    assert picked == [program.default]  # JAX refuses compiler options on a nested jit
    X = _data(4, 200)
    under_jit = jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 3, max_iter=5, tol=0.0))(X)
    eager = gmm.fit(jax.random.key(0), X, 3, max_iter=5, tol=0.0)
    _trees_close(under_jit, eager, rtol=1e-9)


@pytest.mark.parametrize("init", ["kmeans", "hierarchical"])
def test_restarts_and_selections_in_sequence_equal_side_by_side(monkeypatch, init):
    # The CPU table runs restarts (and the K of a selection) one after another
    # with lax.map; the accelerator's runs small ones side by side under vmap.
    X = _data(5, 240)
    kwargs = dict(init=init, n_init=3, max_iter=20)
    results = {}
    for name, size in (("sequence", 0), ("side by side", 2**40)):
        monkeypatch.setattr(_tuning, "CPU", _tuning.CPU._replace(sequential_restarts_size=size))
        fit = gmm.fit(jax.random.key(0), X, 3, **kwargs)
        selection = gmm.select(jax.random.key(0), X, [1, 2, 3], covariance_types=("full",), **kwargs)
        results[name] = (fit, selection.criterion, selection.best)
    _trees_close(results["sequence"], results["side by side"], rtol=1e-9)


def test_select_outside_and_inside_jit_agree_on_the_table_and_the_best_fit():
    X = _data(6, 260)
    kwargs = dict(covariance_types=("full", "diag"), max_iter=10)
    eager = gmm.select(jax.random.key(0), X, [1, 2, 3], **kwargs)
    traced = jax.jit(lambda X: gmm.select(jax.random.key(0), X, [1, 2, 3], **kwargs))(X)
    _trees_close(eager.criterion, traced.criterion, rtol=1e-9)
    assert int(eager.best_n_components) == int(traced.best_n_components)
    assert int(eager.best_type_index) == int(traced.best_type_index)
    assert eager.best.params.n_components == int(eager.best_n_components)


def test_scoring_host_data_compiles_the_scoring_program_and_one_summary():
    X, key = _data(7, 277), jax.random.key(0)
    params = gmm.fit(key, X, 3, max_iter=5).params
    with _compiles() as names:
        gmm.predict(params, X)
        gmm.log_prob(params, X[:100])
    assert names == ["jit(_scores)", "jit(_scores)"]  # labels, then log densities of another shape
    with _compiles() as names:
        bic, aic, score = gmm.bic(params, X), gmm.aic(params, X), gmm.score(params, X)
    assert sorted(names) == ["jit(_scores)", "jit(_summary)", "jit(_summary)", "jit(_summary)"]
    log_density = np.asarray(gmm.log_prob(params, X))
    n_params = gmm.n_parameters(params)
    np.testing.assert_allclose(float(score), log_density.mean(), rtol=1e-12)
    np.testing.assert_allclose(float(bic), -2 * log_density.sum() + n_params * np.log(len(X)), rtol=1e-12)
    np.testing.assert_allclose(float(aic), -2 * log_density.sum() + 2 * n_params, rtol=1e-12)
