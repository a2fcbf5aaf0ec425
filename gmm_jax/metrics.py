"""Evaluation metrics for clusterings."""

from __future__ import annotations

import numpy as np

__all__ = ["clustering_accuracy"]


def _as_labels(labels, name):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}.")
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels, got {labels.min()}.")
    return labels


def clustering_accuracy(true_labels, pred_labels):
    """Accuracy of predicted cluster labels after the best matching of labels.

    Cluster labels are arbitrary, so predicted label ``j`` is matched to true
    label ``mapping[j]`` by the Hungarian algorithm on the confusion matrix
    (``scipy.optimize.linear_sum_assignment``): ``O(K^3)``, not ``K!``.

    Args:
      true_labels: ``(n_samples,)`` non-negative integer labels.
      pred_labels: ``(n_samples,)`` non-negative integer labels.

    Returns:
      ``(accuracy, mapping)``: the fraction of samples whose matched label is
      right, and an integer array with ``mapping[pred] = true`` for every
      predicted label (``-1`` for a predicted label left unmatched when there
      are more predicted than true clusters).

    Example:
      >>> from gmm_jax.metrics import clustering_accuracy
      >>> acc, mapping = clustering_accuracy([0, 0, 1, 1, 2], [2, 2, 0, 0, 0])
      >>> acc, mapping.tolist()
      (0.8, [1, 2, 0])
    """
    true_labels = _as_labels(true_labels, "true_labels")
    pred_labels = _as_labels(pred_labels, "pred_labels")
    if true_labels.shape != pred_labels.shape:
        raise ValueError(
            f"true_labels and pred_labels must have the same length, got {true_labels.shape[0]} "
            f"and {pred_labels.shape[0]}."
        )
    if true_labels.size == 0:
        raise ValueError("clustering_accuracy needs at least one sample.")
    # Imported here: scipy.optimize takes ~0.3 s to import, and `import gmm_jax`
    # should not pay for it.
    from scipy.optimize import linear_sum_assignment

    n_true, n_pred = true_labels.max() + 1, pred_labels.max() + 1
    confusion = np.zeros((n_pred, n_true), dtype=np.int64)
    np.add.at(confusion, (pred_labels, true_labels), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping = np.full(n_pred, -1, dtype=np.int64)
    mapping[rows] = cols
    accuracy = confusion[rows, cols].sum() / true_labels.size
    return float(accuracy), mapping
