"""The store's home page: GPT cards on category shelves, featured first, with search and a category filter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..history import GPTStats, History
from ..loader import LoadedSpec
from ..spec import Category
from ..store import Store
from .render import avatar_text, esc

ALL = "all"
# Shelf titles when the catalogue gives none of its own (the default catalogue titles shelves by id).
TITLES = {"customer-service": "Customer service", "content": "Content", "coding": "Coding", "translation": "Translation", "qa": "Q&A"}
# Hook for `gptbuilder test` results: given a GPT id, its latest pass rate (0..1) or None when never run.
PassRateLookup = Callable[[str], float | None]


def stored_pass_rates(store: Store, data_dir: str | Path) -> PassRateLookup:
    """The default hook: the pass rate `gptbuilder test` stored for the GPT's current spec version, if any."""

    def lookup(gpt_id: str) -> float | None:
        from ..fingerprint import spec_version
        from ..testing import latest_result

        found = latest_result(data_dir, gpt_id, version=spec_version(store.get(gpt_id)))
        return found[0] / found[1] if found and found[1] else None

    return lookup


@dataclass(frozen=True)
class Card:
    """What one GPT's card shows."""

    id: str
    name: str
    description: str
    category: str
    shelf: str
    avatar: str
    author: str
    tags: tuple[str, ...]
    featured: bool
    conversations: int
    rating: float | None
    ratings: int
    has_tests: bool
    pass_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's view of the card)."""
        return asdict(self)


def cards(store: Store, history: History, *, pass_rates: PassRateLookup | None = None) -> list[Card]:
    """Every valid GPT as a card, in catalogue order (featured first)."""
    stats = history.stats()
    titles = {shelf.id: shelf_title(shelf.id, shelf.title) for shelf in store.catalog.categories}
    featured = set(store.catalog.featured)
    return [_card(g, stats.get(g.id, GPTStats()), titles, g.id in featured, pass_rates) for g in store.specs()]


def _card(
    gpt: LoadedSpec, stats: GPTStats, titles: dict[Category, str], featured: bool, pass_rates: PassRateLookup | None
) -> Card:
    spec = gpt.spec
    rate = None
    if pass_rates is not None and spec.tests:
        try:
            rate = pass_rates(gpt.id)
        except Exception:  # a broken results file must not take the home page down
            rate = None
    return Card(
        id=gpt.id,
        name=spec.name,
        description=spec.description,
        category=spec.category,
        shelf=titles.get(spec.category, spec.category),
        avatar=avatar_text(spec.avatar, spec.name),
        author=spec.author or "",
        tags=tuple(spec.tags),
        featured=featured,
        conversations=stats.conversations,
        rating=stats.rating,
        ratings=stats.ratings,
        has_tests=bool(spec.tests),
        pass_rate=rate,
    )


def shelf_title(category: str, title: str) -> str:
    """The catalogue's title for a shelf, or a readable one when it only repeats the id."""
    return TITLES.get(category, title) if title == category else title


def matches(card: Card, query: str, category: str | None) -> bool:
    """Whether a card passes the search (every word in its name, description or tags) and the filter."""
    if category and category != ALL and card.category != category:
        return False
    haystack = " ".join([card.name, card.description, *card.tags, card.id]).lower()
    return all(word in haystack for word in query.lower().split())


def search(all_cards: list[Card], query: str = "", category: str | None = ALL) -> list[Card]:
    """The cards matching a search and a category, order kept."""
    return [c for c in all_cards if matches(c, query or "", category)]


def shelves(found: list[Card], store: Store) -> list[tuple[str, list[Card]]]:
    """Featured first, then one shelf per category in catalogue order; empty shelves left out."""
    out: list[tuple[str, list[Card]]] = []
    featured = [c for c in found if c.featured]
    if featured:
        out.append(("Featured", featured))
    for shelf in store.catalog.categories:
        on_shelf = [c for c in found if c.category == shelf.id and not c.featured]
        if on_shelf:
            out.append((shelf_title(shelf.id, shelf.title), on_shelf))
    return out


def card_html(card: Card) -> str:
    """One card's HTML; every text from the spec escaped, so names and descriptions show as written."""
    badges = [f'<span class="gb-badge">{esc(card.shelf)}</span>']
    if card.has_tests:
        label = "tested" if card.pass_rate is None else f"tests {round(card.pass_rate * 100)}%"
        badges.append(f'<span class="gb-badge gb-eval" title="has tests: (gptbuilder test)">✓ {esc(label)}</span>')
    rating = f"★ {card.rating:.1f} ({card.ratings})" if card.rating is not None else "☆ no ratings"
    chats = f"{card.conversations} chat{'s' if card.conversations != 1 else ''}"
    author = f"by {esc(card.author)} · " if card.author else ""
    return (
        f'<div class="gb-card-body" data-gpt="{esc(card.id)}">'
        f'<div class="gb-avatar" aria-hidden="true">{esc(card.avatar)}</div>'
        f'<div class="gb-card-text"><div class="gb-name">{esc(card.name)}</div>'
        f'<div class="gb-desc">{esc(card.description)}</div>'
        f'<div class="gb-meta">{author}{chats} · {rating}</div>'
        f'<div class="gb-badges">{"".join(badges)}</div></div></div>'
    )
