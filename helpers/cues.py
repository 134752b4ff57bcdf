"""Chapter 00's toy model of attention cues: a desk scene with one salient object.

Each object on the desk has a key (what it offers, in four features) and a saliency (how much it
stands out on its own). An intention is a query in the same four features. An object's score is
`query · key + saliency_strength * saliency`, and attention weights are the softmax of the scores:
with no intention and no saliency every object gets the same weight (average pooling).
"""

from __future__ import annotations

import torch

__all__ = [
    "DESK_FEATURES",
    "DESK_INTENTIONS",
    "DESK_KEYS",
    "DESK_OBJECTS",
    "DESK_SALIENCY",
    "desk_scene_scores",
    "desk_scene_weights",
]

DESK_OBJECTS = ("newspaper", "research paper", "notebook", "book", "red coffee cup")
DESK_FEATURES = ("printed text", "long read", "blank pages", "hot drink")
# Keys: one row per object, one column per feature.                   (5 objects, 4 features)
DESK_KEYS = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0],  # newspaper
        [1.0, 0.5, 0.0, 0.0],  # research paper
        [0.0, 0.0, 1.0, 0.0],  # notebook
        [1.0, 1.0, 0.0, 0.0],  # book
        [0.0, 0.0, 0.0, 1.0],  # red coffee cup
    ]
)
# Saliency: only the red cup stands out from the black-and-white papers.  (5,)
DESK_SALIENCY = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
# Volitional cues: one query per intention, in the keys' features.        (4,) each
DESK_INTENTIONS = {
    "nothing in particular": torch.tensor([0.0, 0.0, 0.0, 0.0]),
    "read a book": torch.tensor([1.0, 2.0, 0.0, 0.0]),
    "take notes": torch.tensor([0.0, 0.0, 3.0, 0.0]),
    "drink coffee": torch.tensor([0.0, 0.0, 0.0, 3.0]),
}


def _query(intention: str) -> torch.Tensor:
    if not isinstance(intention, str):
        raise TypeError(f"intention must be a str, got {type(intention).__name__}")
    if intention not in DESK_INTENTIONS:
        raise ValueError(f"intention must be one of {list(DESK_INTENTIONS)}, got {intention!r}")
    return DESK_INTENTIONS[intention]


def desk_scene_scores(intention: str, saliency: float) -> torch.Tensor:
    """Scores (5,): query·key (volitional cue) + saliency * DESK_SALIENCY (non-volitional cue)."""
    if isinstance(saliency, bool) or not isinstance(saliency, (int, float)):
        raise TypeError(f"saliency must be a number, got {type(saliency).__name__}")
    if not 0 <= saliency < float("inf"):
        raise ValueError(f"saliency must be a finite number >= 0, got {saliency}")
    return DESK_KEYS @ _query(intention) + saliency * DESK_SALIENCY  # (5, 4) @ (4,) -> (5,)


def desk_scene_weights(intention: str, saliency: float) -> torch.Tensor:
    """Attention weights (5,) over DESK_OBJECTS: softmax of `desk_scene_scores`; they sum to 1."""
    return torch.softmax(desk_scene_scores(intention, saliency), dim=0)
