"""Tabular deep networks: a binary classifier and two survival heads, as scikit-learn estimators.

One body for all three (``network.py``): the inputs (``inputs.py``: numbers standardised,
missing values set to the training median with a missing-indicator input, categories one-hot)
go through a linear ("wide") term plus a small MLP (two hidden layers, ReLU, dropout) whose last
layer starts at zero, so the network starts where a linear model is and the MLP learns what it
misses. Heads (``heads.py``):

- ``MLPClassifier`` (study kind ``mlp``): log-odds, binary cross-entropy with the positives
  weighted by the class ratio and the intercept corrected back (prior correction);
- ``DeepSurv`` (``deep_surv``): log hazard ratio trained on the Cox partial likelihood (Katzman
  et al. 2018; Breslow ties); survival curves from the Breslow baseline hazard;
- ``DeepDiscreteTime`` (``deep_discrete``): a logistic hazard per time interval (nnet-survival,
  Gensheimer & Narasimhan 2019; intervals at quantiles of the event times): a baseline per
  interval plus the network's shared risk; survival curves as the product of the intervals'
  survival.

Training (``base.py``, through the models' one ensemble trainer, ``models/_ensemble.py``): AdamW
on full batches (the tables are small), early stopping on 20% of the training rows held out
(grouped by patient when the rows are indexed by (patient, tumour)), an ensemble of
``n_members`` seeded networks whose spread is the predictive uncertainty. One torch thread by
default: on these small matrices a second thread only adds synchronisation, and on a busy
2-core machine it made a fit 6 to 8 times slower (docs/benchmarks.md, "Time of a study").
Fitted state is saved without pickle (``to_state``: arrays for safetensors and a JSON config).
"""

from hepablate.models.tabular.heads import DeepDiscreteTime, DeepSurv, MLPClassifier

__all__ = ["DeepDiscreteTime", "DeepSurv", "MLPClassifier"]
