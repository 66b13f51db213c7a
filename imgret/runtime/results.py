"""What library operations return: search hits, per-query results, an index run's report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hit:
    """One search result; ``copies`` are other hits folded into it (copies of this picture, identical
    files, other paths of one file), each with its own distance to the query."""

    rank: int
    path: str
    distance: float
    copies: tuple[Hit, ...] = ()


@dataclass(frozen=True)
class QueryResult:
    """The results for one query picture; a picture that could not be read has no hits and says why
    in ``error`` (and ``reason``, a short word such as ``not-an-image``), so one bad query picture does
    not sink the others."""

    query: str
    hits: list[Hit]
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the query picture was read (its hits may still be empty: an empty library)."""
        return self.error is None


@dataclass
class IndexReport:
    """What an index run did.

    ``skipped`` maps each reason to the files recorded in the catalogue as skipped for it after the
    run (new ones, and ``previously_skipped`` unchanged ones from earlier runs): the files ``imgret
    info`` counts as skipped. ``passed_over`` holds what is not recorded, by suffix or reason.
    """

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    reused: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    previously_skipped: int = 0
    # Not recorded in the catalogue, so `imgret info` does not count them: files whose suffix is not a
    # picture's (keyed by suffix), links and files already seen, and files that could not be opened this
    # time (tried again next run). Keyed by suffix or reason.
    passed_over: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    vector_file: str = ""  # what the run did to the vector file: "fresh", "pending", "updated" or "rebuilt"
    vectors_lost: int = 0  # pictures read again because the vector file was damaged

    def skip(self, path: str, reason: str) -> None:
        """Record that ``path`` was skipped for ``reason``."""
        self.skipped.setdefault(reason, []).append(path)

    def pass_over(self, path: str, why: str) -> None:
        """Record that ``path`` was passed over (not recorded in the catalogue) for ``why``."""
        self.passed_over.setdefault(why, []).append(path)

    @property
    def skipped_count(self) -> int:
        """How many files are recorded as skipped (new or from earlier runs), whatever the reason."""
        return sum(len(v) for v in self.skipped.values())

    @property
    def passed_over_count(self) -> int:
        """How many files were passed over without being recorded."""
        return sum(len(v) for v in self.passed_over.values())
