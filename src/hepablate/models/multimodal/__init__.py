"""A multimodal network: a 3D CNN over each tumour's crops fused with its tabular features.

The image branch is a MONAI ``Regressor`` (residual convolutions, stride 2) over the six crop
channels of a tumour (``hepablate.features.crops``: pre CT, tumour and ablation-zone masks in
the pre frame; post CT, zone and tumour in the post frame sampled through the registration;
the three pre channels alone when a training tumour has no post crop, a pre-treatment cohort),
32³ voxels of 2 mm by default: what trains on two CPU cores. It yields an embedding (the
``deep.*`` columns of :meth:`MultimodalClassifier.embed`), concatenated with a small dense
branch over the tabular features; a linear head gives the output, added to a linear ("wide")
term over the tabular features. Two heads:

- ``MultimodalClassifier`` (study kind ``multimodal``): the log-odds of a binary outcome;
  training starts from a ridge logistic regression of the training rows (the wide term) with
  the deep head at zero; positives up-weighted by the class ratio with the intercept corrected
  back afterwards (King & Zeng 2001's prior correction), so probabilities stay calibrated;
- ``MultimodalSurvival`` (``multimodal_surv``): a log hazard ratio trained on the Cox partial
  likelihood within each mini-batch (as DeepSurv), started from a ridge Cox model; survival
  curves from each member's Breslow baseline hazard.

So the network begins where the linear baseline is, and early stopping keeps what the image
and the dense branch add on held-out patients.

Training (``base.py``, through the models' one ensemble trainer, ``models/_ensemble.py``): AdamW
on mini-batches; early stopping on a held-out 20% of the training *patients*; MONAI
augmentation (random flips and axial quarter turns, applied to CT and masks together, and
Gaussian noise on the CT channels); a deep ensemble of ``n_members`` networks, seeded, whose
spread is the predictive uncertainty.

The estimator follows scikit-learn: ``X`` is a DataFrame indexed by (patient, tumour), as the
study's pipeline passes it; ``crops`` says where the FeatureTable's crops are (its
``attrs["hepablate"]["crops"]``, read through ``hepablate.features.crops.CropStore``) and is set
by the study. The image normalisation is part of the model (``inputs.py``): the CT window
(``hu_window``, a parameter) and the size, spacing and shape of the crops it was trained on are
saved with it, and crops made otherwise are refused. Fitted state is saved without pickle
(``to_state``: tensors for safetensors and a JSON config). Modules: ``inputs.py`` (the
tabular scaling, the crops' window and checks), ``network.py``, ``base.py`` (training,
prediction, embedding, explanations, state), ``heads.py`` (the two heads).
"""

from hepablate.models.multimodal.heads import MultimodalClassifier, MultimodalSurvival

__all__ = ["MultimodalClassifier", "MultimodalSurvival"]
