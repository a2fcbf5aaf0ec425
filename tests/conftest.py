"""Shared fixtures: random mixtures and data, in scikit-learn's conventions."""

import os

if "PYTEST_XDIST_WORKER" in os.environ:
    # Several test processes share one accelerator: none may take most of its memory up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import numpy as np
import pytest

import gmm_jax as gmm
from gmm_jax._cache import ENV_VAR as _CACHE_ENV_VAR

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def random_covariances(rng, covariance_type, n_components, n_features):
    """Well-conditioned random covariances in scikit-learn's shapes."""

    def spd():
        a = rng.normal(size=(n_features, n_features))
        return a @ a.T / n_features + 0.5 * np.eye(n_features)

    if covariance_type == "full":
        return np.stack([spd() for _ in range(n_components)])
    if covariance_type == "tied":
        return spd()
    if covariance_type == "diag":
        return rng.uniform(0.3, 2.0, size=(n_components, n_features))
    return rng.uniform(0.3, 2.0, size=n_components)


def random_params(rng, covariance_type, n_components=3, n_features=2, spread=4.0):
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=spread, size=(n_components, n_features))
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    return gmm.GMMParams.from_covariances(weights, means, covariances, covariance_type)


def full_covariances(params):
    """``(K, D, D)`` covariance matrices of any covariance type, in numpy."""
    covs = np.asarray(params.covariances)
    k, d = params.n_components, params.n_features
    if params.covariance_type == "tied":
        return np.broadcast_to(covs, (k, d, d))
    if params.covariance_type == "diag":
        return np.stack([np.diag(c) for c in covs])
    if params.covariance_type == "spherical":
        return np.stack([c * np.eye(d) for c in covs])
    return covs


def sample_numpy(rng, params, n):
    """Samples drawn with numpy (independent of gmm.sample)."""
    weights = np.asarray(params.weights)
    covs = full_covariances(params)
    k = params.n_components
    labels = rng.choice(k, size=n, p=weights / weights.sum())
    X = np.stack([rng.multivariate_normal(np.asarray(params.means)[j], covs[j]) for j in labels])
    return X, labels


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def _subprocesses_share_a_compilation_cache(tmp_path_factory):
    """Python subprocesses of the suite (CLI runs, notebook kernels, multi-
    process fits) share one persistent compilation cache, so a program one
    of them compiled is loaded, not compiled again, by the next.

    This process imported gmm_jax (which reads the variable) before any
    fixture runs, so only its children use the cache. A cache folder the
    user set already is kept (and then this process uses it too).
    """
    if os.environ.get(_CACHE_ENV_VAR):
        yield
        return
    os.environ[_CACHE_ENV_VAR] = str(tmp_path_factory.mktemp("jax_cache"))
    yield
    del os.environ[_CACHE_ENV_VAR]


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux
        return 0


def _release_compiled_programs():
    import gc

    jax.clear_caches()
    gc.collect()
    try:  # hand the freed heap back to the system (glibc keeps it otherwise)
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs_after_each_file():
    """Frees every compiled program when a test file ends.

    A worker runs dozens of files, each compiling its own programs (a
    compiled ``gmm.fit`` holds tens of MB of JIT code and buffers): kept for
    the whole session they took a worker to 4.7 GB (3.6 GB with this). A
    program that a later file needs again is compiled again.
    """
    yield
    _release_compiled_programs()


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs_before_a_limit():
    """Frees JAX's compiled programs when the process nears the kernel's memory-map limit or 1.5 GB.

    Each compiled XLA CPU program holds a few hundred memory mappings of JIT
    code (measured: about 425 per compiled ``gmm.fit``), and Linux allows
    65,530 per process (``vm.max_map_count``): past that, compiling segfaults.
    The whole suite compiles far more programs than that in one process, so
    the caches are cleared (which unmaps them) whenever the count passes
    40,000. The parametrised files compile a program per case: without the
    1.5 GB rule a worker reached 3.1 GB within tests/test_covariance.py.
    Tests only ever compare cache sizes within themselves.
    """
    yield
    if _memory_maps() > 40_000 or _resident_bytes() > 1.5 * 2**30:
        _release_compiled_programs()

