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


def _dot(a, b):
    return float((a.double() * b.double()).sum())


def supcon_reference(features, labels=None, mask=None, temperature=0.07, base_temperature=0.07, mode="all",
                     synthetic_logits=None):
    """SupCon L_out (Khosla et al. 2020, Eq. 2) one anchor at a time; features (B, V, D), view-major order.

    Anchors without positives contribute 0 and count in the mean (the authors' code); mask weighs positives.
    synthetic_logits (A, S): un-tempered z_i.s added to anchor i's denominator only.
    """
    batch, views, _ = features.shape
    items = [(v, b) for v in range(views) for b in range(batch)]  # view-major, as torch.cat(torch.unbind(f, 1))

    def weight(i_img, j_img):
        if mask is not None:
            return float(mask[i_img, j_img])
        if labels is None:
            return 1.0 if i_img == j_img else 0.0
        return 1.0 if int(labels[i_img]) == int(labels[j_img]) else 0.0

    anchors = items if mode == "all" else items[:batch]
    total = 0.0
    for i, (vi, bi) in enumerate(anchors):
        zi = features[bi, vi]
        others = [(j, vj, bj) for j, (vj, bj) in enumerate(items) if j != i]
        denominator = sum(math.exp(_dot(zi, features[bj, vj]) / temperature) for _, vj, bj in others)
        if synthetic_logits is not None:
            denominator += sum(math.exp(float(v) / temperature) for v in synthetic_logits[i])
        weights = [(weight(bi, bj), vj, bj) for _, vj, bj in others]
        count = sum(w for w, _, _ in weights)
        if count < 1e-6:
            count = 1.0
        acc = sum(w * (_dot(zi, features[bj, vj]) / temperature - math.log(denominator)) for w, vj, bj in weights)
        total += -(temperature / base_temperature) * acc / count
    return total / len(anchors)


def hcl_reference(z1, z2, temperature=0.5, beta=1.0, tau_plus=0.1, clamp=True, synthetic_logits=None):
    """HCL's hard estimator (Robinson et al. 2021, the authors' criterion) with explicit sums, in float64;
    synthetic_logits (2B, S): un-tempered z_i.s added to the denominator beside Ng_i."""
    z = list(z1) + list(z2)
    n2 = len(z)
    big_b = n2 // 2
    count = n2 - 2
    total = 0.0
    for i in range(n2):
        j_pos = (i + big_b) % n2
        pos = math.exp(_dot(z[i], z[j_pos]) / temperature)
        negs = [math.exp(_dot(z[i], z[j]) / temperature) for j in range(n2) if j not in (i, j_pos)]
        imp = [e ** beta for e in negs]
        reweight = sum(w * e for w, e in zip(imp, negs)) / (sum(imp) / count)
        ng = (-tau_plus * count * pos + reweight) / (1 - tau_plus)
        if clamp:
            ng = max(ng, count * math.exp(-1 / temperature))
        if ng <= 0:
            return float("nan")
        if synthetic_logits is not None:
            ng += sum(math.exp(float(v) / temperature) for v in synthetic_logits[i])
        total += -math.log(pos / (pos + ng))
    return total / n2


def hscl_reference(z1, z2, labels, temperature=0.5, beta=1.0, threshold=None, synthetic_logits=None):
    """H-SCL (Jiang et al. 2022, the authors' nce_supervised_hard) over every (anchor, positive) pair, float64.

    threshold: H-SCL(tau), the plain mean over other-class rows with exp(s) >= tau; an empty set falls back
    to all other-class rows. synthetic_logits (2B, S): un-tempered z_i.s added beside M Nbar_i.
    """
    z = list(z1) + list(z2)
    y = [int(v) for v in labels] * 2
    n2 = len(z)
    m = n2 - 2
    losses = []
    for i in range(n2):
        e = [math.exp(_dot(z[i], z[j]) / temperature) for j in range(n2)]
        negatives = [j for j in range(n2) if y[j] != y[i]]
        if threshold is not None:
            hard = [j for j in negatives if e[j] >= threshold] or negatives
            nbar = sum(e[j] for j in hard) / len(hard) if hard else 0.0
        else:
            w = [e[j] ** beta for j in negatives]
            nbar = sum(wj * e[j] for wj, j in zip(w, negatives)) / sum(w) if negatives else 0.0
        extra = 0.0 if synthetic_logits is None else sum(math.exp(float(v) / temperature) for v in synthetic_logits[i])
        for p in range(n2):
            if p != i and y[p] == y[i]:
                losses.append(-math.log(e[p] / (e[p] + m * nbar + extra)))
    return sum(losses) / len(losses)


def schane_reference(z, labels, temperature=0.1, weighting="anchor"):
    """SCHaNe's contrastive term as reconstructed in synco/functional/schane.py, one pair at a time, float64."""
    n = len(z)
    y = [int(v) for v in labels]
    per_anchor = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and y[p] == y[i]]
        if not positives:
            continue
        negatives = [k for k in range(n) if y[k] != y[i]]
        losses = []
        for p in positives:
            source = i if weighting == "anchor" else p
            soft = [math.exp(_dot(z[source], z[k]) / temperature) for k in negatives]
            weights = [len(negatives) * s / sum(soft) for s in soft] if negatives else []
            neg = sum(w * math.exp(_dot(z[i], z[k]) / temperature) for w, k in zip(weights, negatives))
            pos = math.exp(_dot(z[i], z[p]) / temperature)
            losses.append(-math.log(pos / (pos + neg)))
        per_anchor.append(sum(losses) / len(losses))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0
