"""The paper's analyses of negatives (section 3.2, 6), computed from a training step's logits."""
