"""The service layer: one set of request/response types and calls used by the CLI, the HTTP API and the MCP
server, so defaults, validation, mode checks and hit formatting live in one place.

- ``search``: ``SearchRequest`` -> ``SearchResponse`` of ``Hit``s (HTML or plain snippets).
- ``ask``: ``AskRequest`` -> ``AskResponse`` through ``Asker`` (defaults from ``retrievekit.rag.config.RAGConfig``;
  answered by the collection's cached pipeline, ``Collection.rag``).
- ``documents``: get, add, update (``DocumentPatch``) and delete by id.
- ``images``: ``search_image`` (``ImageSearchRequest``: an image, or image + text, as the query of an image-text
  index; query bytes decoded within limits), thumbnails, hit metadata without the inline thumbnail.
- ``info``: statistics, modes, rerankers, metadata fields.
- ``types``: ``ServiceError`` (``code``, ``param``) and the shared checks.
- ``collections``: ``open_collection`` (a plain ``Collection``, or a ``ShardedCollection`` for a folder holding
  ``cluster.json``) and what differs between the two.

Layer: above ``collection`` (the façade), below ``serve`` and ``cli``.
"""

from retrievekit.service.ask import Asker, AskRequest, AskResponse
from retrievekit.service.collections import is_sharded, is_sharded_folder, open_collection
from retrievekit.service.documents import (
    DocumentPatch,
    add_documents,
    delete_documents,
    get_document,
    update_document,
)
from retrievekit.service.images import ImageSearchRequest, search_image
from retrievekit.service.info import Info, collection_info
from retrievekit.service.search import (
    HTML_HITS,
    PLAIN_HITS,
    Hit,
    HitFormat,
    SearchRequest,
    SearchResponse,
    search,
    search_batch,
)
from retrievekit.service.types import MODES, UNSET, ServiceError

__all__ = [
    "HTML_HITS", "MODES", "PLAIN_HITS", "UNSET", "AskRequest", "AskResponse", "Asker", "DocumentPatch", "Hit",
    "HitFormat", "ImageSearchRequest", "Info", "SearchRequest", "SearchResponse", "ServiceError", "add_documents",
    "collection_info", "delete_documents", "get_document", "is_sharded", "is_sharded_folder", "open_collection",
    "search", "search_batch", "search_image", "update_document",
]
