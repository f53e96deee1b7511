"""H-SCL's analyses (Jiang et al. 2022, Fig. 4-5) and SCHaNe's isotropy, for any encoder's embeddings.

For two views z1, z2 (B, D) of B labelled images, g_ij = z_i.z_j / t on the stacked 2B rows, anchor i with
its other view i+ as the positive, and the negatives j not in {i, i+} (M = 2B - 2 of them):

    loss(i) = -log( e^{g_ii+} / (e^{g_ii+} + M Nbar_i) )

where Nbar_i is the mean of e^{g_ij} over the negatives drawn as each loss says:

    UCL     every negative, uniformly                  SCL     other-class negatives, uniformly
    H-UCL   every negative, hardened                   H-SCL   other-class negatives, hardened

and "hardened" is one of the paper's settings: ``tau`` (uniform over e^{g} >= tau; an empty hard set falls
back to the uniform mean) or ``beta`` (tilted by e^{beta g}). These are the definitions of the paper's theory
with positives = augmentations, as the authors' ``main/main_loss.py`` computes the four curves (there with
tau_plus = 0 and no clamp), not the training loss ``hscl_loss``, whose positives are all same-class rows.

Assumption 1 (exact wording UNVERIFIED; method-notes section 3): per anchor, among the hard negatives, the
same-class ones are on average at least as similar as the other-class ones,
E_{hard, same class}[e^{g}] >= E_{hard, other class}[e^{g}], both means taken as the setting hardens (tilted
means for beta, thresholded means for tau). Anchors whose hard set lacks a same-class or an other-class row
are left out of the fraction (their number is returned); the positive view is never a negative.

Isotropy (SCHaNe; the partition-function ratio of Mu & Viswanath 2018, UNVERIFIED as the paper's exact
definition): I(W) = min_c Z(c) / max_c Z(c), Z(c) = sum_i exp(c.w_i) over the eigenvectors c of W^T W, for
unit rows w_i; 1 means perfectly isotropic, near 0 that the embeddings crowd into a cone.
"""

from __future__ import annotations

import math

import torch

from synco.functional.hcl import tilted_log_sum

#: The paper's four settings of Fig. 4-5: name -> ("tau", threshold) or ("beta", tilt).
SETTINGS = {"tau_e-0.5": ("tau", math.exp(-0.5)), "tau_e-0.1": ("tau", math.exp(-0.1)),
            "beta_1": ("beta", 1.0), "beta_2": ("beta", 2.0)}


def _hard_log_mean(logits: torch.Tensor, keep: torch.Tensor, setting: tuple[str, float]) -> torch.Tensor:
    """log of the hardened mean of e^{logits} over ``keep`` (R, C) -> (R,); -inf for rows without columns."""
    kind, value = setting
    if kind == "beta":
        return tilted_log_sum(logits, value * logits, keep)
    hard = keep & (logits >= math.log(value))
    chosen = torch.where(hard.any(dim=1, keepdim=True), hard, keep)  # empty hard set: the uniform mean
    return tilted_log_sum(logits, torch.zeros_like(logits), chosen)


@torch.no_grad()
def four_losses(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5,
                settings: dict = SETTINGS) -> dict[str, float]:
    """UCL, SCL, and H-UCL / H-SCL for every setting, with positives = the other view (see the module doc).

    Returns ``{"ucl": .., "scl": .., "hucl/<setting>": .., "hscl/<setting>": ..}``; anchors without any
    other-class row have an SCL / H-SCL term of 0 (no negative).
    """
    z = torch.cat([z1, z2]).double()  # (2B, D)
    y = torch.cat([labels, labels])
    n = len(y)
    logits = z @ z.T / temperature  # (2B, 2B)
    rows = torch.arange(n)
    other_view = (rows + n // 2) % n
    negative = torch.ones(n, n, dtype=torch.bool)
    negative[rows, rows] = False
    negative[rows, other_view] = False
    other_class = negative & (y.unsqueeze(1) != y.unsqueeze(0))
    positive = logits[rows, other_view]  # (2B,)
    log_m = math.log(n - 2)

    def loss(log_mean: torch.Tensor) -> float:
        return (torch.logaddexp(positive, log_mean + log_m) - positive).mean().item()

    zero = torch.zeros_like(logits)
    out = {"ucl": loss(tilted_log_sum(logits, zero, negative)), "scl": loss(tilted_log_sum(logits, zero, other_class))}
    for name, setting in settings.items():
        out[f"hucl/{name}"] = loss(_hard_log_mean(logits, negative, setting))
        out[f"hscl/{name}"] = loss(_hard_log_mean(logits, other_class, setting))
    return out


@torch.no_grad()
def assumption_one(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, setting: tuple[str, float],
                   temperature: float = 0.5) -> tuple[int, int]:
    """(anchors satisfying Assumption 1, anchors with both hard same-class and hard other-class rows)."""
    z = torch.cat([z1, z2]).double()
    y = torch.cat([labels, labels])
    n = len(y)
    logits = z @ z.T / temperature
    rows = torch.arange(n)
    negative = torch.ones(n, n, dtype=torch.bool)
    negative[rows, rows] = False
    negative[rows, (rows + n // 2) % n] = False
    same = negative & (y.unsqueeze(1) == y.unsqueeze(0))
    other = negative & (y.unsqueeze(1) != y.unsqueeze(0))
    kind, value = setting
    if kind == "tau":
        hard = logits >= math.log(value)
        same, other = same & hard, other & hard
        weights = torch.zeros_like(logits)
    else:
        weights = value * logits
    counted = same.any(dim=1) & other.any(dim=1)
    satisfied = tilted_log_sum(logits, weights, same) >= tilted_log_sum(logits, weights, other)
    return int((satisfied & counted).sum()), int(counted.sum())


@torch.no_grad()
def isotropy(x: torch.Tensor) -> float:
    """min_c Z(c) / max_c Z(c) over the eigenvectors c of W^T W, W = normalised rows of x (N, D)."""
    w = torch.nn.functional.normalize(x.double(), dim=1)
    _, vectors = torch.linalg.eigh(w.T @ w)  # columns: eigenvectors
    log_z = torch.logsumexp(w @ vectors, dim=0)  # (D,) log Z(c)
    return math.exp((log_z.min() - log_z.max()).item())


@torch.no_grad()
def label_record(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, batch: int = 256,
                 temperature: float = 0.5) -> dict:
    """``analysis/...`` entries: the four losses (means over batches of ``batch`` images, the same batches for
    every loss) and the fraction of anchors satisfying Assumption 1 per setting, pooled over the batches."""
    sums: dict[str, float] = {}
    chunks = 0
    satisfied = {name: [0, 0] for name in SETTINGS}
    for start in range(0, len(labels) - batch + 1 if len(labels) >= batch else 1, batch):
        a, b, y = z1[start:start + batch], z2[start:start + batch], labels[start:start + batch]
        for key, value in four_losses(a, b, y, temperature).items():
            sums[key] = sums.get(key, 0.0) + value
        for name, setting in SETTINGS.items():
            hits, counted = assumption_one(a, b, y, setting, temperature)
            satisfied[name][0] += hits
            satisfied[name][1] += counted
        chunks += 1
    record = {f"analysis/loss/{key}": value / chunks for key, value in sums.items()}
    for name, (hits, counted) in satisfied.items():
        record[f"analysis/assumption1/{name}"] = hits / counted if counted else None
        record[f"analysis/assumption1_anchors/{name}"] = counted
    return record
