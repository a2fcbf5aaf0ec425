"""Matrix products run in full float32 (not TF32) unless the caller chooses a precision."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm


def dot_precisions(lowered_text):
    return re.findall(r"stablehlo\.dot_general[^\n]*?precision = \[(\w+), (\w+)\]", lowered_text) + [
        ("DEFAULT", "DEFAULT")
        for line in lowered_text.splitlines()
        if "stablehlo.dot_general" in line and "precision" not in line
    ]


def lowered_fit(X):
    return jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 3, max_iter=5)).lower(X).as_text()


def test_every_matrix_product_of_a_fit_asks_for_full_float32():
    X = jnp.asarray(np.random.default_rng(0).normal(size=(200, 6)), jnp.float32)
    precisions = dot_precisions(lowered_fit(X))
    assert len(precisions) > 5  # the E-step, M-step and k-means products are all there
    assert set(precisions) == {("HIGHEST", "HIGHEST")}


def test_a_precision_chosen_by_the_caller_is_kept():
    X = jnp.asarray(np.random.default_rng(0).normal(size=(200, 6)), jnp.float32)
    with jax.default_matmul_precision("tensorfloat32"):
        precisions = dot_precisions(lowered_fit(X))
    assert precisions and ("HIGHEST", "HIGHEST") not in set(precisions)


# --- the matmul_precision option --------------------------------------------------------------------------


def _x32():
    return jnp.asarray(np.random.default_rng(0).normal(size=(200, 6)), jnp.float32)


def test_matmul_precision_option_sets_every_product_of_a_fit():
    X = _x32()

    def lowered(option):
        return jax.jit(lambda X: gmm.fit(jax.random.key(0), X, 3, max_iter=5, matmul_precision=option)).lower(X).as_text()

    assert set(dot_precisions(lowered("float32"))) == {("HIGHEST", "HIGHEST")}
    tf32 = dot_precisions(lowered("tf32"))
    assert len(tf32) > 5 and set(tf32) == {("HIGH", "HIGH")}  # JAX's "tensorfloat32"
    bf16_3x = lowered("bf16_3x")
    n_dots = bf16_3x.count("stablehlo.dot_general")
    assert n_dots > 5 and bf16_3x.count("num_primitive_operations = 3") == n_dots  # BF16_BF16_F32_X3 on each


def test_matmul_precision_option_reaches_the_scoring_functions():
    X = _x32()
    params = gmm.fit(jax.random.key(0), X, 3, max_iter=5).params
    for fn in (gmm.log_prob, gmm.predict_proba, gmm.predict, gmm.score, gmm.bic, gmm.aic, gmm.e_step):
        text = jax.jit(lambda X: fn(params, X, matmul_precision="tf32")).lower(X).as_text()
        got = set(dot_precisions(text))
        assert got == {("HIGH", "HIGH")}, (fn.__name__, got)


def test_matmul_precision_option_keeps_the_callers_choice_by_default_and_compiles_per_value():
    X = _x32()
    with jax.default_matmul_precision("tensorfloat32"):
        text = jax.jit(lambda X: gmm.log_prob(gmm.fit(jax.random.key(0), X, 2, max_iter=3).params, X)).lower(X).as_text()
    assert set(dot_precisions(text)) == {("HIGH", "HIGH")}
    # One process, both values: the second call must not reuse the first's program.
    params = gmm.fit(jax.random.key(0), X, 2, max_iter=3).params
    full = gmm.log_prob(params, X, matmul_precision="float32")
    np.testing.assert_allclose(gmm.log_prob(params, X, matmul_precision="bf16_3x"), full, rtol=1e-4)
    np.testing.assert_array_equal(gmm.log_prob(params, X), full)


def test_matmul_precision_option_rejects_unknown_values_before_tracing():
    X = _x32()
    for bad in ("fp16", "TF32", 32):
        with pytest.raises(ValueError, match=r"matmul_precision must be one of \('float32', 'bf16_3x', 'tf32'\).*got"):
            gmm.fit(jax.random.key(0), X, 2, matmul_precision=bad)
    with pytest.raises(ValueError, match="matmul_precision"):
        gmm.log_prob(gmm.fit(jax.random.key(0), X, 2, max_iter=2).params, X, matmul_precision="highest")


def test_matmul_precision_option_reaches_every_step_of_an_online_fit(monkeypatch):
    from gmm_jax import _online

    seen = []
    step = _online._online_step

    def spy(*args, **kwargs):  # the precision in force when a batch's step is traced and run
        seen.append(jax.config.jax_default_matmul_precision)
        return step(*args, **kwargs)

    monkeypatch.setattr(_online, "_online_step", spy)
    batches = [_x32()[i * 50:(i + 1) * 50] for i in range(4)]
    gmm.fit_online(jax.random.key(0), batches, 2, matmul_precision="tf32")
    assert seen == ["tensorfloat32"] * 4
    seen.clear()
    gmm.fit_online(jax.random.key(0), batches, 2)
    assert seen == [None] * 4  # the caller's choice (none): full float32 inside the step
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        gmm.fit_online(jax.random.key(0), batches, 2, matmul_precision="fp16")


def test_the_estimator_runs_fit_and_every_scoring_method_under_its_matmul_precision(monkeypatch):
    pytest.importorskip("sklearn")
    from gmm_jax import _em
    from gmm_jax.sklearn import GaussianMixture

    X = np.asarray(_x32())
    in_force = []
    statistics = _em.statistics

    def spy_statistics(*args, **kwargs):  # every EM pass of the fit, traced under the precision in force
        in_force.append(jax.config.jax_default_matmul_precision)
        return statistics(*args, **kwargs)

    monkeypatch.setattr(_em, "statistics", spy_statistics)
    jax.clear_caches()  # the fit's programs are traced again, through the spy
    model = GaussianMixture(2, random_state=0, max_iter=500, matmul_precision="bf16_3x").fit(X)
    assert in_force and set(in_force) == {"BF16_BF16_F32_X3"}

    passed = []
    for name in ("log_prob", "score", "predict", "predict_proba", "bic", "aic"):
        def spy(*args, _fn=getattr(gmm, name), _name=name, **kwargs):
            passed.append((_name, kwargs.get("matmul_precision")))
            return _fn(*args, **kwargs)

        monkeypatch.setattr(gmm, name, spy)
    for method in ("score_samples", "score", "predict", "predict_proba", "bic", "aic"):
        getattr(model, method)(X)
    assert passed == [(name, "bf16_3x") for name in ("log_prob", "score", "predict", "predict_proba", "bic", "aic")]
    with pytest.raises(ValueError, match="matmul_precision"):
        GaussianMixture(2, matmul_precision="fp16").fit(X)
