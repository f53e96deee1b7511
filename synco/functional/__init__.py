"""Pure tensor maths: no state, no configuration. Every loss here is tested against a float64 loop."""

from synco.functional.continual import (
    contrastive_distill_loss,
    mocov2plus_loss,
    pnr_byol_regularizer,
    pnr_moco_loss,
    pnr_simclr_loss,
    predictive_distill_loss,
)
from synco.functional.barlow_twins import barlow_twins_loss
from synco.functional.byol import byol_loss
from synco.functional.hcl import hcl_loss
from synco.functional.hscl import hscl_loss
from synco.functional.info_nce import info_nce_logits, info_nce_loss
from synco.functional.nt_xent import nt_xent_loss, nt_xent_loss_local
from synco.functional.schane import schane_loss
from synco.functional.simsiam import simsiam_loss
from synco.functional.supcon import supcon_loss
from synco.functional.swav import sinkhorn_knopp, swav_loss
from synco.functional.vicreg import vicreg_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "contrastive_distill_loss",
    "hcl_loss",
    "hscl_loss",
    "info_nce_logits",
    "info_nce_loss",
    "mocov2plus_loss",
    "nt_xent_loss",
    "nt_xent_loss_local",
    "pnr_byol_regularizer",
    "pnr_moco_loss",
    "pnr_simclr_loss",
    "predictive_distill_loss",
    "schane_loss",
    "simsiam_loss",
    "sinkhorn_knopp",
    "supcon_loss",
    "swav_loss",
    "vicreg_loss",
]
