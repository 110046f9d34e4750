"""A progress bar where tqdm is installed, and nothing where it is not."""

from __future__ import annotations

from typing import Any, Optional


class Progress:
    """``update(n)`` and ``close()``, drawn by tqdm when it is importable."""

    def __init__(self, total: Optional[int], description: str, unit: str, enabled: bool) -> None:
        self._bar: Any = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError:
            return
        scale = unit == "B"
        divisor = 1024 if scale else 1000
        self._bar = tqdm(total=total, desc=description, unit=unit, unit_scale=scale, unit_divisor=divisor, leave=False)

    @property
    def drawn(self) -> bool:
        """Whether a bar is drawn at all."""
        return self._bar is not None

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_total(self, total: int) -> None:
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
