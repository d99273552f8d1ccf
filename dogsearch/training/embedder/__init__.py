"""Embedder training: SimCLR, supervised contrastive and distillation losses on frozen backbones."""
