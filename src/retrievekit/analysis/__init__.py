"""Text analysis: tokenizers, token filters and named analyzer presets."""

from retrievekit.analysis.base import (
    Analyzer,
    UnknownAnalyzerError,
    available_analyzers,
    get_analyzer,
    register_analyzer,
)
from retrievekit.analysis.standard import TokenFilterAnalyzer, analyzer_from_config
from retrievekit.analysis.tokenizers import identifier_tokenize, standard_tokenize, whitespace_tokenize

__all__ = [
    "Analyzer",
    "TokenFilterAnalyzer",
    "UnknownAnalyzerError",
    "analyzer_from_config",
    "available_analyzers",
    "get_analyzer",
    "identifier_tokenize",
    "register_analyzer",
    "standard_tokenize",
    "whitespace_tokenize",
]
