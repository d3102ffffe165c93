"""Captured HTML -> a preview document that cannot run script, post a form or call home. Pure: no I/O.

Also the two small changes the original HTML gets where it is served as written (`/view/{ID}.html`, made
harmless by its response headers rather than by rewriting): `cid:` references pointed at the parts, and, asked,
link targets (`link_parts`, `embed_links`).

Captured mail is hostile. Three layers keep it harmless, each enough on its own for script:
1. nh3 keeps only presentational tags and attributes and only the URL schemes a preview needs;
2. this module rewrites every URL-bearing attribute and every CSS `url()`: `cid:` becomes the message's own
   part URL, remote images are dropped unless the reader asked for them, anything else goes;
3. the response that carries the document has a CSP without scripts and is shown in a sandboxed iframe
   (`ui.py`), so whatever slips past 1 and 2 still cannot run or reach the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from urllib.parse import unquote

import nh3

_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"style", "font", "tfoot", "big", "address", "section", "main", "label"}
# Dropped with everything inside them; the rest of the unknown tags are unwrapped (their text is kept).
_CLEAN_CONTENT = frozenset({"script", "title", "head", "template", "iframe", "object", "embed", "applet",
                            "noembed", "noframes", "noscript", "xmp", "plaintext", "textarea", "select",
                            "option", "button", "svg", "math", "frameset", "frame"})
_GENERIC_ATTRIBUTES = frozenset({"style", "class", "id", "align", "valign", "dir", "lang", "title", "width",
                                 "height", "bgcolor", "color", "border", "nowrap", "role", "hidden"})
_ATTRIBUTES = {
    "*": set(_GENERIC_ATTRIBUTES),
    "a": {"href", "name", "hreflang"},
    "img": {"src", "alt", "hspace", "vspace"},
    "font": {"face", "size"},
    "table": {"cellpadding", "cellspacing", "background", "summary", "frame", "rules"},
    "td": {"background", "colspan", "rowspan", "headers", "scope", "abbr", "axis", "char", "charoff"},
    "th": {"background", "colspan", "rowspan", "headers", "scope", "abbr", "axis", "char", "charoff"},
    "tr": {"background", "char", "charoff"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "hr": {"size", "noshade"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "time": {"datetime"},
    "bdo": {"dir"},
    "details": {"open"},
}
# Per attribute: which URL schemes survive. ammonia checks `href`/`src` itself; `background` and `cite` are
# ours to police, so every URL-bearing attribute goes through `_url_for` whatever ammonia thinks of it.
_URL_ATTRIBUTES = frozenset({"href", "src", "background", "cite", "longdesc", "action", "formaction",
                             "poster", "xlink:href", "data", "codebase", "lowsrc", "dynsrc"})
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
_IMAGE_DATA = re.compile(r"data:image/(?:png|gif|jpe?g|webp|bmp|avif|x-icon)[;,]", re.I)
_URL_TEXT = re.compile(r"""(?:https?://|mailto:)[^\s<>"'`()\[\]{}]+[^\s<>"'`()\[\]{}.,;:!?]""", re.I)
# Characters browsers drop from URLs before deciding the scheme ("java\tscript:" is "javascript:").
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


@dataclass(frozen=True, slots=True)
class Preview:
    """A sanitized HTML body plus what the UI tells the reader about it."""

    body: str  # safe HTML fragment for the preview document's <body>
    remote_images: int  # remote image references found (blocked unless allow_remote)
    links: tuple[str, ...]  # http(s) and mailto links, in document order, deduplicated


def _normalise_url(value: str) -> str:
    return _URL_NOISE.sub("", value)


def _is_remote(url: str) -> bool:
    lowered = url.lower()
    return lowered.startswith(("http:", "https:", "//", "\\\\", "/\\", "\\/"))


class _Rewriter:
    """The per-message state the nh3 attribute callback needs: cid map, remote policy, counters."""

    def __init__(self, cid_urls: Mapping[str, str], allow_remote: bool) -> None:
        self.cid_urls = {_cid_key(k): v for k, v in cid_urls.items()}
        self.allow_remote = allow_remote
        self.remote_images = 0
        self.links: dict[str, None] = {}

    def image_url(self, raw: str) -> str | None:
        url = _normalise_url(raw)
        lowered = url.lower()
        if lowered.startswith("cid:"):
            return self.cid_urls.get(_cid_key(url[4:]))
        if _IMAGE_DATA.match(url):
            return url
        if _is_remote(url):
            self.remote_images += 1
            if self.allow_remote and lowered.startswith(("http:", "https:")):
                return url
        return None

    def link_url(self, raw: str) -> str | None:
        url = _normalise_url(raw)
        lowered = url.lower()
        if lowered.startswith(_LINK_SCHEMES):
            if lowered.startswith(("http:", "https:", "mailto:")):
                self.links[url] = None
            return url
        if lowered.startswith("cid:"):
            return self.cid_urls.get(_cid_key(url[4:]))
        return None

    def attribute(self, tag: str, name: str, value: str) -> str | None:
        name = name.lower()
        if name == "style":
            return scrub_css(value, self) or None
        if name not in _URL_ATTRIBUTES:
            return value
        if tag == "a" and name == "href":
            return self.link_url(value)
        if (tag == "img" and name == "src") or name == "background":
            return self.image_url(value)
        return None  # cite, longdesc and friends are never needed to read a message


def _cid_key(value: str) -> str:
    return value.strip().strip("<>").lower()


# CSS: everything that can fetch or execute. Comments go first so "ur/**/l(" cannot hide a url().
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\([^\n\r\f0-9a-fA-F])")
_CSS_URL = re.compile(r"""url\(\s*(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|([^)\s"']*))\s*\)""", re.I)
_CSS_AT_RULES = re.compile(r"@(?:import|charset|namespace)\b[^;{}]*;?", re.I)
_CSS_IMAGE_SET = re.compile(r"(?:-webkit-)?image-set\([^)]*\)", re.I)
# Whatever url-ish function is left after the rewrite is one the rewrite could not parse: break it.
_CSS_FETCHING_FUNCTION = re.compile(r"\b(?:url|src|image)\s*\(", re.I)
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_CSS_DANGEROUS = re.compile(r"expression\s*\(|-moz-binding|behavior\s*:|javascript:|vbscript:|</", re.I)


def _unescape_ident_chars(css: str) -> str:
    """Decode CSS escapes that spell letters, so `\\75 rl(` is seen as the `url(` a browser would read.

    Escapes of anything else stay escaped: decoding a quote or a backslash would change what the CSS means.
    """

    def decode(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16)) if match.group(1) else match.group(2)
        if char.isascii() and (char.isalnum() or char in "-_:"):
            return char
        return match.group(0)

    return _CSS_ESCAPE.sub(decode, css)


