"""gmm.save / gmm.load: .npz round trips keep every array, dtype and type."""

import io

import jax.numpy as jnp
import numpy as np
import pytest

import gmm_jax as gmm

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _params(covariance_type, dtype=np.float64, n_components=3, n_features=2):
    rng = np.random.default_rng(7)
    means = rng.normal(size=(n_components, n_features))
    weights = np.arange(1, n_components + 1) / 6.0
    a = rng.normal(size=(n_components, n_features, n_features))
    full = a @ np.swapaxes(a, 1, 2) + np.eye(n_features)[None, :, :]
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.trace(full, axis1=1, axis2=2) / n_features,
    }[covariance_type]
    return gmm.GMMParams.from_covariances(
        *(jnp.asarray(x, dtype=dtype) for x in (weights, means, covariances)),
        covariance_type=covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_save_load_round_trip_keeps_arrays_and_covariance_type(
        tmp_path, covariance_type):
    params = _params(covariance_type)
    path = tmp_path / "model.npz"
    gmm.save(path, params)
    loaded = gmm.load(path)
    assert loaded.covariance_type == covariance_type
    for name in ("weights", "means", "precisions_cholesky"):  # the leaves
        np.testing.assert_array_equal(getattr(loaded, name),
                                      getattr(params, name))
    np.testing.assert_array_equal(loaded.covariances, params.covariances)


def test_loaded_params_give_identical_log_prob_and_predictions(tmp_path):
    # Bit-identical leaves (checked above for every type) already imply
    # this; it is the promise users rely on, so it is tested as such.
    params = _params("full")
    X = np.random.default_rng(1).normal(size=(50, 2)) * 2.0
    gmm.save(tmp_path / "model.npz", params)
    loaded = gmm.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(gmm.log_prob(loaded, X),
                                  gmm.log_prob(params, X))
    np.testing.assert_array_equal(gmm.predict(loaded, X),
                                  gmm.predict(params, X))


def test_save_load_keeps_float32(tmp_path):
    params = _params("full", dtype=np.float32)
    gmm.save(tmp_path / "model.npz", params)
    loaded = gmm.load(tmp_path / "model.npz")
    assert loaded.means.dtype == jnp.float32
    assert loaded.precisions_cholesky.dtype == jnp.float32


def test_save_writes_exactly_the_given_path(tmp_path):
    gmm.save(tmp_path / "model.gmm", _params("diag"))
    assert (tmp_path / "model.gmm").is_file()
    assert not (tmp_path / "model.gmm.npz").exists()


def test_save_and_load_accept_file_objects():
    params = _params("tied")
    buffer = io.BytesIO()
    gmm.save(buffer, params)
    buffer.seek(0)
    np.testing.assert_array_equal(gmm.load(buffer).covariances,
                                  params.covariances)


def test_saved_file_is_a_plain_numpy_archive(tmp_path):
    gmm.save(tmp_path / "model.npz", _params("spherical"))
    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        assert str(archive["covariance_type"]) == "spherical"
        assert archive["means"].shape == (3, 2)


def test_save_rejects_something_that_is_not_params(tmp_path):
    with pytest.raises(TypeError, match="GMMParams"):
        gmm.save(tmp_path / "model.npz", {"means": np.zeros((2, 2))})


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gmm.load(tmp_path / "nothing.npz")


def test_load_rejects_an_unrelated_npz(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a gmm_jax parameter file"):
        gmm.load(tmp_path / "other.npz")


def test_load_rejects_a_single_npy_array(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not a gmm_jax parameter file"):
        gmm.load(tmp_path / "array.npy")


def test_load_rejects_a_text_file(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="not a gmm_jax parameter file"):
        gmm.load(tmp_path / "data.csv")


def test_load_rejects_arrays_with_inconsistent_shapes(tmp_path):
    params = _params("full")
    path = tmp_path / "model.npz"
    gmm.save(path, params)
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["weights"] = arrays["weights"][:2]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"weights has shape \(2,\)"):
        gmm.load(path)
