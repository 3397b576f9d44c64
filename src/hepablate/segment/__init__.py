"""Segmentation of the liver, tumours and ablation zones with a deep network."""