def scrub_css(css: str, rewriter: _Rewriter | None = None) -> str:
    """CSS from a style attribute or <style> element, with nothing left that can fetch or run."""
    rewriter = rewriter or _Rewriter({}, allow_remote=False)
    css = _CSS_COMMENT.sub("", css)
    css = _unescape_ident_chars(css)
    css = _CSS_AT_RULES.sub("", css)

    kept: list[str] = []
    css = css.replace("\x00", "")

    def url(match: re.Match[str]) -> str:
        target = next((g for g in match.groups() if g is not None), "")
        safe = rewriter.image_url(target.replace("\\", ""))
        if safe is None:
            return "none"
        kept.append('url("' + safe.replace("\\", "%5C").replace('"', "%22") + '")')
        return f"\x00{len(kept) - 1}\x00"

    css = _CSS_URL.sub(url, css)
    css = _CSS_IMAGE_SET.sub("none", css)
    css = _CSS_FETCHING_FUNCTION.sub("invalid(", css)
    css = _CSS_DANGEROUS.sub("", css)
    # No "<" survives, as CSS escapes it: removing one "</" above can join its neighbours into a new "</style",
    # and a kept URL may hold one, either of which would end the <style> element early.
    return _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], css).replace("<", "\\3c ")


_STYLE_ELEMENT = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.S | re.I)


def _cleaner(attribute_filter: Callable[[str, str, str], str | None]) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT),
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel="noopener noreferrer",
        url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def sanitize(html: str, *, cid_urls: Mapping[str, str] | None = None, allow_remote: bool = False) -> Preview:
    """Sanitize a message's HTML body.

    `cid_urls` maps Content-IDs (with or without angle brackets) to the URL serving that part, so inline
    images show. Remote images are counted always and kept only with `allow_remote`.
    """
    rewriter = _Rewriter(cid_urls or {}, allow_remote)

    def attribute_filter(tag: str, name: str, value: str) -> str | None:
        return rewriter.attribute(tag, name, value)

    body = _cleaner(attribute_filter).clean(html or "")
    # nh3 serialises <style> content as raw text; the only way to police it is after the fact. The output is
    # normalised, so a "<style>" here is an element, and its content cannot contain "</style>".
    body = _STYLE_ELEMENT.sub(lambda m: m.group(1) + scrub_css(m.group(2), rewriter) + m.group(3), body)
    return Preview(body=body, remote_images=rewriter.remote_images, links=tuple(rewriter.links))


