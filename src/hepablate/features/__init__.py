"""Features per tumour and patient: ablation geometry (so far); clinical scores, radiomics and
deep features join in later stages."""
