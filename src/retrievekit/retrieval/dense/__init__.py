"""Dense (embedding) retrieval: exact inner-product search over per-segment float32 matrices."""
