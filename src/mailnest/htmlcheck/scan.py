"""Which caniemail HTML features (elements, attributes, image formats) a message's HTML uses, with its style
sheets and `style` attributes handed to `css.CssScan`.

A tokenizer of its own, after the HTML5 tokenizer's rules (tags, attributes with or without quotes, comments,
declarations, raw-text elements), with no tree: depth costs nothing, broken markup is read as far as it goes and
nothing raises. Every step moves forward and every search starts where the last one ended, so the work is linear
in the input. The standard library's `HTMLParser` was not: on 3.11, 200 KB of `<a<a<a...` took 140 s (it
rescans an unfinished tag from each following character), and a million nested tags cost 9 s.
Counts are per element (or attribute, or comment).
"""

from __future__ import annotations

import html as html_entities
import re
from collections import Counter

from .css import CssScan

_ELEMENTS = {
    "abbr": "html-abbr", "acronym": "html-acronym", "address": "html-address", "audio": "html-audio",
    "base": "html-base", "bdi": "html-bdi", "blockquote": "html-blockquote", "code": "html-code",
    "del": "html-del", "dfn": "html-dfn", "dialog": "html-dialog", "div": "html-div", "form": "html-form",
    "hr": "html-hr", "img": "html-img", "link": "html-link", "marquee": "html-marquee", "meter": "html-meter",
    "object": "html-object", "embed": "html-object", "p": "html-p", "picture": "html-picture",
    "pre": "html-pre", "progress": "html-progress", "rp": "html-rp", "rt": "html-rt", "ruby": "html-ruby",
    "select": "html-select", "small": "html-small", "span": "html-span", "strike": "html-strike",
    "strong": "html-strong", "style": "html-style", "svg": "html-svg", "table": "html-table",
    "textarea": "html-textarea", "video": "html-video", "wbr": "html-wbr", "map": "html-image-maps",
    "ul": "html-lists", "ol": "html-lists", "dl": "html-lists",
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
    **{tag: "html-semantics" for tag in ("article", "aside", "details", "figcaption", "figure", "footer",
                                         "header", "main", "mark", "nav", "section", "summary", "time")},
}
_ATTRIBUTES = {
    "align": "html-align", "background": "html-background", "cellpadding": "html-cellpadding",
    "cellspacing": "html-cellspacing", "dir": "html-dir", "height": "html-height", "hidden": "html-hidden",
    "lang": "html-lang", "loading": "html-loading-attribute", "popover": "html-popover",
    "required": "html-required", "role": "html-role", "srcset": "html-srcset", "sizes": "html-srcset",
    "target": "html-target", "valign": "html-valign", "width": "html-width", "inert": "css-inert-attribute",
    "aria-describedby": "html-aria-describedby", "aria-hidden": "html-aria-hidden",
    "aria-label": "html-aria-label", "aria-labelledby": "html-aria-labelledby", "aria-live": "html-aria-live",
}
_INPUT_TYPES = {"checkbox": "html-input-checkbox", "hidden": "html-input-hidden", "radio": "html-input-radio",
                "reset": "html-input-reset", "submit": "html-input-submit", "text": "html-input-text"}
_IMAGE_EXTENSIONS = {
    "apng": "image-apng", "avif": "image-avif", "bmp": "image-bmp", "gif": "image-gif", "hdr": "image-hdr",
    "heif": "image-heif", "heic": "image-heif", "ico": "image-ico", "jpg": "image-jpg", "jpeg": "image-jpg",
    "mp4": "image-mp4", "png": "image-png", "svg": "image-svg", "tif": "image-tiff", "tiff": "image-tiff",
    "webp": "image-webp",
}
_DATA_IMAGE = re.compile(r"\s*data:image/([a-z0-9.+-]*)", re.I)
_EXTENSION = re.compile(r"\.([a-z0-9]{1,5})$", re.I)
_NOT_SCRIPT = {"application/ld+json", "application/json"}  # structured data, not something clients run
# Not counted as nodes (Mailpit: `*:not(html):not(head):not(meta)` when there is a </body>, else `body *`).
_NOT_NODES = {"html", "head", "meta"}
_HEAD_ONLY = {"body", "title", "base", "link", "style"}
_MARKUP = re.compile(r"<(?:(/?)([a-zA-Z][^\t\n\f\r />]*)|!--|!|\?)")
_ATTRIBUTE = re.compile(r"[\t\n\f\r /]*(?:(>)|([^\t\n\f\r />=][^\t\n\f\r />=]*)"
                        r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r >]*)))?)")
# Elements whose content is text up to their end tag (markup inside is not markup).
_RAW_TEXT = {name: re.compile(rf"</{name}[\t\n\f\r />]|</{name}$", re.I)
             for name in ("style", "script", "textarea", "title", "xmp", "iframe", "noembed", "noframes")}


