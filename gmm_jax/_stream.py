"""`fit_stream`: exact EM over data that does not fit in memory, one pass per iteration.

EM needs only sums over samples, so an iteration over a stream of host
batches is: accumulate ``SufficientStatistics`` batch by batch with the same
jitted E-step as :func:`gmm_jax.fit` (``_em.accumulate_statistics``), then
apply the same M-step (``_em.params_from_statistics``). The result is the
in-memory EM up to the order of floating-point summation. Memory is bounded by
a batch (plus a fixed-size sample for initialisation), never by the stream.

With ``nan_policy="marginalize"`` each batch's statistics are the
missing-data ones (``_em.statistics`` with ``n_slots``, as ``fit`` computes
them), so the streamed fit is the exact missing-data EM.

As in ``fit``, the work happens in coordinates centred near the data mean so
that float32 keeps its digits on data far from the origin: the exact weighted
mean from the initialisation pass, or the mixture mean of ``init_params``
(which equals the data mean for parameters that EM produced).
"""

from __future__ import annotations

import collections.abc
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gmm_jax import _driver, _em, _missing, _rows, _tuning, _validation
from gmm_jax._em import FitResult
from gmm_jax._params import GMMParams, check_init_params
from gmm_jax._precision import float32_matmuls, with_matmul_precision

__all__ = ["fit_stream"]

_DEFAULT_INIT_SAMPLE = 2**16


# ---------------------------------------------------------------------------
# Compiled steps: the engine's E-step sums and EM update, nothing else.


# n_slots (static): the missing-data pass's bound on NaN entries per row
# (_em.statistics, as fit's); None for complete data.
@functools.partial(jax.jit, static_argnames=("chunk_size", "tuning", "n_slots"))
@float32_matmuls
def _batch_statistics(params, X, w, center, chunk_size, tuning, n_slots=None):
    return _em.statistics(params, X, w, chunk_size, center, tuning, n_slots)


@functools.partial(jax.jit, static_argnames=("chunk_size", "tuning", "n_slots"))
@float32_matmuls
def _add_batch_statistics(total, params, X, w, center, chunk_size, tuning, n_slots=None):
    stats = _em.statistics(params, X, w, chunk_size, center, tuning, n_slots)
    return jax.tree_util.tree_map(jnp.add, total, stats)


@jax.jit
@float32_matmuls
def _em_step(state: _em.EMState, stats, tol, reg_covar, iteration, prior=None):
    update = _em.em_update(stats, state.params, reg_covar, prior=prior)
    return _em.advance(state, update, tol, iteration), update.log_likelihood


# ---------------------------------------------------------------------------
# Reading the stream.


def _check_source(source):
    if callable(source):
        return source
    if isinstance(source, collections.abc.Iterator):
        raise TypeError(
            f"source must be a callable that returns a fresh iterator of batches, got a one-shot "
            f"{type(source).__name__}, which EM would exhaust in its first pass. Wrap what creates "
            "it in a function, e.g. source=lambda: (X[i:i + 10_000] for i in range(0, len(X), 10_000))."
        )
    if isinstance(source, collections.abc.Iterable):
        raise TypeError(
            f"source must be a callable that returns a fresh iterator of batches, got a "
            f"{type(source).__name__}; pass source=lambda: iter(batches)."
        )
    raise TypeError(f"source must be a callable that returns an iterator of batches, got {type(source).__name__}.")


