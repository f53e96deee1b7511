import math

import torch

from synco.eval import knn_accuracy, knn_predict


def test_knn_predict_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(30, 5, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(4, (30,), generator=g)
    feats = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    scores = knn_predict(feats, bank, labels, 4, k=7, temperature=0.1)
    for b in range(6):
        sims = sorted(((float(feats[b] @ bank[m]), int(labels[m])) for m in range(30)), reverse=True)[:7]
        expected = [sum(math.exp(s / 0.1) for s, c in sims if c == cls) for cls in range(4)]
        torch.testing.assert_close(scores[b], torch.tensor(expected, dtype=torch.float64))


def test_knn_accuracy_on_separable_clusters_and_k_larger_than_bank():
    centers = torch.eye(3)
    bank = centers.repeat_interleave(4, 0) + 0.01 * torch.randn(12, 3)
    test = centers + 0.01 * torch.randn(3, 3)
    result = knn_accuracy(bank, torch.arange(3).repeat_interleave(4), test, torch.arange(3), 3, k=200)
    assert result == {"top1": 100.0, "top5": 100.0}


def test_knn_accuracy_on_features_of_very_different_norms_matches_the_loop_reference():
    """Backbone features are not unit-norm: the vote must use cosine similarity, not dot products.

    Norms spread over two orders of magnitude make the dot-product neighbours differ from the cosine
    ones; 23 test rows in chunks of 5 cross the chunk boundary with a remainder.
    """
    from reference import knn_reference

    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 6, generator=g)
    train_labels = torch.randint(4, (60,), generator=g)
    test_labels = torch.randint(4, (23,), generator=g)
    scale = lambda n: torch.exp(torch.empty(n, 1).uniform_(-2.3, 2.3, generator=g))
    train = (centres[train_labels] + 0.9 * torch.randn(60, 6, generator=g)) * scale(60)
    test = (centres[test_labels] + 0.9 * torch.randn(23, 6, generator=g)) * scale(23)
    expected = knn_reference(train, train_labels, test, test_labels, 4, k=9, temperature=0.07)
    assert knn_accuracy(train, train_labels, test, test_labels, 4, k=9, temperature=0.07, chunk=5) == expected
    dot_votes = knn_predict(test, train, train_labels, 4, k=9, temperature=70.0).argmax(1)  # unnormalised
    cosine_votes = knn_predict(torch.nn.functional.normalize(test, dim=1), torch.nn.functional.normalize(train, dim=1),
                               train_labels, 4, k=9, temperature=0.07).argmax(1)
    assert not torch.equal(dot_votes, cosine_votes)  # the case does tell normalised from unnormalised
    assert 0 < expected["top1"] < 100