def text_links(text: str) -> tuple[str, ...]:
    """Every http(s)/mailto URL written out in a text body, first seen first."""
    return tuple(dict.fromkeys(m.group(0) for m in _URL_TEXT.finditer(text or "")))


_DOCUMENT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>html{{color-scheme:light}}body{{margin:12px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;\
color:#1b1f24;background:#fff;overflow-wrap:anywhere}}img{{max-width:100%;height:auto}}\
table{{max-width:100%}}pre{{white-space:pre-wrap}}</style>
</head><body>{body}</body></html>
"""


def document(preview: Preview) -> str:
    """The whole preview document served into the sandboxed iframe."""
    return _DOCUMENT.format(body=preview.body)


def text_document(text: str) -> str:
    """A text body as an HTML document, for viewers that want one (escaped, never interpreted)."""
    return _DOCUMENT.format(body="<pre>" + escape(text or "") + "</pre>")


# --- The original HTML --------------------------------------------------------------------------------------

# A `cid:` reference in an attribute value (quoted or not) or a CSS url(): where Mailpit rewrites it, and in CSS.
_CID_REFERENCE = re.compile(r"""(=[ \t\r\n]*["']?|url\([ \t\r\n]*["']?)cid:([^"'\s>)]+)""", re.I)


def link_parts(html: str, cid_urls: Mapping[str, str]) -> str:
    """The HTML as written, with each `cid:` reference to a part of the message replaced by `cid_urls`' URL for
    that part (Content-IDs compared as `sanitize` does, also %-decoded). Everything else, unknown Content-IDs
    included, stays byte for byte. One linear pass."""
    if not cid_urls or "cid:" not in html.lower():
        return html
    urls = {_cid_key(k): v for k, v in cid_urls.items()}

    def replace(match: re.Match[str]) -> str:
        written = match.group(2)
        url = urls.get(_cid_key(written)) or urls.get(_cid_key(unquote(written)))
        return match.group(1) + escape(url) if url else match.group(0)

    return _CID_REFERENCE.sub(replace, html)


# Elements whose content a browser shows as text, never as markup (HTML's RCDATA and raw text elements; Python's
# parser reads tags inside them as tags). `plaintext` never ends.
_TEXT_ONLY = frozenset({"textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext"})


class _Anchors(HTMLParser):
    """Where each `<a>` start tag is, as written, and its attributes; none inside an element a browser reads as
    text (`<textarea><a href=x></textarea>` shows those characters, and must keep them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[tuple[tuple[int, int], str, list[tuple[str, str | None]]]] = []
        self._text_only: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._text_only is not None:
            return
        if tag in _TEXT_ONLY:
            self._text_only = tag
            return
        text = self.get_starttag_text()
        if tag == "a" and text:
            self.found.append((self.getpos(), text, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TEXT_ONLY:  # `<textarea/>` still opens a textarea in HTML; `<a/>` is an `<a>`
            self.handle_starttag(tag, attrs)
        elif self._text_only is None:
            self._text_only = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._text_only and tag != "plaintext":
            self._text_only = None


def embed_links(html: str) -> str:
    """Every link opens in a new browsing context without a referrer (`target="_blank" rel="noreferrer
    noopener"`, Mailpit's `?embed=1`); only the `<a>` start tags change."""
    parser = _Anchors()
    parser.feed(html)
    parser.close()
    if not parser.found:
        return html
    line_starts = [0]
    for match in re.finditer("\n", html):
        line_starts.append(match.end())
    out: list[str] = []
    done = 0
    for (line, column), text, attrs in parser.found:
        start = line_starts[line - 1] + column
        if start < done or html[start:start + len(text)] != text:
            continue  # the parser and the text disagree: leave that tag as written
        kept = "".join(f" {name}" if value is None else f' {name}="{escape(value)}"'
                       for name, value in attrs if name not in ("target", "rel"))
        out += [html[done:start], f'<a{kept} target="_blank" rel="noreferrer noopener">']
        done = start + len(text)
    out.append(html[done:])
    return "".join(out)
