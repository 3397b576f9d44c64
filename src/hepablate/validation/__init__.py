"""Validation: metrics of out-of-fold predictions with confidence intervals."""
