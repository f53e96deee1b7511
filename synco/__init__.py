"""SynCo: contrastive representation learning with synthetic hard negatives.

Shape alphabet used in every docstring and shape comment of this package:
B batch, D embedding, K queue, N hardest negatives, S synthetic negatives per query,
C classes, V views.
"""

__version__ = "0.1.0"
