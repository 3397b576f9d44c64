"""What the survival networks share: the Cox partial likelihood, Breslow's baseline hazard and
the scikit-survival target."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sksurv.functions import StepFunction

__all__ = ["breslow", "cox_loss", "survival_curves", "survival_target"]


def survival_target(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(event, time) from a scikit-survival structured array, as plain copies."""
    names = getattr(getattr(y, "dtype", None), "names", None)
    if not names or len(names) != 2:
        raise ValueError("y must be a structured array of (event, time), as in scikit-survival")
    # Fields of a structured array are strided views: copies, for torch.from_numpy.
    return np.array(y[names[0]], dtype=bool), np.array(y[names[1]], dtype=float)


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood of the log hazard ratios ``risk`` (Breslow ties),
    averaged over the events; 0 when there is none."""
    order = torch.argsort(time, descending=True)
    risk, time, event = risk[order], time[order], event[order]
    log_cumulative = torch.logcumsumexp(risk, dim=0)
    # Tied times share the risk set of their earliest member: the last index of each tie.
    _, counts = torch.unique_consecutive(time, return_counts=True)
    last = torch.cumsum(counts, dim=0) - 1
    log_risk_set = torch.repeat_interleave(log_cumulative[last], counts)
    events = event.float().sum().clamp(min=1.0)
    return -((risk - log_risk_set) * event.float()).sum() / events


def breslow(risk: np.ndarray, event: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's baseline cumulative hazard of each member at the training event times.

    ``risk``: members x rows of log hazard ratios. Returns (event times, members x times).
    """
    times = np.unique(time[event])
    hazards = []
    for member in np.atleast_2d(risk):
        relative = np.exp(member)
        at_risk = np.array([relative[time >= t].sum() for t in times])
        deaths = np.array([(event & (time == t)).sum() for t in times])
        hazards.append(np.cumsum(deaths / at_risk))
    return times, np.asarray(hazards)


def survival_curves(risk: np.ndarray, times: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per row, S(t) = mean over members of exp(-H0_m(t) exp(f_m(x))), as step functions."""
    survival = np.exp(-np.exp(risk)[:, :, None] * baseline[:, None, :]).mean(axis=0)
    return np.asarray([StepFunction(times, s) for s in survival])
