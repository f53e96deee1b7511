"""Pipelines: the runs users start. Each composes the layers below (data, the method built by
``synco.compose``, the training loop of ``synco.engine``, evaluation, analyses) and is what a command calls.

- ``pretrain``: one pretraining run (``synco pretrain``);
- ``continual``: a task stream of pretraining runs with its metrics (``synco continual``).
"""
