"""Near-duplicate image search: perceptual hashes (ImageHash) in a Hamming index (needs the ``images`` extra)."""

from __future__ import annotations

from retrievekit.index.images.phash import HASHES, HashIndex, ImageHashError, image_hash, image_hashes

__all__ = ["HASHES", "HashIndex", "ImageHashError", "image_hash", "image_hashes"]