class _Stream:
    """Validated passes over ``source()``: yields ``(X (n_b, D), w (n_b,))`` host arrays."""

    def __init__(self, source, nan_policy="raise", covariance_type="full"):
        self.source = _check_source(source)
        self.n_features = None
        self.dtype = None
        self.n_rows = None  # rows per pass, once one pass has completed
        self.n_passes = 0
        self._last_iterator = None
        self.nan_policy = nan_policy
        self.covariance_type = covariance_type
        self.max_missing = 0  # the most NaN entries in one row, over every row read so far

    @property
    def n_slots(self):
        """The missing-data pass's static bound on NaN entries per row (None: complete data).

        The most NaN entries in a row read so far (full/tied; diag and
        spherical need none): it only grows, and only until every row has
        been read once, so the batch step compiles again at most a few times
        in the first pass, never per batch. A bound above a batch's own
        maximum gives the same statistics.
        """
        if self.nan_policy != "marginalize":
            return None
        return self.max_missing if self.covariance_type in ("full", "tied") else 0

    def _iterator(self):
        iterator = self.source()
        try:
            iterator = iter(iterator)
        except TypeError:
            raise TypeError(
                f"source() must return an iterable of batches, got {type(iterator).__name__}."
            ) from None
        if iterator is self._last_iterator:
            raise ValueError(
                "source() returned the same iterator twice; it must return a fresh iterator on every "
                "call (EM reads the data once per iteration)."
            )
        self._last_iterator = iterator
        return iterator

    def first_batch(self):
        """Reads and checks only the first batch (to learn the dtype and width of the data)."""
        for X, w in self._batches(self._iterator(), 0, check_rows=False):
            return X, w
        raise ValueError("the stream is empty: source() yielded no rows.")

    def one_pass(self):
        """Yields the batches of one full pass (at least one row; the same rows as earlier passes)."""
        pass_index = self.n_passes
        self.n_passes += 1
        yield from self._batches(self._iterator(), pass_index)

    def _batches(self, iterator, pass_index, check_rows=True):
        n_rows = 0
        index = 0
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except Exception as error:  # the user's source failed: say where
                error.add_note(f"gmm_jax.fit_stream: raised by source() while reading batch {index} (0-based) of "
                               f"pass {pass_index} (pass 0 is the initialisation pass without init_params).")
                raise
            X, w = self._check_batch(batch, index, pass_index)
            index += 1
            n_rows += X.shape[0]
            if X.shape[0]:
                yield X, w
        if not check_rows:
            return
        if n_rows == 0:
            again = "" if pass_index == 0 else (
                f" in pass {pass_index}; earlier passes read {self.n_rows} rows. source() must return "
                "a fresh iterator over the same data on every call"
            )
            raise ValueError(f"the stream is empty: source() yielded no rows{again}.")
        if self.n_rows is not None and n_rows != self.n_rows:
            raise ValueError(
                f"source() yielded {n_rows} rows in pass {pass_index} but {self.n_rows} before; it must "
                "replay the same data on every call."
            )
        self.n_rows = n_rows

    def _check_batch(self, batch, index, pass_index):
        where = f"batch {index} (0-based) of pass {pass_index}"
        X, w = _driver.read_batch(batch, where, self.n_features, self.dtype, self.nan_policy)
        self.n_features, self.dtype = X.shape[1], X.dtype
        if self.nan_policy == "marginalize":
            self.max_missing = max(self.max_missing, _missing.max_missing(X))
        return X, w


class _Reservoir:
    """A uniform sample of ``size`` rows (with their weights) from one pass: Algorithm R, batched."""

    def __init__(self, size, rng):
        self.size, self.rng = size, rng
        self.X = self.w = None
        self.seen = 0

    def add(self, X, w):
        if self.X is None:
            self.X = np.empty((self.size, X.shape[1]), X.dtype)
            self.w = np.empty((self.size,), w.dtype)
        fill = min(max(self.size - self.seen, 0), X.shape[0])
        self.X[self.seen : self.seen + fill] = X[:fill]
        self.w[self.seen : self.seen + fill] = w[:fill]
        # Row number i (0-based over the stream) replaces a uniform slot j <= i when j < size.
        rows = np.arange(fill, X.shape[0])
        slots = self.rng.integers(0, self.seen + rows + 1)
        keep = slots < self.size
        rows, slots = rows[keep], slots[keep]
        # A slot hit twice in one batch keeps the later row, as the sequential algorithm would.
        last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
        self.X[slots[last]] = X[rows[last]]
        self.w[slots[last]] = w[rows[last]]
        self.seen += X.shape[0]

    def sample(self):
        n = min(self.seen, self.size)
        return self.X[:n], self.w[:n]


