"""JAX's persistent compilation cache, switched on in one line.

A first ``fit`` of a new shape spends most of its time compiling. JAX can
keep compiled programs on disk and reuse them in later Python sessions;
``enable_compilation_cache`` points it at a folder and lowers JAX's
thresholds so that gmm_jax's programs (most compile in well under JAX's
default 1 s minimum) are written too.

Setting the environment variable ``GMM_JAX_CACHE_DIR`` to a folder before
``import gmm_jax`` does the same for every process that inherits it (a
notebook kernel, a subprocess, a batch job).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_compilation_cache"]

ENV_VAR = "GMM_JAX_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gmm_jax/jax`` (``~/.cache/gmm_jax/jax`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return Path(base) / "gmm_jax" / "jax"


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Keeps compiled programs on disk so later Python sessions reuse them.

    Switches on JAX's persistent compilation cache in ``path`` for this
    process: every program compiled from now on (by gmm_jax or by any other
    JAX code) is stored there, and a later process that enables the same
    folder loads it instead of compiling. Call it once, before the first
    ``fit``; calling it again with another folder moves the cache there.

    The cache is trusted input: anyone who can write to the folder can make
    your process run code, so do not share it with users you do not trust
    (JAX's own warning).

    Args:
      path: the cache folder, created if missing. When None,
        ``$GMM_JAX_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/gmm_jax/jax``
        (``~/.cache/gmm_jax/jax``).

    Returns:
      The absolute path of the cache folder.

    Raises:
      ValueError: if ``path`` exists and is not a folder, or cannot be created.

    Example:
      >>> import tempfile
      >>> import gmm_jax as gmm
      >>> folder = gmm.enable_compilation_cache(tempfile.mkdtemp())  # doctest: +SKIP
      >>> result = gmm.fit(jax.random.key(0), X, 3)  # compiled once, then read from folder  # doctest: +SKIP
    """
    import jax
    from jax._src import compilation_cache as _jax_cache

    if path is None:
        path = os.environ.get(ENV_VAR) or default_cache_dir()
    folder = Path(path).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"path={str(folder)!r} is a file; pass a folder for the "
            "compilation cache")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"path={str(folder)!r}: cannot create the compilation cache folder "
            f"({e.strerror}); pass a writable folder") from None
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # JAX stores only programs that took at least 1 s to compile; gmm_jax's
    # take 0.1–2 s each, and a session compiles many of them.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if previous and previous != str(folder):
        # JAX opens the cache once per process; make it reopen in the new folder.
        _jax_cache.reset_cache()
    return folder


def _enable_from_environment() -> None:
    if os.environ.get(ENV_VAR):
        enable_compilation_cache(os.environ[ENV_VAR])


_enable_from_environment()
