"""retrievekit: a retrieval engine and toolkit."""

__version__ = "0.1.0"

from .document import Document  # noqa: E402
from .errors import (  # noqa: E402
    CollectionError,
    CollectionLockedError,
    InputFormatError,
    MissingExtraError,
    RetrievekitError,
)
from .retrieval.base import Retriever, SearchResults  # noqa: E402
from .storage.collection import Collection  # noqa: E402

__all__ = [
    "Collection",
    "CollectionError",
    "CollectionLockedError",
    "Document",
    "InputFormatError",
    "MissingExtraError",
    "Retriever",
    "RetrievekitError",
    "SearchResults",
    "__version__",
]
