"""``/api/documents``: a document by id, its source file; add, update and delete (each an atomic commit)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from retrievekit.serve.errors import responses
from retrievekit.serve.schemas import (
    AddedResponse,
    DeletedResponse,
    DocumentOut,
    DocumentPatch,
    DocumentsIn,
    ErrorResponse,
    UpdatedResponse,
)
from retrievekit.serve.state import ServerState
from retrievekit.service import documents as service


def router(state: ServerState, document_roots: Sequence[str | Path] = ()) -> APIRouter:
    api = APIRouter(tags=["documents"])
    roots = [Path(r) for r in document_roots]

    @api.get("/api/documents/{doc_id:path}/file", response_class=Response, responses={
        **responses(404), 403: {"model": ErrorResponse, "description": "the file is outside the shared folders"},
        200: {"content": {"application/pdf": {}, "application/octet-stream": {}},
              "description": "the document's source file"}})
    def get_file(doc_id: str) -> Response:
        """The source file of a document or passage (a PDF opens in the browser: append #page=N for its page),
        served only from inside the folders the server shares (``document_roots``); 404 otherwise."""
        col = state.collection()
        if col.get(doc_id) is None and col.get(f"{doc_id}/file") is not None:  # an id that ends in /file
            return JSONResponse(service.describe_document(col, f"{doc_id}/file"))
        path, media_type = service.document_file(col, doc_id, roots)
        inline = media_type == "application/pdf"
        return FileResponse(path, media_type=media_type, filename=path.name,
                            content_disposition_type="inline" if inline else "attachment",
                            headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})

    @api.get("/api/documents/{doc_id:path}", response_model=DocumentOut, response_model_exclude_none=True,
             responses=responses(404))
    def get_document(doc_id: str) -> dict[str, Any]:
        """A document by id (ids are opaque: looked up in the collection, never used as a path). In a passage
        collection the document is reassembled from its passages, which are listed; a passage id gives that
        passage (passages are read-only: writes address the document)."""
        return service.describe_document(state.collection(), doc_id)

    @api.post("/api/documents", response_model=AddedResponse, responses=responses(409))
    def add_documents(body: DocumentsIn) -> dict[str, Any]:
        """Add documents in one atomic commit (all or none); a document whose id exists replaces it."""
        with state.writer() as (col, w):
            added = service.add_documents(w, [d.model_dump() for d in body.documents], col=col)
        return {"added": added, "documents": len(col)}

    @api.put("/api/documents/{doc_id:path}", response_model=UpdatedResponse, responses=responses(404, 409))
    def update_document(doc_id: str, patch: DocumentPatch) -> dict[str, Any]:
        """Change an existing document: fields left out keep their values. In a passage collection a new text is
        chunked again; a passage id is refused with 409 read_only."""
        with state.writer() as (col, w):  # col shows the latest commit: nobody else commits while we hold the writer
            service.update_document(col, w, doc_id, service.DocumentPatch(**patch.model_dump(exclude_none=True)),
                                    hint=" (add it with POST /api/documents)")
        return {"updated": 1}

    @api.delete("/api/documents/{doc_id:path}", response_model=DeletedResponse, responses=responses(404, 409))
    def delete_document(doc_id: str) -> dict[str, Any]:
        with state.writer() as (col, w):
            service.delete_documents(w, [doc_id], require=True, col=col)
        return {"deleted": 1}

    return api
