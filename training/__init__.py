"""Training code (not needed to serve): embedder heads (training/embedder), pose (training/pose)."""
