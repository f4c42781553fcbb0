"""Text encoders: one interface (``Encoder``), backends registered by name, model cards with prompts and pooling."""

from retrievekit.encoders.base import Encoder, EncoderMismatchError, check_compatible
from retrievekit.encoders.registry import (
    DEFAULT_MODEL,
    MODEL_CARDS,
    ModelCard,
    available_encoders,
    get_encoder,
    model_card,
    register_encoder,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CARDS",
    "Encoder",
    "EncoderMismatchError",
    "ModelCard",
    "available_encoders",
    "check_compatible",
    "get_encoder",
    "model_card",
    "register_encoder",
]
