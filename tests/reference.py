"""Float64, loop-based references written from the SynCo paper's equations (section 4.1, Eq. 4-11).

They share no code with the library: each synthetic negative is built one at a time from the formula,
replaying the documented draw order of ``SyntheticNegatives`` from the same generator state.
"""

import math

import torch


def normalize(v):
    return v / math.sqrt(float((v * v).sum()))


def hardest_rows(query, queue, num_hard, exclude=None):
    """Per query, the queue rows sorted by decreasing q.n (ties by row), truncated to num_hard."""
    out = []
    for b in range(query.shape[0]):
        scores = [(float(query[b] @ queue[k]), k) for k in range(queue.shape[0])
                  if exclude is None or not bool(exclude[b, k])]
        scores.sort(key=lambda x: -x[0])
        out.append([k for _, k in scores[:num_hard]])
    return out


def synthetic_reference(query, queue, counts, num_hard, generator, alpha_max=0.5, beta_max=1.5,
                        sigma=0.01, delta=0.01, eta=0.01, extrapolation="paper", hard=None):
    """Returns vectors (B, S, D) float64, strategy list, index (B, S, 2), coef (B, S)."""
    B, D = query.shape
    q, n = query.double(), queue.double()
    if hard is None:
        hard = hardest_rows(q, n, num_hard)
    n1, n2, n3, n4, n5, n6 = counts

    def positions(count):
        if count == 0:
            return torch.zeros(B, 0, dtype=torch.long)
        return torch.randint(num_hard, (B, count), generator=generator)

    def rand(count):
        return torch.rand(B, count, generator=generator, dtype=query.dtype).double()

    p1, a = positions(n1), rand(n1) * alpha_max
    p2, bt = positions(n2), 1 + (beta_max - 1) * rand(n2)
    p3, p3b, g = positions(n3), positions(n3), rand(n3)
    p4 = positions(n4)
    noise = sigma * torch.randn(B, n4, D, generator=generator, dtype=query.dtype).double()
    p5, p6 = positions(n5), positions(n6)

    vectors, index, coef = [], [], []
    for b in range(B):
        vb, ib, cb = [], [], []

        def add(vector, first, second=-1, c=0.0, vb=vb, ib=ib, cb=cb):
            vb.append(normalize(vector))
            ib.append((first, second))
            cb.append(float(c))

        def row(p, b=b):
            return hard[b][int(p)]

        for k in range(n1):  # Eq. 4: s = a q + (1 - a) n
            i = row(p1[b, k])
            add(a[b, k] * q[b] + (1 - a[b, k]) * n[i], i, c=a[b, k])
        for k in range(n2):  # Eq. 5: s = n + b (n - q); the reference code's form is q + b (n - q)
            i = row(p2[b, k])
            if extrapolation == "paper":
                add(n[i] + bt[b, k] * (n[i] - q[b]), i, c=bt[b, k])
            else:
                add(q[b] + bt[b, k] * (n[i] - q[b]), i, c=bt[b, k])
        for k in range(n3):  # Eq. 6: s = g n_i + (1 - g) n_j
            i, j = row(p3[b, k]), row(p3b[b, k])
            add(g[b, k] * n[i] + (1 - g[b, k]) * n[j], i, j, c=g[b, k])
        for k in range(n4):  # Eq. 7: s = n + e
            i = row(p4[b, k])
            add(n[i] + noise[b, k], i)
        for k in range(n5):  # Eq. 8: s = n + delta grad_n (q . n) = n + delta q
            i = row(p5[b, k])
            add(n[i] + delta * q[b], i)
        for k in range(n6):  # Eq. 9: s = n + eta sign(q)
            i = row(p6[b, k])
            add(n[i] + eta * torch.sign(q[b]), i)
        vectors.append(torch.stack(vb) if vb else torch.zeros(0, D, dtype=torch.float64))
        index.append(ib)
        coef.append(cb)
    strategy = [t + 1 for t, c in enumerate(counts) for _ in range(c)]
    return torch.stack(vectors), strategy, torch.tensor(index).view(B, -1, 2), torch.tensor(coef, dtype=torch.float64).view(B, -1)


def info_nce_reference(query, key, negatives_per_query, temperature):
    """Eq. 10-11 with explicit sums: negatives_per_query[b] is a list of (D,) vectors."""
    total = 0.0
    for b in range(query.shape[0]):
        pos = math.exp(float(query[b] @ key[b]) / temperature)
        z = sum(math.exp(float(query[b] @ v) / temperature) for v in negatives_per_query[b])
        total += -math.log(pos / (pos + z))
    return total / query.shape[0]


def nt_xent_reference(z1, z2, temperature):
    """SimCLR's NT-Xent written as its sum, one anchor at a time, in float64 (Chen et al. 2020, Eq. 1).

    l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t) over the 2B embeddings [z1; z2];
    L = mean over every anchor i with j its other view.
    """
    z = [v.double() for v in list(z1) + list(z2)]
    big_b = z1.shape[0]
    total = 0.0
    for i in range(2 * big_b):
        j = i + big_b if i < big_b else i - big_b
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * big_b) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / denominator)
    return total / (2 * big_b)


def knn_reference(train_features, train_labels, test_features, test_labels, num_classes, k, temperature):
    """Weighted kNN top-1/top-5 in percent, one test image at a time, in float64 (Wu et al. 2018; MoCo's demo).

    Cosine similarity of L2-normalised features; the k most similar bank entries vote for their class
    with weight exp(sim / t); ties between classes go to the smaller class index.
    """
    bank = [v.double() / math.sqrt(float((v.double() ** 2).sum())) for v in train_features]
    top1 = top5 = 0
    for feature, label in zip(test_features, test_labels.tolist()):
        f = feature.double() / math.sqrt(float((feature.double() ** 2).sum()))
        sims = sorted(((float(f @ b), int(c)) for b, c in zip(bank, train_labels.tolist())), key=lambda x: -x[0])
        scores = [0.0] * num_classes
        for sim, c in sims[:k]:
            scores[c] += math.exp(sim / temperature)
        ranked = sorted(range(num_classes), key=lambda c: (-scores[c], c))
        top1 += ranked[0] == label
        top5 += label in ranked[:5]
    n = len(test_labels)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n}
