"""Writes tests/reliability_table.md: what gmm_jax does on degenerate or bad input, per covariance type.

Every cell comes from a real call of ``gmm.fit`` (outside any transformation,
so failures raise; the same failures under ``jit``/``vmap`` show as
``FitResult.status == 1``), or, in the round-2 section, of the public
function named in the row (``save``/``load``, the ``GMMParams``
constructors, input conversion, ``clustering_accuracy``, ``sample``). Run
from the repository root:

    python tests/make_reliability_table.py [output.md]
"""

import io
import os
from pathlib import Path
import sys
import tempfile
from unittest import mock
import zipfile

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gmm_jax as gmm  # noqa: E402
from degenerate_data import (  # noqa: E402
    COVARIANCE_TYPES,
    N_COMPONENTS,
    degenerate_datasets,
    empty_component_start,
    three_blobs,
    wide_dataset,
)

KEY = jax.random.key(0)
MESSAGES = {}  # error message -> footnote label


def footnote(err):
    text = f"{type(err).__name__}: {err}"
    if text not in MESSAGES:
        MESSAGES[text] = f"E{len(MESSAGES) + 1}"
    return f"raises {type(err).__name__} [{MESSAGES[text]}]"


def finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


def min_variance(params):
    cov = np.asarray(params.covariances, np.float64)
    if params.covariance_type in ("full", "tied"):
        return float(np.min(np.linalg.eigvalsh(cov)))
    return float(cov.min())


def describe(result, X):
    p = result.params
    assert finite(p) and finite(result.lower_bound), "a fit returned status 0 with non-finite values"
    assert np.all(np.isfinite(np.asarray(gmm.log_prob(p, X))))
    used = int(np.sum(np.asarray(p.weights) > 1e-6))
    parts = [f"ok, status {int(result.status)}", f"{int(result.n_iter)} iter"]
    parts.append(f"{used}/{p.n_components} comp. used" + (f" (n_empty {int(result.n_empty)})" if int(result.n_empty) else ""))
    parts.append(f"min var {min_variance(p):.1e}")
    parts.append(f"mean ll {float(result.lower_bound):.3f}")
    return ", ".join(parts)


def run(X, n_components=N_COMPONENTS, **kwargs):
    try:
        result = gmm.fit(KEY, X, n_components, **kwargs)
    except (ValueError, TypeError) as err:
        return footnote(err)
    return describe(result, np.asarray(X))


def status_under_vmap(X, covariance_type, reg_covar):
    """The same fit under vmap (no Python check can raise there): its status."""
    result = jax.vmap(lambda x: gmm.fit(KEY, x, N_COMPONENTS, covariance_type=covariance_type, reg_covar=reg_covar))(X[None])
    finite_params = finite(result.params)
    return f"status {int(result.status[0])}" + ("" if finite_params or int(result.status[0]) else " WITH NON-FINITE PARAMS")


def degenerate_rows(dtype):
    rows = []
    cases = degenerate_datasets()
    for name, (X, description) in cases.items():
        X = X.astype(dtype)
        rows.append((f"{name} ({description})", [run(X, covariance_type=t) for t in COVARIANCE_TYPES]))
    for name, (X, description) in cases.items():
        X = X.astype(dtype)
        cells = [f"{run(X, covariance_type=t, reg_covar=0.0)}; under vmap: {status_under_vmap(X, t, 0.0)}" for t in COVARIANCE_TYPES]
        rows.append((f"{name}, reg_covar=0", cells))
    Xw = wide_dataset().astype(dtype)
    rows.append(("more features than samples (8 rows, 12 features), 2 comp.", [run(Xw, 2, covariance_type=t) for t in COVARIANCE_TYPES]))
    rows.append(("more features than samples, reg_covar=0", [run(Xw, 2, covariance_type=t, reg_covar=0.0) for t in COVARIANCE_TYPES]))
    Xb, _ = three_blobs()
    Xb = Xb.astype(dtype)
    rows.append((
        "a component that receives no mass (start with a mean 1e3 away)",
        [run(Xb, covariance_type=t, init_params=empty_component_start(Xb, t).astype(dtype)) for t in COVARIANCE_TYPES],
    ))
    return rows


