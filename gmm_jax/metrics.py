"""Evaluation metrics for clusterings."""

from __future__ import annotations

import numpy as np

__all__ = ["clustering_accuracy"]


def _as_labels(labels, name):
    """``(classes, codes)``: the distinct labels and each sample's index into them.

    Labels are relabelled first (``np.unique``'s inverse), so everything after
    this costs memory in the number of *distinct* labels, whatever their
    values (a label of 1e9 is one class, not a billion).
    """
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D sequence of labels, got a single {type(labels).__name__}.")
    try:
        array = np.asarray(labels)
    except Exception as err:  # ragged nested sequences
        raise ValueError(f"{name} must be a 1-D sequence of labels; could not convert it: {err}") from None
    if array.ndim != 1:
        hint = f" Pass {name}.ravel() for a column of labels." if array.ndim == 2 and 1 in array.shape else ""
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}.{hint}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real or hashable labels, got complex numbers.")
    try:
        classes, codes = np.unique(array, return_inverse=True)
    except TypeError:
        # Object labels that cannot be sorted (e.g. a mix of None and strings):
        # number them in order of appearance; they only need to be hashable.
        index = {}
        try:
            codes = np.array([index.setdefault(label, len(index)) for label in array.tolist()], dtype=np.int64)
        except TypeError as err:
            raise TypeError(f"{name} must hold hashable labels: {err}") from None
        classes = np.empty(len(index), dtype=object)
        classes[:] = list(index)
    return classes, codes.reshape(-1)


# Predicted labels up to this value index the returned mapping array
# directly; larger ones (hashes, ids) get a dict, so the mapping never costs
# memory in proportion to a label's value.
_MAX_INDEX_LABEL = 2**20


def _is_index(classes, limit=None) -> bool:
    """True when the (sorted, distinct) labels are non-negative integers, below ``limit`` if given."""
    if classes.dtype == bool or not np.issubdtype(classes.dtype, np.number) or not classes.size:
        return False
    if not np.issubdtype(classes.dtype, np.integer):
        if not (np.all(np.isfinite(classes)) and np.all(classes == np.round(classes))):
            return False
    return bool(classes[0] >= 0 and (limit is None or classes[-1] < limit))


def clustering_accuracy(true_labels, pred_labels):
    """Accuracy of predicted cluster labels after the best matching of labels.

    Cluster labels are arbitrary, so each predicted label is matched to at
    most one true label, and each true label to at most one predicted label,
    by the Hungarian algorithm on the confusion matrix
    (``scipy.optimize.linear_sum_assignment``): ``O(K^3)``, not ``K!``.
    Labels may be any hashable values (integers of any size, strings, ...),
    as in scikit-learn's metrics; memory grows with the number of distinct
    labels, not with their values.

    Args:
      true_labels: ``(n_samples,)`` labels.
      pred_labels: ``(n_samples,)`` labels, e.g. ``gmm.predict(params, X)``.

    Returns:
      ``(accuracy, mapping)``: the fraction of samples whose matched label is
      right, and the matching ``mapping[pred] = true``. When the predicted
      labels are non-negative integers below ``2**20`` (component indices,
      as from ``gmm.predict``), ``mapping`` is a NumPy array with
      ``max(pred_labels) + 1`` entries, so ``mapping[pred_labels]`` renames
      a whole prediction; an index that is never predicted takes a true
      label that no predicted label matched, if one is left; a predicted
      label left unmatched (more predicted than true clusters) gets ``-1``
      when the true labels are non-negative integers, ``None`` (in an object
      array) otherwise. For other predicted labels (strings, negative
      integers, integers of ``2**20`` or more) ``mapping`` is a ``dict`` from
      every predicted label to its true label (``None`` when unmatched).

    Raises:
      ValueError: if the labels are not 1-D, differ in length, or are empty.

    Example:
      >>> from gmm_jax.metrics import clustering_accuracy
      >>> acc, mapping = clustering_accuracy([0, 0, 1, 1, 2], [2, 2, 0, 0, 0])
      >>> acc, mapping.tolist()
      (0.8, [1, 2, 0])
      >>> acc, mapping = clustering_accuracy(["cat", "cat", "dog"], [1, 1, 0])
      >>> acc, mapping.tolist()
      (1.0, ['dog', 'cat'])
    """
    true_classes, true_codes = _as_labels(true_labels, "true_labels")
    pred_classes, pred_codes = _as_labels(pred_labels, "pred_labels")
    if true_codes.shape != pred_codes.shape:
        raise ValueError(
            f"true_labels and pred_labels must have the same length, got {true_codes.shape[0]} "
            f"and {pred_codes.shape[0]}."
        )
    if true_codes.size == 0:
        raise ValueError("clustering_accuracy needs at least one sample.")
    from scipy.optimize import linear_sum_assignment  # imported on use: scipy is slow to import

    confusion = np.zeros((pred_classes.size, true_classes.size), dtype=np.int64)
    np.add.at(confusion, (pred_codes, true_codes), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    accuracy = float(confusion[rows, cols].sum() / true_codes.size)
    matched = dict(zip(rows.tolist(), cols.tolist()))
    if not _is_index(pred_classes, _MAX_INDEX_LABEL):
        true_list = true_classes.tolist()
        return accuracy, {
            p: (true_list[matched[i]] if i in matched else None) for i, p in enumerate(pred_classes.tolist())
        }
    size = int(pred_classes[-1]) + 1
    if _is_index(true_classes):
        mapping = np.full(size, -1, dtype=np.int64)
        values = true_classes.astype(np.int64)
    else:
        mapping = np.full(size, None, dtype=object)
        values = true_classes
    positions = pred_classes.astype(np.int64)
    mapping[positions[rows]] = values[cols]
    # A component index that is never predicted matches nothing in the data;
    # it takes a true label left over (as a zero row of the confusion matrix
    # would), so that with as many components as true clusters the mapping
    # is a permutation.
    never_predicted = np.setdiff1d(np.arange(size), positions)
    leftover = np.setdiff1d(np.arange(true_classes.size), cols)
    n = min(never_predicted.size, leftover.size)
    mapping[never_predicted[:n]] = values[leftover[:n]]
    return accuracy, mapping