# ---------------------------------------------------------------------------


def _print_pass(iteration, log_likelihood, change, n_rows, seconds):
    print(
        f"  pass {iteration:4d}   log-likelihood {log_likelihood: .8f}   change {change: .3e}"
        f"   {n_rows} rows in {seconds:.2f} s",
        flush=True,
    )


@with_matmul_precision
def fit_stream(
    key,
    source,
    n_components: int,
    *,
    covariance_type: str = "full",
    init: str = "kmeans",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: GMMParams | None = None,
    init_sample_size: int = _DEFAULT_INIT_SAMPLE,
    verbose: bool = False,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    prior=None,
    nan_policy: str = "raise",
    matmul_precision: str | None = None,
) -> FitResult:
    """Fits a Gaussian mixture by exact EM to data streamed in host batches.

    Each EM iteration is one pass over ``source()``: every batch goes through
    the same jitted E-step as :func:`gmm_jax.fit`, its sufficient statistics
    are summed on the device, and the same M-step follows. With the same
    starting parameters, ``fit_stream`` and ``fit`` take the same steps, up to
    floating-point summation order. Memory is bounded by the batch size (and
    ``init_sample_size``), not by the length of the stream.

    Args:
      key: PRNG key; draws the initialisation sample and seeds ``init``.
      source: a *callable* returning a fresh iterator of batches on every call
        (EM reads the data once per iteration). A batch is an array
        ``(n_b, n_features)`` or a pair ``(array, sample_weight (n_b,))``;
        batch sizes may vary. For an ``.npy`` file larger than memory::

            X = np.load(path, mmap_mode="r")
            source = lambda: (X[i:i + 100_000] for i in range(0, len(X), 100_000))

      n_components: number of mixture components.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      init: as in :func:`gmm_jax.fit`, applied to a uniform sample of
        ``init_sample_size`` rows drawn in one extra pass (reservoir
        sampling), which also computes the exact data mean. Ignored with
        ``init_params``.
      max_iter: maximum number of EM iterations (passes).
      tol: stop when the mean log-likelihood changes by less than ``tol``;
        ``0.0`` runs exactly ``max_iter`` passes.
      reg_covar: non-negative value added to the covariance diagonal.
      init_params: a ``GMMParams`` to start from, e.g. the ``params`` of an
        earlier (interrupted) ``fit_stream`` to resume it; no extra pass.
      init_sample_size: rows sampled for the initialisation.
      verbose: report each pass: on a terminal or in a notebook a progress bar
        of its rows (tqdm, on stderr) ending with the log-likelihood and its
        change; elsewhere one printed line per pass with those and the time.
      chunk_size: rows per chunk inside each batch's compiled step (within
        each device's rows with ``mesh``); default bounds the step's memory as
        in ``fit``.
      prior: optional ``ConjugatePrior``: MAP-EM, as in :func:`gmm_jax.fit`.
      nan_policy: ``"raise"`` (default): NaN in a batch is an error.
        ``"marginalize"``: NaN entries (and the masked entries of a
        ``numpy.ma.MaskedArray`` batch) are missing at random, and every pass
        accumulates the missing-data statistics of :func:`gmm_jax.fit` with
        the same option: the exact missing-data EM. Rows with nothing
        observed carry no weight; the initialisation runs on the sample with
        each NaN replaced by the sample's centre, as ``fit`` does; inf is an
        error. For ``full`` and ``tied`` covariances the compiled batch step
        is specialised to the largest number of NaN entries in one row (its
        cost grows with it): the largest over the rows read so far. The
        initialisation pass reads every row, so that number is then fixed
        for the whole fit; with ``init_params`` it can grow during the first
        pass, compiling the step again a few times at most, and never later.
      mesh: optional ``Mesh`` over devices of this process (e.g.
        ``gmm.distributed.data_mesh()``): every batch is split by rows over
        them, as :func:`gmm_jax.distributed.shard` does, and the statistics
        are reduced across devices by XLA.
      matmul_precision: as in :func:`gmm_jax.fit`.

    Returns:
      A ``FitResult``, as from :func:`gmm_jax.fit`.

    Raises:
      TypeError: ``source`` is not a callable (e.g. a generator, which could
        be read only once).
      ValueError: bad options, an empty stream, a batch with the wrong number
        of features (naming the batch), NaN values (unless
        ``nan_policy="marginalize"``), inf values, a feature that no row
        observes (``"marginalize"``), or a stream that changes length
        between passes.
      Exception: whatever ``source()`` raises, with a note naming the pass
        and the batch; from an EM pass it also carries ``last_params``, the
        parameters after the last complete iteration, to resume from with
        ``init_params=error.last_params``.

    Example:
      >>> import jax, numpy as np, gmm_jax as gmm
      >>> rng = np.random.default_rng(0)
      >>> X = np.concatenate([rng.normal(-4, 1, (500, 2)), rng.normal(4, 1, (500, 2))]).astype(np.float32)
      >>> batches = lambda: (X[i:i + 100] for i in range(0, len(X), 100))
      >>> result = gmm.fit_stream(jax.random.key(0), batches, 2, covariance_type="diag")
      >>> bool(result.converged), sorted(result.params.weights.round(2).tolist())
      (True, [0.5, 0.5])
      >>> holes = X.copy()
      >>> holes[rng.random(X.shape) < 0.2] = np.nan                  # a fifth of the entries missing
      >>> gappy = lambda: (holes[i:i + 100] for i in range(0, len(holes), 100))
      >>> missing = gmm.fit_stream(jax.random.key(0), gappy, 2, covariance_type="diag", nan_policy="marginalize")
      >>> sorted(missing.params.means[:, 0].round().astype(int).tolist())
      [-4, 4]
    """
    del matmul_precision  # in force around this call (with_matmul_precision)
    if isinstance(key, jax.core.Tracer):
        raise TypeError(
            "fit_stream reads its source on the host, one pass per EM iteration, so it cannot run inside "
            "jax.jit, vmap or grad; call it directly (each pass runs compiled steps)."
        )
    _validation.check_key(key)
    _validation.check_nan_policy(nan_policy)
    _validation.check_covariance_type(covariance_type)
    if prior is not None:  # the type and values now; the number of features once it is known
        _driver.check_prior(prior, None, covariance_type, jnp.result_type(float))
    stream = _Stream(source, nan_policy, covariance_type)
    missing = nan_policy == "marginalize"
    # n_samples is not known yet: check everything else now, n_components after the first pass.
    options = _driver.fit_options(
        n_samples=None, n_features=None, n_components=n_components, covariance_type=covariance_type, init=init,
        n_init=1, max_iter=max_iter, verbose=verbose, chunk_size=chunk_size, tuning=_tuning.for_platform(
            jax.default_backend() if mesh is None else mesh.devices.flat[0].platform),
    )  # fmt: skip
    tol, reg_covar = _driver.check_tolerances(tol, reg_covar, jnp.result_type(float))
    init_sample_size = _validation.check_int(init_sample_size, "init_sample_size", 1)
    if mesh is not None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
        if any(d.process_index != jax.process_index() for d in mesh.devices.flat):
            raise ValueError(
                "fit_stream splits each batch over the devices of this process; the mesh has devices "
                "of other processes. Build it from jax.local_devices()."
            )

    if init_params is None:
        seed = np.asarray(jax.random.bits(jax.random.fold_in(key, 1), (4,), jnp.uint32))
        reservoir = _Reservoir(init_sample_size, np.random.default_rng(seed))
        weight_sum, observed = 0.0, False
        for X, w in stream.one_pass():
            reservoir.add(X, w)
            if missing:  # rows with nothing observed carry no weight
                seen = ~np.isnan(X)
                w = np.where(seen.any(axis=1), w, 0)
                observed = observed | seen.any(axis=0)
            weight_sum += float(w.sum(dtype=np.float64))
        if missing:
            _validation.check_observed_columns(observed, "the stream")
        _check_rows(stream.n_rows, options.n_components, weight_sum)
        tol, reg_covar = tol.astype(stream.dtype), reg_covar.astype(stream.dtype)
        # The whole stream has been read: its bound on NaN per row is final (fit's n_slots).
        options = options._replace(n_slots=stream.n_slots)
        X_sample, w_sample = (jnp.asarray(a) for a in reservoir.sample())
        w_sample = _driver.fit_weights(X_sample, w_sample, options)
        if not bool(jnp.any(w_sample > 0)):
            raise ValueError("every row of the initialisation sample has zero weight; increase init_sample_size.")
        if missing:
            _check_sample_observed(X_sample, w_sample)
        center = _driver.data_center(X_sample, w_sample, options)  # the sample's robust centre
        if X_sample.shape[0] < options.n_components:
            raise ValueError(f"n_components={options.n_components} must be <= n_samples={X_sample.shape[0]}.")
        prior = _driver.check_prior(prior, stream.n_features, covariance_type, stream.dtype)
        params = _driver.initialize(key, X_sample, w_sample, center, reg_covar, options, prior)
    else:
        check_init_params(init_params, options.n_components, init_params.n_features, covariance_type)
        stream.n_features = init_params.n_features
        X, _ = stream.first_batch()  # the data's dtype decides the parameters' dtype, as in fit
        tol, reg_covar = tol.astype(X.dtype), reg_covar.astype(X.dtype)
        params = init_params.astype(X.dtype)
        center = _rows.mixture_center(params)  # the bulk of the mixture (a robust centre of the data after EM)
        params = _driver.centred(params, center)
        prior = _driver.check_prior(prior, params.n_features, covariance_type, X.dtype)

    result = _run_stream_em(stream, params, center, tol, reg_covar, options, mesh, _driver.centred_prior(prior, center))
    if init_params is not None:
        _check_rows(stream.n_rows, options.n_components, None)
    return _driver.check_result(result, tol, "fit_stream")


