"""The documentation site builds from the docstrings and notebooks with no warning."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.docs
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    # -W: every warning (a broken cross-reference, a malformed docstring, a
    # notebook that does not render) fails the build; --keep-going lists them all.
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    html = tmp_path / "html"
    assert 'id="gmm_jax.fit"' in (html / "api.html").read_text()
    assert 'id="gmm_jax.sklearn.GaussianMixture"' in (html / "sklearn.html").read_text()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.stem for p in (html / "gallery").glob("*.html")) == notebooks
