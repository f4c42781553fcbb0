"""retrievekit: a retrieval engine and toolkit."""

from retrievekit.collection import Collection
from retrievekit.core.document import Document
from retrievekit.core.errors import (
    CollectionError,
    CollectionLockedError,
    InputFormatError,
    MissingExtraError,
    RetrievekitError,
)
from retrievekit.core.version import __version__
from retrievekit.retrieval.base import Retriever, SearchResults

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
