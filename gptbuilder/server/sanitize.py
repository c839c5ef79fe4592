"""Assistant text → safe HTML for the widget: Markdown rendered without raw HTML, then cleaned by nh3."""

from __future__ import annotations

from functools import cache

import nh3

_TAGS = {
    "p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del", "sup",
}  # no img: an image URL in an answer could carry data out of the page


@cache
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


def render(text: str) -> str:
    """Markdown to HTML with no scripts, no event handlers, no javascript: links and no images."""
    html = _markdown().render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}, "th": {"align"}, "td": {"align"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
