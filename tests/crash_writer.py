"""Writer process for test_crash_safety: commits numbered batches forever, logging each batch after its commit
returns. Batch b adds ids b{b}-0..b{b}-{N-1}, updates b{b-1}-0 and deletes b{b-2}-1."""

from __future__ import annotations

import os
import sys

from retrievekit import Collection

DOCS_PER_BATCH = 200


def batch_documents(b: int) -> list[dict[str, str]]:
    return [{"id": f"b{b}-{i}", "text": f"batch{b} document number {i} " + "filler " * (i % 9)}
            for i in range(DOCS_PER_BATCH)]


def main() -> None:
    path, log, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    col = Collection(path)
    b = start
    while True:
        with col.writer(max_segments=3, lock_timeout=10) as w:
            w.add(batch_documents(b))
            if b >= 1:
                w.add([{"id": f"b{b - 1}-0", "text": f"updated by batch{b}"}])
            if b >= 2:
                w.delete([f"b{b - 2}-1"])
        with open(log, "a") as f:
            f.write(f"{b}\n")
            f.flush()
            os.fsync(f.fileno())
        b += 1


if __name__ == "__main__":
    main()
