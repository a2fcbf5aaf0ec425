"""The reference datasets shared by ``mclust_reference.R`` and the tests.

``python -m tests.reference.mclust_data`` writes ``iris.csv`` (scikit-learn's
iris, 150 x 4) and ``wine.csv`` (scikit-learn's wine, 178 x 13, each feature
standardised to mean 0 and standard deviation 1 with ``ddof=0``) beside this
file. ``faithful.csv`` (R's Old Faithful eruptions, 272 x 2) is written by
``mclust_reference.R`` from R's ``datasets`` package. All three are committed,
so neither R nor the network is needed at test time; the R script reads the
same files, so both sides fit exactly the same numbers.
"""

from __future__ import annotations

import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATASETS = ("iris", "wine", "faithful")


def load(name: str) -> np.ndarray:
    """The dataset ``name`` as a float64 ``(n_samples, n_features)`` array."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}.")
    return np.loadtxt(HERE / f"{name}.csv", delimiter=",", skiprows=1, dtype=np.float64)


def _write(name: str, X: np.ndarray, columns) -> None:
    with open(HERE / f"{name}.csv", "w") as f:
        f.write(",".join(columns) + "\n")
        for row in X:
            f.write(",".join(repr(float(v)) for v in row) + "\n")


def main() -> None:
    from sklearn.datasets import load_iris, load_wine

    iris = load_iris()
    _write("iris", iris.data, [c.replace(" (cm)", "").replace(" ", "_") for c in iris.feature_names])
    wine = load_wine()
    X = wine.data
    _write("wine", (X - X.mean(axis=0)) / X.std(axis=0), wine.feature_names)


if __name__ == "__main__":
    main()
