"""gmm.enable_compilation_cache: a second Python session does not compile."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gmm_jax as gmm
from gmm_jax import _cache

ROOT = Path(__file__).resolve().parents[1]

# One seed-sized fit in a fresh interpreter; prints JAX's cache events.
_FIT = """
import json, time
import jax
events = {}
jax.monitoring.register_event_listener(
    lambda name, **_: events.__setitem__(name, events.get(name, 0) + 1))
import gmm_jax as gmm
if %(call)r:
    gmm.enable_compilation_cache(%(folder)r)
X = jax.random.normal(jax.random.key(0), (500, 2))
start = time.perf_counter()
gmm.fit(jax.random.key(1), X, 3).params.means.block_until_ready()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "hits": events.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": events.get("/jax/compilation_cache/cache_misses", 0)}))
"""


def _session(folder, *, call, env_var):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop(_cache.ENV_VAR, None)
    if env_var:
        env[_cache.ENV_VAR] = str(folder)
    proc = subprocess.run(
        [sys.executable, "-c", _FIT % {"call": call, "folder": str(folder)}],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_second_session_loads_every_program_instead_of_compiling(tmp_path):
    # The first session switches the cache on by the call, the second by
    # the environment variable alone.
    folder = tmp_path / "cache"
    first = _session(folder, call=True, env_var=False)
    second = _session(folder, call=False, env_var=True)
    assert first["misses"] > 0                     # compiled, and stored
    assert any(folder.iterdir())
    assert second["misses"] == 0 and second["hits"] >= first["misses"]


def test_enable_compilation_cache_refuses_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file; pass a folder"):
        gmm.enable_compilation_cache(path)


def test_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cache.default_cache_dir() == tmp_path / "gmm_jax" / "jax"
