import itertools

import numpy as np
import pytest

from gmm_jax.metrics import clustering_accuracy


def brute_force_accuracy(true, pred, k):
    return max(np.mean(np.asarray(perm)[pred] == true) for perm in itertools.permutations(range(k)))


@pytest.mark.parametrize("seed", range(5))
def test_clustering_accuracy_equals_the_best_permutation(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, size=200)
    pred = np.where(rng.uniform(size=200) < 0.7, (true + 2) % 5, rng.integers(0, 5, size=200))
    accuracy, mapping = clustering_accuracy(true, pred)
    assert accuracy == pytest.approx(brute_force_accuracy(true, pred, 5))
    assert accuracy == pytest.approx(np.mean(mapping[pred] == true))
    assert sorted(mapping.tolist()) == list(range(5))


def test_clustering_accuracy_is_one_for_relabelled_clusters():
    true = np.array([0, 0, 1, 1, 2, 2])
    accuracy, mapping = clustering_accuracy(true, np.array([2, 2, 0, 0, 1, 1]))
    assert accuracy == 1.0
    assert mapping.tolist() == [1, 2, 0]


def test_clustering_accuracy_handles_more_predicted_than_true_clusters():
    accuracy, mapping = clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 2])
    assert accuracy == 0.75
    assert (mapping == -1).sum() == 1


def test_clustering_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy([0, 1], [0, 1, 1])


def test_clustering_accuracy_scales_to_many_clusters_without_permutations():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 60, size=5000)
    perm = rng.permutation(60)
    accuracy, mapping = clustering_accuracy(true, perm[true])
    assert accuracy == 1.0
    np.testing.assert_array_equal(mapping[perm], np.arange(60))
