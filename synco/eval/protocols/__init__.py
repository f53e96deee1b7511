"""The evaluation protocols on a run: ``synco knn``, ``synco linear``, ``synco finetune``.

Each loads the run (``synco.runs``), starts Lightning Fabric from the run's saved ``trainer`` block, and
calls the pure evaluation code of ``synco.eval`` (features, kNN, linear classifier).
"""