def _check_sample_observed(X_sample, w_sample):
    """The initialisation sample (missing data) must observe every feature: the start imputes its centre."""
    never = np.flatnonzero(np.all(np.isnan(np.asarray(X_sample)[np.asarray(w_sample) > 0]), axis=0))
    if never.size:
        raise ValueError(
            f"every row of the initialisation sample of {X_sample.shape[0]} rows misses feature(s) "
            f"{never.tolist()} (NaN), which other rows of the stream observe; increase init_sample_size "
            "or pass init_params."
        )


def _check_rows(n_rows, n_components, weight_sum):
    if n_rows is not None and n_components > n_rows:
        raise ValueError(
            f"n_components={n_components} must be <= n_samples={n_rows}; use fewer components or more data."
        )
    if weight_sum is not None and not weight_sum > 0:
        raise ValueError("sample_weight is zero everywhere; at least one sample needs positive weight.")


def _interactive() -> bool:
    """Whether progress can be drawn as a bar: a terminal, or a notebook's kernel."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _pass_statistics(stream, params, center, options, mesh=None, progress=None):
    """One pass: sufficient statistics of the whole stream around ``params.means``.

    With a ``mesh``, each batch is split by rows over its devices (parameters
    replicated) and chunked within each device's rows, as in a sharded
    ``fit``. The split is a local ``device_put``: no collective per batch.
    ``progress``: optional callable, given the rows of each batch read.
    """
    n_devices = 1 if mesh is None else mesh.devices.size
    if mesh is not None:
        rows = tuple(mesh.axis_names)
        x_sharding, w_sharding = NamedSharding(mesh, PartitionSpec(rows, None)), NamedSharding(mesh, PartitionSpec(rows))
        params, center = jax.device_put((params, center), NamedSharding(mesh, PartitionSpec()))
    total = pending = None
    bucket = 0
    for X, w in stream.one_pass():
        if progress is not None:
            progress(X.shape[0])
        # Batches shorter than the longest so far are padded with zero weight,
        # so a ragged last batch does not compile a new step.
        bucket = max(bucket, -(-X.shape[0] // n_devices) * n_devices)
        X, w = _driver.pad_rows(X, w, bucket)
        n_slots = stream.n_slots  # this batch included
        chunk = _driver.batch_layout(options, bucket, X.shape[1], n_devices, n_slots)
        if mesh is None:
            X, w = jnp.asarray(X), jnp.asarray(w)
        else:
            X, w = jax.device_put(X, x_sharding), jax.device_put(w, w_sharding)
        if total is None:
            total = _batch_statistics(params, X, w, center, chunk_size=chunk, tuning=options.tuning,
                                      n_slots=n_slots)  # fmt: skip
        else:
            total = _add_batch_statistics(total, params, X, w, center, chunk_size=chunk, tuning=options.tuning,
                                          n_slots=n_slots)  # fmt: skip
        # Dispatch is asynchronous: let at most two batches be in flight, so a
        # fast reader cannot queue the whole stream in memory.
        if pending is not None:
            jax.block_until_ready(pending)
        pending = total.log_likelihood
    return total


def _run_stream_em(stream, params, center, tol, reg_covar, options, mesh, prior=None) -> FitResult:
    """The engine's EM loop with one pass over the stream per iteration: the same update and stopping rule."""
    dtype = params.means.dtype
    trace = np.full((options.max_iter,), -np.inf, dtype)
    state = _em.start_state(params, -jnp.inf)
    for i in range(options.max_iter):
        if bool(state.done):
            break
        start = time.perf_counter()
        # verbose: a progress bar of the pass's rows on a terminal or in a
        # notebook (tqdm), one line per pass otherwise (logs, pipes).
        bar = None
        if options.verbose and _interactive():
            bar = tqdm.tqdm(total=stream.n_rows, desc=f"  pass {i + 1}", unit=" rows", unit_scale=True,
                            file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        try:
            stats = _pass_statistics(stream, state.params, center, options, mesh, None if bar is None else bar.update)
        except Exception as error:
            if bar is not None:
                bar.close()
            # The parameters of the last complete pass, to resume from with init_params=.
            error.last_params = _driver.centred(state.params, -center)
            error.add_note(f"gmm_jax.fit_stream: the parameters after {int(state.n_iter)} complete EM "
                           "iteration(s) are in this exception's last_params; resume with init_params=last_params.")
            raise
        previous = float(state.log_likelihood)
        state, ll = _em_step(state, stats, tol, reg_covar, jnp.asarray(i, jnp.int32), prior)
        if bar is not None:
            bar.set_postfix_str(f"log-likelihood {float(ll):.8f}, change {float(ll) - previous:.3e}")
            bar.close()
        elif options.verbose:
            _print_pass(i + 1, float(ll), float(ll) - previous, stream.n_rows, time.perf_counter() - start)
        trace[i:] = float(state.log_likelihood)  # entries after convergence repeat the final value, as in fit
    lower_bound = state.log_likelihood
    if options.max_iter == 0:
        stats = _pass_statistics(stream, state.params, center, options, mesh)
        lower_bound = _em.objective(stats, state.params, prior)
    return _driver.host_result(state, trace, lower_bound, center)
