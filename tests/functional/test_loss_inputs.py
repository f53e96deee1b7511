"""What every public loss does with rows that are not unit vectors (docs/losses.md, "Inputs").

Two behaviours, one per family, each as the authors' function it mirrors:
- unit rows expected (queue and in-batch contrastive losses): the loss is the formula on the raw dot
  products, so scaling every input by c is the same as dividing the temperature by c^2;
- normalised inside (CaSSLe's and PNR's in-batch regularisers) or cosine-based (the BYOL form, BYOL, SimSiam):
  the loss of raw rows equals the loss of their L2-normalised rows;
- raw projections (Barlow Twins, VICReg) and SwAV's prototype scores: taken as they are, as the authors' code
  (the statistics of the raw projections are the loss).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from synco.functional import (
    barlow_twins_loss,
    byol_loss,
    contrastive_distill_loss,
    hcl_loss,
    hscl_loss,
    info_nce_loss,
    mocov2plus_loss,
    nt_xent_loss,
    pnr_byol_regularizer,
    pnr_moco_loss,
    pnr_simclr_loss,
    predictive_distill_loss,
    schane_loss,
    simsiam_loss,
    supcon_loss,
    swav_loss,
    vicreg_loss,
)
from synco.functional.queue_supervised import hscl_queue_loss, supcon_queue_loss

B, D, K = 6, 5, 9
LABELS = torch.tensor([0, 1, 0, 2, 1, 2])


def raw(*shape, seed):
    """Rows of norms between 0.3 and 4: what a projector gives before normalisation."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    scale = 0.3 + 3.7 * torch.rand(*shape[:-1], 1, generator=g, dtype=torch.float64)
    return F.normalize(x, dim=-1) * scale


# name -> loss(x, t); x = (b, q): eight raw (B, D) tensors b and four raw (K, D) queue-row tensors q. Every
# input enters through dot products with another input only.
UNIT_ROWS = {
    "info_nce_loss": lambda x, t: info_nce_loss(x[0][0], x[0][1], x[0][0] @ x[1][0].T, None, t),
    "mocov2plus_loss": lambda x, t: mocov2plus_loss(*x[0][:4], torch.stack(x[1][:2]), t),
    "pnr_moco_loss": lambda x, t: pnr_moco_loss(*x[0], torch.stack(x[1][:2]), torch.stack(x[1][2:]),
                                                temperature=t, distill_temperature=t),
    "nt_xent_loss": lambda x, t: nt_xent_loss(x[0][0], x[0][1], t),
    "hcl_loss": lambda x, t: hcl_loss(x[0][0], x[0][1], t, clamp=False),
    "hscl_loss": lambda x, t: hscl_loss(x[0][0], x[0][1], LABELS, t),
    "supcon_loss": lambda x, t: supcon_loss(torch.stack(x[0][:2], dim=1), LABELS, temperature=t, base_temperature=t),
    "schane_loss": lambda x, t: schane_loss(x[0][0], LABELS, t),
    "supcon_queue_loss": lambda x, t: supcon_queue_loss(x[0][0], x[1][0], LABELS, LABELS.repeat(2)[:K], t, t),
    "hscl_queue_loss": lambda x, t: hscl_queue_loss(x[0][0], x[1][0], LABELS, LABELS.repeat(2)[:K], t),
}

NORMALISED_INSIDE = {
    "pnr_simclr_loss": lambda x: pnr_simclr_loss(*x[0][:6], 0.2),
    "contrastive_distill_loss": lambda x: contrastive_distill_loss(*x[0][:4], 0.2),
    "pnr_byol_regularizer": lambda x: pnr_byol_regularizer(*x[0][:4]),
    "predictive_distill_loss": lambda x: predictive_distill_loss(*x[0][:4]),
    "byol_loss": lambda x: byol_loss(*x[0][:4]),
    "simsiam_loss": lambda x: simsiam_loss(*x[0][:4]),
}

RAW = {
    "barlow_twins_loss": lambda x: barlow_twins_loss(x[0][0], x[0][1]),
    "vicreg_loss": lambda x: vicreg_loss(x[0][0], x[0][1]),
    "swav_loss": lambda x: swav_loss(torch.stack([x[0][0] @ x[1][0].T, x[0][1] @ x[1][0].T])),
}


def inputs(seed):
    return [raw(B, D, seed=seed + i) for i in range(8)], [raw(K, D, seed=seed + 8 + i) for i in range(4)]


def scaled(x, how):
    return tuple([how(v) for v in part] for part in x)


@pytest.mark.parametrize("name", sorted(UNIT_ROWS))
def test_unit_row_losses_take_raw_dot_products(name):
    """Scaling all inputs by c equals temperature t / c^2: nothing is normalised inside, as the authors' code."""
    loss, x, c, t = UNIT_ROWS[name], inputs(0), 1.7, 0.5
    value = loss(scaled(x, lambda v: v * c), t).item()
    assert value == pytest.approx(loss(x, t / c**2).item(), rel=1e-9)
    assert math.isfinite(value)
    assert value != pytest.approx(loss(scaled(x, lambda v: F.normalize(v, dim=-1)), t).item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(NORMALISED_INSIDE))
def test_regularisers_normalise_their_inputs(name):
    loss, x = NORMALISED_INSIDE[name], inputs(20)
    assert loss(x).item() == pytest.approx(loss(scaled(x, lambda v: F.normalize(v, dim=-1))).item(), rel=1e-10)


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_projection_losses_take_their_inputs_as_they_are(name):
    loss, x = RAW[name], inputs(30)
    value = loss(x).item()
    assert math.isfinite(value)
    assert value != pytest.approx(loss(scaled(x, lambda v: F.normalize(v, dim=-1))).item(), rel=1e-6)


def test_every_public_loss_is_classified():
    import synco.functional as functional

    losses = {n for n in functional.__all__ if n.endswith(("_loss", "_regularizer"))} - {"nt_xent_loss_local"}
    assert losses <= set(UNIT_ROWS) | set(NORMALISED_INSIDE) | set(RAW)


def test_pnr_simclr_on_raw_projector_outputs_equals_the_authors_form():
    """The authors' function normalises z, zb and p, then computes the loop below; raw rows of norm ~10 used to
    give a loss of hundreds (the logits scaled by the squared norms)."""
    p1, p2, z1, z2, zb1, zb2 = (raw(B, D, seed=40 + s) * 5 for s in range(6))
    unit = [F.normalize(v, dim=1) for v in (p1, p2, z1, z2, zb1, zb2)]
    p, z, zb = torch.cat(unit[:2]).tolist(), torch.cat(unit[2:4]).tolist(), torch.cat(unit[4:]).tolist()
    n, t = 2 * B, 0.2

    def dot(a, b):
        return sum(u * v for u, v in zip(a, b))

    total = 0.0
    for i in range(n):
        den = sum(math.exp(dot(z[i], z[j]) / t) + math.exp(dot(z[i], zb[j]) / t) for j in range(n) if j != i)
        total += -(dot(z[i], z[(i + B) % n]) / t - math.log(den))
        den = sum(math.exp(dot(p[i], zb[j]) / t) + math.exp(dot(p[i], z[j]) / t) for j in range(n) if j != i)
        total += -(dot(p[i], zb[i]) / t - math.log(den))
    got = pnr_simclr_loss(p1, p2, z1, z2, zb1, zb2, t).item()
    assert got == pytest.approx(total / n, rel=1e-10)
    assert got < 50
