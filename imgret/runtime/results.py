"""What library operations return: search hits, per-query results, an index run's report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    path: str
    distance: float


@dataclass(frozen=True)
class QueryResult:
    """The results for one query picture."""

    query: str
    hits: list[Hit]


@dataclass
class IndexReport:
    """What an index run did; ``skipped`` maps each reason to the paths skipped for it."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    reused: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    previously_skipped: int = 0
    seconds: float = 0.0
    vector_file: str = ""  # what the run did to the vector file: "fresh", "pending", "updated" or "rebuilt"
    vectors_lost: int = 0  # pictures read again because the vector file was damaged

    def skip(self, path: str, reason: str) -> None:
        """Record that ``path`` was skipped for ``reason``."""
        self.skipped.setdefault(reason, []).append(path)

    @property
    def skipped_count(self) -> int:
        """How many files were skipped, whatever the reason."""
        return sum(len(v) for v in self.skipped.values())
