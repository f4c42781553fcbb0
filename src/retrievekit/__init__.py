"""retrievekit: a retrieval engine and toolkit."""

__version__ = "0.1.0"

from .document import Document
from .errors import (
    CollectionError,
    CollectionLockedError,
    InputFormatError,
    MissingExtraError,
    RetrievekitError,
)
from .retrieval.base import Retriever, SearchResults
from .storage.collection import Collection

__all__ = [
    "Collection",
    "CollectionError",
    "CollectionLockedError",
    "Document",
    "InputFormatError",
    "MissingExtraError",
    "RetrievekitError",
    "Retriever",
    "SearchResults",
    "__version__",
]