class HtmlScan:
    """`feed` it the whole HTML once, then `close()`; read `counts`, `nodes`, `scripts` and `css.counts`."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.counts: Counter[str] = Counter()
        self.css = CssScan(known)
        self.scripts = 0
        self.body_closed = False
        self._document_nodes = 0
        self._head_nodes = 0

    @property
    def nodes(self) -> int:
        if self.body_closed:
            return self._document_nodes
        return self._document_nodes - self._head_nodes

    def _add(self, slug: str) -> None:
        if slug in self.known:
            self.counts[slug] += 1

    def feed(self, html: str) -> None:
        pos, end = 0, len(html)
        while pos < end:
            start = html.find("<", pos)
            if start < 0:
                return
            markup = _MARKUP.match(html, start)
            if markup is None:
                pos = start + 1  # a "<" that starts nothing is text
                continue
            token = markup.group()
            if token == "<!--":
                self._add("html-comments")
                close = html.find("-->", markup.end())
                if close < 0:
                    return  # an unterminated comment runs to the end
                pos = close + 3
            elif token in ("<!", "<?"):
                close = html.find(">", markup.end())
                if close < 0:
                    return
                if token == "<!" and html[markup.end():markup.end() + 7].lower() == "doctype":
                    self._add("html-doctype")
                pos = close + 1
            else:
                name = markup.group(2).lower()
                attrs, pos, complete = self._attributes(html, markup.end())
                if not complete:
                    return  # a tag cut off by the end of the input is dropped, as HTML5 does
                if markup.group(1):
                    self.end_tag(name)
                    continue
                self.start_tag(name, attrs)
                raw_end = _RAW_TEXT.get(name)
                if raw_end is not None:
                    close_match = raw_end.search(html, pos)
                    content_end = close_match.start() if close_match else end
                    if name == "style":
                        self.css.stylesheet(html[pos:content_end])
                    pos = content_end  # the end tag itself is read by the next round

    @staticmethod
    def _attributes(html: str, pos: int) -> tuple[dict[str, str], int, bool]:
        """The attributes from `pos` to the tag's `>`: (attributes, position after the tag, whether it ended)."""
        attrs: dict[str, str] = {}
        while True:
            match = _ATTRIBUTE.match(html, pos)
            if match is None:
                return attrs, len(html), False
            pos = match.end()
            if match.group(1):
                return attrs, pos, True
            name = match.group(2).lower()
            value = next((v for v in match.group(3, 4, 5) if v is not None), "")
            if name not in attrs:  # the first of repeated attributes wins
                attrs[name] = html_entities.unescape(value) if "&" in value else value

    def start_tag(self, tag: str, values: dict[str, str]) -> None:
        if tag not in _NOT_NODES:
            self._document_nodes += 1
            if tag in _HEAD_ONLY:
                self._head_nodes += 1
        slug = _ELEMENTS.get(tag)
        if slug is not None:
            self._add(slug)
        for name in values:
            attribute = _ATTRIBUTES.get(name)
            if attribute is not None:
                self._add(attribute)
        style = values.get("style")
        if style:
            self.css.inline(style)
        kind = values.get("type", "").strip().lower()
        if tag == "input":
            slug = _INPUT_TYPES.get(kind or "text")
            if slug is not None:
                self._add(slug)
        elif tag == "button" and kind in ("submit", "reset", ""):
            self._add("html-button-reset" if kind == "reset" else "html-button-submit")
        elif tag == "a":
            href = values.get("href", "").strip().lower()
            if href.startswith("#"):
                self._add("html-anchor-links")
            elif href.startswith("mailto:"):
                self._add("html-mailto-links")
        elif tag == "img":
            self._image(values.get("src", ""))
            if "usemap" in values:
                self._add("html-image-maps")
        elif tag == "script" and kind not in _NOT_SCRIPT:
            self.scripts += 1
        elif tag == "meta" and values.get("name", "").strip().lower() in ("color-scheme",
                                                                          "supported-color-schemes"):
            self._add("html-meta-color-scheme")

    def _image(self, src: str) -> None:
        data = _DATA_IMAGE.match(src)
        if data is not None:
            self._add("image-base64")
            subtype = data.group(1).lower().removesuffix("+xml")
            slug = _IMAGE_EXTENSIONS.get(subtype)
        else:
            path = src.split("#", 1)[0].split("?", 1)[0].strip()
            extension = _EXTENSION.search(path[-8:])
            slug = _IMAGE_EXTENSIONS.get(extension.group(1).lower()) if extension else None
        if slug is not None:
            self._add(slug)

    def end_tag(self, tag: str) -> None:
        if tag == "body":
            self.body_closed = True

    def close(self) -> None:
        if self.body_closed:
            self._add("html-body")