def bad_input_rows():
    Xb, _ = three_blobs()
    nan = Xb.copy()
    nan[3, 1] = np.nan
    inf = Xb.copy()
    inf[0, 0] = np.inf
    w_neg = np.ones(len(Xb))
    w_neg[0] = -1
    cases = [
        ("X contains NaN", lambda t: run(nan, covariance_type=t)),
        ("X contains inf", lambda t: run(inf, covariance_type=t)),
        ("X is 1-D", lambda t: run(Xb[:, 0], covariance_type=t)),
        ("X is empty (0 rows)", lambda t: run(Xb[:0], covariance_type=t)),
        ("X of strings", lambda t: run(np.array([["a", "b"]] * 5), 1, covariance_type=t)),
        ("n_components > n_samples", lambda t: run(Xb[:2], covariance_type=t)),
        ("n_components = 0", lambda t: run(Xb, 0, covariance_type=t)),
        ("negative sample_weight", lambda t: run(Xb, covariance_type=t, sample_weight=w_neg)),
        ("all-zero sample_weight", lambda t: run(Xb, covariance_type=t, sample_weight=np.zeros(len(Xb)))),
        ("sample_weight of the wrong length", lambda t: run(Xb, covariance_type=t, sample_weight=np.ones(3))),
        ("reg_covar < 0", lambda t: run(Xb, covariance_type=t, reg_covar=-1.0)),
        ("tol = NaN", lambda t: run(Xb, covariance_type=t, tol=float("nan"))),
        ("unknown covariance_type", lambda t: run(Xb, covariance_type=t + "x")),
        ("unknown init", lambda t: run(Xb, covariance_type=t, init="kmeans+")),
        ("init_params of another covariance type", lambda t: run(
            Xb, covariance_type=t,
            init_params=empty_component_start(Xb, "spherical" if t != "spherical" else "diag"))),
        ("key is an int, not a PRNG key", lambda t: _run_with_key(7, Xb, t)),
    ]
    return [(name, [fn(t) for t in COVARIANCE_TYPES]) for name, fn in cases]


def _run_with_key(key, X, covariance_type):
    try:
        gmm.fit(key, X, N_COMPONENTS, covariance_type=covariance_type)
    except (ValueError, TypeError) as err:
        return footnote(err)
    return "accepted"


def float32_rows():
    X, _ = three_blobs(seed=3)
    X = X @ np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    far = X + np.repeat(np.array([[-1e4, 0, 0], [1e4, 0, 0], [0, 1e4, 0]]), 20, axis=0)
    rows = []
    for name, data in [("X + 1e4", X + 1e4), ("X * 1e5", X * 1e5), ("X * 1e3 + 1e4", X * 1e3 + 1e4),
                       ("clusters 1e4 apart", far), ("X + 1e6", X + 1e6)]:
        cells = []
        for t in COVARIANCE_TYPES:
            r64 = gmm.fit(KEY, data, N_COMPONENTS, covariance_type=t)
            r32 = gmm.fit(KEY, data.astype(np.float32), N_COMPONENTS, covariance_type=t)
            assert finite(r32.params) and finite(r64.params)
            rel = abs(float(r32.lower_bound) - float(r64.lower_bound)) / abs(float(r64.lower_bound))
            cells.append(f"status {int(r32.status)}, mean ll {float(r32.lower_bound):.4f} vs {float(r64.lower_bound):.4f} (rel. diff {rel:.0e})")
        rows.append((f"float32 vs float64: {name}", cells))
    return rows


def _outcome(call):
    """``call()``'s result as a cell: what it returned, or the error as a footnote."""
    try:
        return "ok: " + call()
    except (ValueError, TypeError, OSError) as err:
        return footnote(err)


