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


def silence_library_progress() -> None:
    """Turn off the progress bars that Hugging Face libraries draw themselves (downloads, transformers' "Loading
    weights"), for ``--no-progress``. Works before or after they are imported, and imports none of them."""
    import os
    import sys

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub is imported
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:  # transformers copies the hub's setting when it is imported
        transformers_logging.disable_progress_bar()
