"""Progress bars for anything that takes seconds (tqdm), or a silent stand-in when they are turned off."""

from __future__ import annotations

from typing import Any


class NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int | None, desc: str, unit: str = "text", **options: Any) -> Any:
    if not enabled:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.05, **options)
