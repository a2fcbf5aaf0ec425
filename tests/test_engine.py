"""The one engine: layers, traced options, compaction, resumable online fits, the tuning tables."""

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax import _loops, _tuning

PACKAGE = pathlib.Path(gmm.__file__).parent

# Each module's layer: a module may import only modules of lower layers (and
# of its own layer where listed together). Data flows one way:
# params -> covariance -> pass -> likelihood -> em -> init -> driver -> entry points -> outer layers.
LAYERS = [
    {"_precision", "_tuning", "_cache"},
    {"_covariance"},
    {"_validation"},
    {"_params"},
    {"_prior"},
    {"_unconstrained"},
    {"_sharding", "_rows", "_loops"},
    {"_pass"},
    {"_missing"},
    {"_likelihood"},
    {"_em"},
    {"_hierarchical"},
    {"_init"},
    {"_driver"},
    {"_fit", "_stream", "_online", "_select"},
    {"_gradient"},
    {"distributed", "_io", "_sampling", "metrics", "interop"},
    {"__init__"},
    {"plot", "sklearn", "examples.multiprocess_fit", "examples.__init__"},
    {"cli"},
    {"__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
OUTER = LAYER["plot"]


def _module_name(path):
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _internal_imports(tree):
    """``(module imported, is inside a function)`` for every import of a gmm_jax module."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "gmm_jax":
                if child.module == "gmm_jax":
                    found.extend((alias.name, inside) for alias in child.names)
                else:
                    found.append((child.module.removeprefix("gmm_jax."), inside))
            elif isinstance(child, ast.Import):
                found.extend((a.name.removeprefix("gmm_jax."), inside) for a in child.names if a.name.startswith("gmm_jax"))
            visit(child, inside)

    visit(tree, False)
    return found


def test_imports_run_one_way_through_the_layers():
    modules = {_module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}
    unknown = sorted(set(modules) - set(LAYER))
    assert not unknown, f"modules without a layer (add them to LAYERS): {unknown}"
    upward, hidden = [], []
    for name, tree in modules.items():
        for imported, in_function in _internal_imports(tree):
            if imported not in LAYER or imported == "gmm_jax":
                continue  # public names re-exported by the package itself
            if name == "__init__" and in_function and LAYER[imported] >= OUTER:
                continue  # the package's lazy attributes (gmm.plot, gmm.GaussianMixture): imported on first use
            if LAYER[imported] > LAYER[name] or (LAYER[imported] == LAYER[name] and imported != name):
                upward.append(f"{name} -> {imported}")
            if in_function and LAYER[name] < OUTER:
                hidden.append(f"{name} -> {imported}")
    assert not upward, f"imports that run back up the layers: {upward}"
    assert not hidden, f"function-level imports in the core (cycle dodging): {hidden}"


def test_compacting_loop_runs_each_member_only_its_own_iterations_under_vmap():
    # 15 members need one iteration, one needs 100. Without compaction the
    # batch would run 16 x 100 = 1600 member-iterations; with it, the first
    # phase runs 16 x 1 and the last phase the straggler alone.
    calls = []

    def body(limit, state):
        jax.debug.callback(lambda i: calls.append(int(i)), state)
        return state + 1

    limits = jnp.array([1] * 15 + [100])
    out = jax.vmap(lambda m: _loops.while_loop(lambda lim, s: s < lim, body, m, jnp.zeros((), jnp.int32)))(limits)
    jax.effects_barrier()
    np.testing.assert_array_equal(out, limits)
    assert len(calls) == 16 + 99


def _data(seed=0, n=120):
    rng = np.random.default_rng(seed)
    centers = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    return centers[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))


def _trees_equal(a, b, rtol=1e-12):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("option, values", [("reg_covar", [1e-6, 1e-2, 0.5]), ("tol", [1e-1, 1e-3, 0.0])])
@pytest.mark.slow
def test_vmap_over_reg_covar_and_tol_equals_a_loop_of_fits(option, values):
    X = _data()
    key = jax.random.key(0)
    batched = jax.vmap(lambda v: gmm.fit(key, X, 3, max_iter=30, **{option: v}))(jnp.asarray(values))
    for i, value in enumerate(values):
        single = jax.jit(lambda: gmm.fit(key, X, 3, max_iter=30, **{option: value}))()
        _trees_equal(jax.tree_util.tree_map(lambda a: a[i], batched), single, rtol=1e-10)


@pytest.mark.slow
def test_changing_reg_covar_or_tol_does_not_recompile():
    from gmm_jax import _driver

    X = _data(1)
    gmm.fit(jax.random.key(0), X, 3, reg_covar=1e-6, tol=1e-3)
    before = _driver.fit_program._cache_size()
    gmm.fit(jax.random.key(0), X, 3, reg_covar=1e-3, tol=1e-4)
    assert _driver.fit_program._cache_size() == before


def _online_batches(n_batches=8, rows=300):
    rng = np.random.default_rng(3)
    return [_data(int(rng.integers(1 << 20)), rows).astype(np.float32) for _ in range(n_batches)]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.slow
def test_fit_online_resumed_in_two_calls_equals_one_call(covariance_type):
    batches = _online_batches()
    key = jax.random.key(0)
    whole = gmm.fit_online(key, iter(batches), 3, covariance_type=covariance_type)
    first = gmm.fit_online(key, iter(batches[:3]), 3, covariance_type=covariance_type)
    second = gmm.fit_online(key, iter(batches[3:]), 3, covariance_type=covariance_type, state=first.state)
    assert int(second.state.step) == int(whole.state.step) == len(batches)
    _trees_equal(second.params, whole.params, rtol=1e-6)
    _trees_equal(second.state.statistics, whole.state.statistics, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([first.log_likelihood, second.log_likelihood]), whole.log_likelihood,
                               rtol=1e-6)  # fmt: skip


def test_fit_online_refuses_a_batch_of_three_items_like_fit_stream():
    X = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="tuple of 3 items"):
        gmm.fit_online(jax.random.key(0), iter([(X, np.ones(10), None)]), 2)
    with pytest.raises(ValueError, match="tuple of 3 items"):
        gmm.fit_stream(jax.random.key(0), lambda: iter([(X, np.ones(10), None)]), 2)


@pytest.mark.slow
def test_every_fit_fails_with_the_same_error():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 30, axis=0)
    kwargs = dict(reg_covar=0.0, covariance_type="full", init="random")
    with pytest.raises(ValueError, match="ill-defined empirical covariance") as fit_error:
        gmm.fit(jax.random.key(0), X, 3, **kwargs)
    with pytest.raises(ValueError, match="ill-defined empirical covariance") as stream_error:
        gmm.fit_stream(jax.random.key(0), lambda: iter([X]), 3, **kwargs)
    with pytest.raises(ValueError, match="ill-defined empirical covariance") as online_error:
        gmm.fit_online(jax.random.key(0), iter([X, X, X]), 3, **kwargs)
    assert str(fit_error.value) == str(stream_error.value) == str(online_error.value)


@pytest.mark.parametrize("covariance_type", gmm.COVARIANCE_TYPES)
@pytest.mark.slow
def test_the_accelerator_tuning_computes_the_cpu_tuning_numbers(monkeypatch, covariance_type):
    # Both tables on this CPU: the fit, the chunked scores and the stream
    # must agree (each branch of the tables is exercised here).
    rng = np.random.default_rng(4)
    X = np.concatenate([_data(4, 1400), rng.normal(size=(1400, 3))], axis=1)  # D = 5: the product path
    kwargs = dict(covariance_type=covariance_type, max_iter=8, tol=0.0, chunk_size=300)
    results = {}
    for name, table in (("cpu", _tuning.CPU), ("accelerator", _tuning.ACCELERATOR)):
        monkeypatch.setattr(_tuning, "for_data", lambda X, table=table: table)
        monkeypatch.setattr(_tuning, "for_platform", lambda platform, table=table: table)
        fit = gmm.fit(jax.random.key(0), X, 3, **kwargs)
        results[name] = (fit.params, gmm.log_prob(fit.params, X), gmm.predict_proba(fit.params, X))
    _trees_equal(results["cpu"], results["accelerator"], rtol=1e-9)


def test_tuning_is_chosen_from_the_device_that_holds_the_data():
    X = jax.device_put(jnp.zeros((4, 2)), jax.devices("cpu")[0])
    assert _tuning.for_data(X) is _tuning.CPU
    assert _tuning.for_platform("gpu") is _tuning.ACCELERATOR


def test_every_tuning_field_has_its_row_in_the_benchmarks_tuning_table():
    # The measurement behind each platform choice is written down (benchmarks/README.md, "Tuning table").
    table = (PACKAGE.parent / "benchmarks" / "README.md").read_text().split("## Tuning table", 1)[1]
    missing = [field for field in _tuning.Tuning._fields if f"| `{field}` |" not in table]
    assert not missing, missing


def test_a_new_number_of_rows_in_the_same_bucket_does_not_recompile():
    from gmm_jax import _driver

    X = _data(7, 510)
    first = gmm.fit(jax.random.key(0), X, 3, init="random")
    before = _driver.fit_program._cache_size()
    again = gmm.fit(jax.random.key(0), X[:497], 3, init="random")  # 497 and 510 both pad to 512 rows
    assert _driver.fit_program._cache_size() == before
    unpadded = gmm.fit(jax.random.key(0), X[:497], 3, init="random", chunk_size=497)  # no padding
    _trees_equal(again, unpadded, rtol=1e-9)
    assert _driver.bucket_size(497) == _driver.bucket_size(510) == 512 and _driver.bucket_size(513) == 640
    assert first.params.n_components == 3
