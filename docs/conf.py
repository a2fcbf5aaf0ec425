"""Sphinx configuration of the gmm_jax documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e ".[docs]"``). The API pages are generated from the
docstrings (autodoc + napoleon, Google style); the notebooks of
``notebooks/`` are rendered as the gallery with their stored outputs
(myst-nb, no execution: the test suite executes them).
"""

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# Sphinx reads sources inside this folder only: the gallery is a fresh copy
# of the notebooks at every build (docs/gallery/ is not committed).
GALLERY = DOCS / "gallery"
shutil.rmtree(GALLERY, ignore_errors=True)
GALLERY.mkdir()
for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy(notebook, GALLERY / notebook.name)

import gmm_jax  # noqa: E402

project = "gmm_jax"
author = "the gmm_jax authors"
copyright = "the gmm_jax authors"
release = gmm_jax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"  # rendered with the outputs stored in the notebooks
myst_enable_extensions = ["dollarmath"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Offline builds (no network at build time): links to other projects' docs
# are written as plain names.
intersphinx_mapping = {}

html_theme = "furo"
html_title = f"gmm_jax {release}"
# A class's "Attributes:" section is its fields' documentation; rendered as
# fields of the class (not as separate entries), it cannot clash with the
# entries autodoc would make for NamedTuple fields, which are skipped.
napoleon_use_ivar = True


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
