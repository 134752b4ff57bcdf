"""Chapter 0's toy model of attention cues: a desk scene with one salient object.

Each object on the desk has a key: what it offers, in five features, the last of which says how
much it stands out (only the red cup does). A query has the same five features: the first four
are the intention (the volitional cue), the last is how strongly the viewer is pulled by whatever
stands out (the saliency strength, which makes the non-volitional cue count). An object's score is
one dot product, `query · key`, and the attention weights are the softmax of the scores: with no
intention and no saliency strength every object gets the same weight (average pooling).
"""

from __future__ import annotations

import torch

__all__ = [
    "DESK_FEATURES",
    "DESK_INTENTIONS",
    "DESK_KEYS",
    "DESK_OBJECTS",
    "DESK_SALIENCY",
    "LOOKUP_KEYS",
    "LOOKUP_VALUES",
    "desk_query",
    "desk_scene_scores",
    "desk_scene_weights",
]

DESK_OBJECTS = ("newspaper", "research paper", "notebook", "book", "red coffee cup")
DESK_FEATURES = ("printed text", "long read", "blank pages", "hot drink", "stands out")
# Keys: one row per object, one column per feature.                   (5 objects, 5 features)
DESK_KEYS = torch.tensor(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0],  # newspaper
        [1.0, 0.5, 0.0, 0.0, 0.0],  # research paper
        [0.0, 0.0, 1.0, 0.0, 0.0],  # notebook
        [1.0, 1.0, 0.0, 0.0, 0.0],  # book
        [0.0, 0.0, 0.0, 1.0, 1.0],  # red coffee cup: the only object that stands out
    ]
)
# The keys' last feature: how much each object stands out on its own.        (5,)
DESK_SALIENCY = DESK_KEYS[:, -1].clone()
# Volitional cues: one intention per task, in the keys' first four features.  (4,) each
DESK_INTENTIONS = {
    "nothing in particular": torch.tensor([0.0, 0.0, 0.0, 0.0]),
    "read a book": torch.tensor([1.0, 2.0, 0.0, 0.0]),
    "take notes": torch.tensor([0.0, 0.0, 3.0, 0.0]),
    "drink coffee": torch.tensor([0.0, 0.0, 0.0, 3.0]),
}


def desk_query(intention: str, saliency: float) -> torch.Tensor:
    """The query (5,): the intention's four features, then the saliency strength `saliency`."""
    if not isinstance(intention, str):
        raise TypeError(f"intention must be a str, got {type(intention).__name__}")
    if intention not in DESK_INTENTIONS:
        raise ValueError(f"intention must be one of {list(DESK_INTENTIONS)}, got {intention!r}")
    if isinstance(saliency, bool) or not isinstance(saliency, (int, float)):
        raise TypeError(f"saliency must be a number, got {type(saliency).__name__}")
    if not 0 <= saliency < float("inf"):
        raise ValueError(f"saliency must be a finite number >= 0, got {saliency}")
    strength = torch.tensor([float(saliency)])  # (1,)
    return torch.cat([DESK_INTENTIONS[intention], strength])  # (4,) + (1,) -> (5,)


def desk_scene_scores(intention: str, saliency: float) -> torch.Tensor:
    """Scores (5,), one per object: query · key, with the query from `desk_query`."""
    return DESK_KEYS @ desk_query(intention, saliency)  # (5, 5) @ (5,) -> (5,)


def desk_scene_weights(intention: str, saliency: float) -> torch.Tensor:
    """Attention weights (5,) over DESK_OBJECTS: softmax of `desk_scene_scores`; they sum to 1."""
    return torch.softmax(desk_scene_scores(intention, saliency), dim=0)


# The tiny database of section 0.4: four keys (unit vectors) and their values.
LOOKUP_KEYS = torch.eye(4)  # (4 keys, 4 features): key i is the i-th unit vector



LOOKUP_VALUES = torch.tensor([10.0, 20.0, 30.0, 40.0])  # (4,)
