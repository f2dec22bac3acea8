"""Moved to :mod:`rnncore.spec` (the one model description, not specific to quantisation);
re-exported here so that existing imports keep working."""

from rnncore.spec import (
    GATES,
    HEAD_ACTIVATIONS,
    CellWeights,
    LayerSpec,
    LinearSpec,
    ModelSpec,
    layers_from_state_dict,
    spec_from_model,
    spec_from_rnc,
    to_rnc_spec,
)

__all__ = ["GATES", "HEAD_ACTIVATIONS", "CellWeights", "LayerSpec", "LinearSpec", "ModelSpec",
           "layers_from_state_dict", "spec_from_model", "spec_from_rnc", "to_rnc_spec"]