def _rewritten(path, **changes):
    with zipfile.ZipFile(path) as archive:
        arrays = {m[:-4]: np.lib.format.read_array(archive.open(m), allow_pickle=False) for m in archive.namelist()}
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def round2_rows():
    """Issue 17's cases outside the EM core, each a real call; file names are relative to a temporary folder."""
    Xb, labels = three_blobs()
    full = gmm.GMMParams.from_covariances(np.full(3, 1 / 3), Xb[:3], np.stack([np.eye(3)] * 3), "full")
    old_cwd = os.getcwd()
    folder = tempfile.mkdtemp()
    os.chdir(folder)
    try:
        gmm.save("model.npz", full)
        data = Path("model.npz").read_bytes()

        def interrupted_save():
            def half(f, *args):
                f.write(data[:100])
                raise OSError(28, "No space left on device (simulated mid-save)")

            with mock.patch("gmm_jax._io._write", half):
                try:
                    gmm.save("model.npz", full.replace(weights=full.weights[::-1]))
                except OSError:
                    pass
            intact = bool(np.array_equal(gmm.load("model.npz").weights, full.weights))
            return f"old model intact: {intact}; temporary files left: {[f for f in os.listdir('.') if f.endswith('.tmp')]}"

        def write(name, blob):
            Path(name).write_bytes(blob)
            return name

        flipped = bytearray(data)
        means_header = data.find(b"\x93NUMPY", data.find(b"means.npy"))
        flipped[means_header + 128 + 3] ^= 0xFF  # inside the first mean (the .npy header is 128 bytes)
        lying = io.BytesIO()
        np.lib.format.write_array_header_1_0(lying, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        with zipfile.ZipFile("model.npz") as archive:
            members = {m: archive.read(m) for m in archive.namelist()}
        members["means.npy"] = lying.getvalue() + bytes(16)
        with zipfile.ZipFile("huge.npz", "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        pc = np.asarray(full.precisions_cholesky)
        negative, lower = pc.copy(), pc.copy()
        negative[0, 1, 1] *= -1
        lower[0, 1, 0] = 0.5
        precisions = np.linalg.inv(np.asarray(full.covariances))
        asym = np.stack([np.eye(3)] * 3)
        asym[1, 0, 2] = 0.3
        masked = np.ma.masked_array(Xb, mask=np.zeros_like(Xb, dtype=bool))
        masked[4, 2] = np.ma.masked
        import scipy.sparse
        from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

        def fit_cell(X):
            r = gmm.fit(KEY, X, N_COMPONENTS, covariance_type="full")
            return f"status {int(r.status)}, params dtype {r.params.means.dtype}, mean ll {float(r.lower_bound):.3f}"

        cases = [
            ("save: interrupted mid-write (OSError from the writer)", interrupted_save),
            ("save: params with a NaN mean", lambda: gmm.save("nan.npz", full.replace(means=full.means.at[0, 0].set(np.nan)))),
            ("save: a batch of mixtures (vmapped fit)", lambda: gmm.save("batch.npz", jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), full))),
            ("save: into a missing directory", lambda: gmm.save("missing/model.npz", full)),
            ("load: truncated (half the file)", lambda: gmm.load(write("half.npz", data[: len(data) // 2])).covariance_type),
            ("load: one byte flipped (in an array)", lambda: gmm.load(write("flipped.npz", bytes(flipped))).covariance_type),
            ("load: a CSV file", lambda: gmm.load(write("data.csv", b"1,2\n3,4\n")).covariance_type),
            ("load: an empty file", lambda: gmm.load(write("empty.npz", b"")).covariance_type),
            ("load: version = 'x'", lambda: gmm.load(_rewritten(write("v.npz", data), version=np.str_("x"))).covariance_type),
            ("load: version = 2", lambda: gmm.load(_rewritten(write("v2.npz", data), version=np.int64(2))).covariance_type),
            ("load: an array header claiming 8 TB", lambda: gmm.load("huge.npz").covariance_type),
            ("load: a negative precision-factor diagonal", lambda: gmm.load(_rewritten(write("neg.npz", data), precisions_cholesky=negative)).covariance_type),
            ("from_precisions_cholesky: an entry below the diagonal", lambda: gmm.GMMParams.from_precisions_cholesky(full.weights, full.means, lower, "full").covariance_type),
            ("from_precisions_cholesky: a zero spherical factor", lambda: gmm.GMMParams.from_precisions_cholesky([0.5, 0.5], Xb[:2], [1.0, 0.0], "spherical").covariance_type),
            ("from_covariances: an asymmetric full covariance", lambda: gmm.GMMParams.from_covariances(full.weights, full.means, asym, "full").covariance_type),
            ("from_precisions: not positive definite", lambda: gmm.GMMParams.from_precisions([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "full").covariance_type),
            ("from_precisions vs scikit-learn's precisions_cholesky_", lambda: "max abs diff {:.1e}".format(float(np.max(np.abs(
                np.asarray(gmm.GMMParams.from_precisions(full.weights, full.means, precisions, "full").precisions_cholesky)
                - _compute_precision_cholesky(np.asarray(full.covariances), "full")))))),
            ("fit: numpy.ma.masked_array X with a masked entry", lambda: fit_cell(masked)),
            ("fit: float16 X, full covariances", lambda: fit_cell(Xb.astype(np.float16))),
            ("fit: bfloat16 X, full covariances", lambda: fit_cell(jnp.asarray(Xb, jnp.bfloat16))),
            ("fit: object-dtype X of numbers", lambda: fit_cell(Xb.astype(object))),
            ("fit: scipy.sparse X", lambda: fit_cell(scipy.sparse.csr_matrix(Xb))),
            ("fit: complex X", lambda: fit_cell(Xb + 0j)),
            ("from_covariances: means with 2 rows, weights and covariances for 3", lambda: gmm.GMMParams.from_covariances(np.full(3, 1 / 3), Xb[:2], np.ones(3), "spherical").covariance_type),
            ("from_covariances: weights as strings", lambda: gmm.GMMParams.from_covariances(["0.5", "0.5"], Xb[:2], np.ones(2), "spherical").covariance_type),
            ("clustering_accuracy: true labels 1e9 and 1e12", lambda: "accuracy {:.2f}".format(gmm.metrics.clustering_accuracy(np.where(labels == 0, 10**9, 10**12), labels)[0])),
            ("clustering_accuracy: string labels", lambda: "accuracy {:.2f}, mapping {}".format(*gmm.metrics.clustering_accuracy(np.array(["a", "b", "c"])[labels], labels))),
            ("sample: key=0", lambda: str(gmm.sample(0, full, 5)[0].shape)),
            ("sample: a batch of 3 keys", lambda: str(gmm.sample(jax.random.split(KEY, 3), full, 5)[0].shape)),
        ]  # fmt: skip
        return [(name, _outcome(call)) for name, call in cases]
    finally:
        os.chdir(old_cwd)


def outlier_rows():
    """Issue 17's far-outlier and drowned-regularisation cases, against scikit-learn on the same data."""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0]]) + 50.0
    bulk = np.concatenate([c + rng.normal(size=(100, 3)) for c in centres])
    rows = []
    for dtype, distance in [(np.float32, 1e10), (np.float64, 1e30)]:
        X = np.vstack([bulk, [[distance, -distance, distance]]]).astype(dtype)
        cells = []
        for t in COVARIANCE_TYPES:
            try:
                r = gmm.fit(KEY, X, 4, covariance_type=t)
                ours = f"status {int(r.status)}, bulk mean ll {float(np.mean(gmm.log_prob(r.params, X[:-1]))):.3f}"
            except ValueError as err:
                ours = footnote(err)
            try:
                sk = GaussianMixture(4, covariance_type=t, random_state=0).fit(X)
                theirs = f"{sk.score(X[:-1]):.3f}"
            except ValueError as err:
                theirs = "raises " + type(err).__name__
            cells.append(f"{ours}; scikit-learn: {theirs}")
        rows.append((f"300 unit-blob rows and one at {distance:.0e}, {dtype.__name__}, 4 comp.", cells))
    noisy = np.random.default_rng(29)
    X = noisy.normal(size=(8, 12)) * noisy.uniform(0.1, 10) + noisy.normal(size=12) * noisy.uniform(0, 100)
    for reg in (1e-6, 1e-3):
        cells = []
        for t in COVARIANCE_TYPES:
            try:
                r = gmm.fit(KEY, X.astype(np.float32), 1, covariance_type=t, reg_covar=reg)
                exact = gmm.fit(KEY, X, 1, covariance_type=t, reg_covar=reg)
                cells.append(f"status {int(r.status)}, mean ll {float(r.lower_bound):.3f} (float64: {float(exact.lower_bound):.3f})")
            except ValueError as err:
                cells.append(footnote(err))
        rows.append((f"float32, 8 rows in 12-D (variance ~4.5), 1 comp., reg_covar={reg:g}", cells))
    return rows


def table_2(title, rows):
    lines = [f"### {title}", "", "| case | outcome |", "|---|---|"]
    lines += [f"| {name} | {cell} |" for name, cell in rows]
    return "\n".join(lines) + "\n"


def table(title, rows):
    lines = [f"### {title}", "", "| case | " + " | ".join(COVARIANCE_TYPES) + " |", "|---" * (len(COVARIANCE_TYPES) + 1) + "|"]
    for name, cells in rows:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(path):
    parts = [
        "# gmm_jax on degenerate and bad input\n",
        "Generated by `python tests/make_reliability_table.py` from real calls of `gmm.fit` "
        f"(jax {jax.__version__}, CPU; {N_COMPONENTS} components unless stated, reg_covar=1e-6 unless stated, "
        "default options otherwise). 'ok' cells were checked for finite parameters, finite lower bound and "
        "finite `log_prob` on the data. 'min var' is the smallest covariance eigenvalue; 'comp. used' counts "
        "weights > 1e-6. Under `jit`/`vmap` the errors marked [E1] appear as `FitResult.status == 1` instead "
        "(the reg_covar=0 rows show both).\n",
        table("float64 data", degenerate_rows(np.float64)),
        table("float32 data", degenerate_rows(np.float32)),
        table("float32 far from the origin or at large scale (same key, default tol)", float32_rows()),
        table("bad input (rejected before anything is compiled)", bad_input_rows()),
        table("round 2 (issue 17): one far outlier; reg_covar below float32's rounding of the pivots", outlier_rows()),
        table_2("round 2 (issue 17): model files, parameter constructors, input conversion, metrics, keys", round2_rows()),
        "### Error messages\n",
    ]
    parts += [f"- **[{label}]** {text}" for text, label in MESSAGES.items()]
    text = "\n".join(parts) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("reliability_table.md")))
