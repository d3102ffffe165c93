"""Which caniemail CSS features a style sheet or a `style` attribute uses: a small one-pass tokenizer, linear in
its input, that never raises (broken CSS is read as far as it makes sense, as a mail client would).

Counts are per occurrence: each declaration, selector, at-rule or value that uses a feature adds one. Unlike
Mailpit, which inlines `<style>` rules onto the elements they match (premailer) and then only looks at inline
styles, a `<style>` block is read as written: a rule counts whether or not its selector matches anything, and
selectors and at-rules are reported too.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

_TOKEN = re.compile(r"""/\*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[{};]|[^{};/"']+|/""", re.S)
_IMPORTANT = re.compile(r"!\s*important\s*$", re.I)
_FUNCTION = re.compile(r"([a-z-]+)\(", re.I)
_UNIT = re.compile(r"(?<![\w#.-])[+-]?(?:\d+\.?\d*|\.\d+)(%|[a-z]+)", re.I)
_WORD = re.compile(r"[a-z][a-z0-9-]*", re.I)
_AT_RULE = re.compile(r"@(-?[a-z][a-z0-9-]*)", re.I)
_PSEUDO = re.compile(r"(::?)(-?[a-z][a-z0-9-]*)", re.I)
_ATTRIBUTE = re.compile(r"\[[^\]]*\]?")
_COMPOUND_START = re.compile(r"[a-z*.#\[:]", re.I)
_PARENTHESES = re.compile(r"\([^()]*\)")
_COMBINATOR = re.compile(r"[>+~]")
_COMPOUND_SPLIT = re.compile(r"\s*[>+~]\s*|\s+")

# Blocks whose contents are rules rather than declarations.
_RULE_BLOCKS = {"media", "supports", "document", "-moz-document", "layer", "container", "scope"}
_NOT_PROPERTIES = ("css-at-", "css-unit-", "css-pseudo-", "css-selector-", "css-function-", "css-display-")
_NOT_PROPERTY_SLUGS = {"css-comments", "css-important", "css-nesting", "css-variables", "css-rgb", "css-rgba",
                       "css-modern-color", "css-sytem-ui", "css-linear-gradient", "css-radial-gradient",
                       "css-conic-gradient", "css-inert-attribute", "css-intrinsic-size",
                       "css-left-right-top-bottom", "css-border-radius-logical", "css-block-inline-size",
                       "css-column-layout-properties", "css-grid-template", "css-scroll-snap",
                       "css-border-inline-block-individual", "css-border-inline-block-longhand",
                       "css-margin-inline-block", "css-padding-inline-block", "css-margin-block-start-end",
                       "css-margin-inline-start-end", "css-padding-block-start-end", "css-padding-inline-start-end"}
_PROPERTY_ALIASES = {
    "left": "css-left-right-top-bottom", "right": "css-left-right-top-bottom",
    "top": "css-left-right-top-bottom", "bottom": "css-left-right-top-bottom",
    "block-size": "css-block-inline-size",
    "margin-inline": "css-margin-inline-block", "margin-block": "css-margin-inline-block",
    "padding-inline": "css-padding-inline-block", "padding-block": "css-padding-inline-block",
    "margin-block-start": "css-margin-block-start-end", "margin-block-end": "css-margin-block-start-end",
    "margin-inline-start": "css-margin-inline-start-end", "margin-inline-end": "css-margin-inline-start-end",
    "padding-block-start": "css-padding-block-start-end", "padding-block-end": "css-padding-block-start-end",
    "padding-inline-start": "css-padding-inline-start-end", "padding-inline-end": "css-padding-inline-start-end",
    "border-inline": "css-border-inline-block", "border-block": "css-border-inline-block",
    "row-gap": "css-gap", "column-gap": "css-gap", "grid-gap": "css-gap",
    "inset-block": "css-inset", "inset-inline": "css-inset", "inset-block-start": "css-inset",
    "inset-block-end": "css-inset", "inset-inline-start": "css-inset", "inset-inline-end": "css-inset",
    "overflow-x": "css-overflow", "overflow-y": "css-overflow", "overflow-block": "css-overflow",
    "overflow-inline": "css-overflow",
}
_PROPERTY_PREFIXES = (
    ("border-start-", "css-border-radius-logical"), ("border-end-", "css-border-radius-logical"),
    ("border-inline-start-", "css-border-inline-block-longhand"),
    ("border-inline-end-", "css-border-inline-block-longhand"),
    ("border-block-start-", "css-border-inline-block-longhand"),
    ("border-block-end-", "css-border-inline-block-longhand"),
    ("border-inline-", "css-border-inline-block-individual"),
    ("border-block-", "css-border-inline-block-individual"),
    ("border-image-", "css-border-image"), ("border-", "css-border"),
    ("column-", "css-column-layout-properties"), ("columns", "css-column-layout-properties"),
    ("grid-template", "css-grid-template"), ("scroll-snap", "css-scroll-snap"),
    ("animation-", "css-animation"), ("transition-", "css-transition"), ("margin-", "css-margin"),
    ("padding-", "css-padding"), ("outline-", "css-outline"), ("list-style-", "css-list-style"),
    ("font-", "css-font"), ("text-decoration-", "css-text-decoration"), ("background-", "css-background"),
)
_FUNCTIONS = {
    "calc": "css-unit-calc", "clamp": "css-function-clamp", "min": "css-function-min", "max": "css-function-max",
    "light-dark": "css-function-light-dark", "rgb": "css-rgb", "rgba": "css-rgba", "var": "css-variables",
    "linear-gradient": "css-linear-gradient", "repeating-linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient", "repeating-radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient", "repeating-conic-gradient": "css-conic-gradient",
    "lab": "css-modern-color", "lch": "css-modern-color", "oklab": "css-modern-color", "oklch": "css-modern-color",
}
_UNITS = {"ch", "cm", "em", "ex", "in", "mm", "pc", "pt", "px", "rem", "vh", "vmax", "vmin", "vw"}
_SYSTEM_FONTS = {"system-ui", "ui-serif", "ui-sans-serif", "ui-rounded", "ui-monospace"}
_INTRINSIC = {"fit-content", "min-content", "max-content"}
_MEDIA_FEATURES = (("prefers-color-scheme", "css-at-media-prefers-color-scheme"),
                   ("prefers-reduced-motion", "css-at-media-prefers-reduced-motion"),
                   ("hover", "css-at-media-hover"), ("orientation", "css-at-media-orientation"),
                   ("device-pixel-ratio", "css-at-media-device-pixel-ratio"))
_PSEUDO_ELEMENTS = {"before", "after", "first-letter", "first-line"}  # may be written with one colon


class CssScan:
    """Accumulates feature counts over every style sheet and `style` attribute of one message."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.counts: Counter[str] = Counter()

    def _add(self, slug: str) -> None:
        if slug in self.known:
            self.counts[slug] += 1

    def stylesheet(self, text: str) -> None:
        """A `<style>` element's text."""
        self._scan(text, inline=False)

    def inline(self, text: str) -> None:
        """A `style` attribute's value: declarations only."""
        self._scan(text, inline=True)

    def _scan(self, text: str, *, inline: bool) -> None:
        # Contexts: "rules" (a sheet, @media...), "decls" (a rule's block), "frames" (@keyframes: its blocks
        # are declarations, its preludes are percentages, not selectors).
        stack = ["decls" if inline else "rules"]
        segment: list[str] = []
        pos, end = 0, len(text)
        while pos < end:
            match = _TOKEN.match(text, pos)
            if match is None:  # unreachable: the last alternatives match any character
                break
            token = match.group()
            pos = match.end()
            if token == "/*":
                self._add("css-comments")
                close = text.find("*/", pos)
                if close < 0:
                    break  # an unterminated comment runs to the end
                pos = close + 2
                segment.append(" ")
            elif token == "{":
                prelude = "".join(segment).strip()
                segment.clear()
                stack.append(self._open_block(prelude, stack[-1]))
            elif token == ";":
                self._finish(stack[-1], "".join(segment))
                segment.clear()
            elif token == "}":
                self._finish(stack[-1], "".join(segment))
                segment.clear()
                if len(stack) > 1:
                    stack.pop()
            elif token[0] in "\"'":
                segment.append('""')  # a string's contents are not CSS
            else:
                segment.append(token)
        if segment:
            self._finish(stack[-1], "".join(segment))

    def _open_block(self, prelude: str, context: str) -> str:
        if prelude.startswith("@"):
            name = self._at_rule(prelude)
            if name == "keyframes" or name.endswith("-keyframes"):
                return "frames"
            return "rules" if name in _RULE_BLOCKS else "decls"
        if context == "frames" or not prelude:
            return "decls"
        if context == "decls":
            self._add("css-nesting")
        self._selector(prelude)
        return "decls"

    def _finish(self, context: str, segment: str) -> None:
        segment = segment.strip()
        if not segment:
            return
        if segment.startswith("@"):
            self._at_rule(segment)  # @import, @charset, ...
        elif context == "decls":
            self._declaration(segment)

    def _at_rule(self, prelude: str) -> str:
        match = _AT_RULE.match(prelude)
        if match is None:
            return ""
        name = match.group(1).lower()
        self._add(f"css-at-{name}")
        if name == "media":
            lowered = prelude.lower()
            for feature, slug in _MEDIA_FEATURES:
                if feature in lowered:
                    self._add(slug)
        return name

    def _declaration(self, declaration: str) -> None:
        name, colon, value = declaration.partition(":")
        prop = name.strip().lower()
        if not colon or not prop:
            return
        value = value.strip()
        if _IMPORTANT.search(value):
            self._add("css-important")
            value = _IMPORTANT.sub("", value).strip()
        if prop.startswith("--"):
            self._add("css-variables")
        else:
            self._property(prop, value)
        self._value(prop, value)

    def _property(self, prop: str, value: str) -> None:
        slug = _PROPERTY_ALIASES.get(prop)
        if slug is None:
            candidate = f"css-{prop}"
            if (candidate in self.known and candidate not in _NOT_PROPERTY_SLUGS
                    and not candidate.startswith(_NOT_PROPERTIES)):
                slug = candidate
            else:
                slug = next((s for prefix, s in _PROPERTY_PREFIXES if prop.startswith(prefix)), None)
        if slug is not None:
            self._add(slug)
        if prop == "display":
            words = {w.lower() for w in _WORD.findall(value)}
            if words & {"flex", "inline-flex"}:
                self._add("css-display-flex")
            if words & {"grid", "inline-grid"}:
                self._add("css-display-grid")
            if "none" in words:
                self._add("css-display-none")

    def _value(self, prop: str, value: str) -> None:
        for function in {f.lower() for f in _FUNCTION.findall(value)}:
            slug = _FUNCTIONS.get(function)
            if slug is not None:
                self._add(slug)
        for unit in {u.lower() for u in _UNIT.findall(value)}:
            if unit == "%":
                self._add("css-unit-percent")
            elif unit in _UNITS:
                self._add(f"css-unit-{unit}")
        words = {w.lower() for w in _WORD.findall(value)}
        if "initial" in words:
            self._add("css-unit-initial")
        if words & _INTRINSIC:
            self._add("css-intrinsic-size")
        if prop in ("font", "font-family") and words & _SYSTEM_FONTS:
            self._add("css-sytem-ui")

    def _selector(self, prelude: str) -> None:
        features = _cached_selector_features if len(prelude) <= 200 else selector_features
        for slug in features(prelude):
            self._add(slug)


def selector_features(prelude: str) -> frozenset[str]:
    """The selector features of one rule's prelude."""
    found: set[str] = set()
    if "," in prelude:
        found.add("css-selector-grouping")
    for pseudo_colons, pseudo in _PSEUDO.findall(prelude):
        name = pseudo.lower()
        if pseudo_colons == "::" or name in _PSEUDO_ELEMENTS:
            found.add(f"css-pseudo-element-{name}")
        else:
            found.add(f"css-pseudo-class-{name}")
    if _ATTRIBUTE.search(prelude):
        found.add("css-selector-attribute")
    bare = _ATTRIBUTE.sub("[]", prelude)  # `~=` and `|=` inside brackets are not combinators
    bare = _PARENTHESES.sub("()", bare)  # nor is anything inside :not(...) or :nth-child(...)
    for selector in bare.split(","):
        found |= _complex_selector(selector)
    return frozenset(found)


# Sheets repeat their selectors, and a hostile one repeats one a million times; only short ones are kept, so the
# cache stays small (4,096 x 200 characters at most).
_cached_selector_features = functools.lru_cache(maxsize=4096)(selector_features)


def _complex_selector(selector: str) -> set[str]:
    found: set[str] = set()
    for combinator, slug in ((">", "css-selector-child"), ("+", "css-selector-adjacent-sibling"),
                             ("~", "css-selector-general-sibling")):
        if combinator in selector:
            found.add(slug)
    compounds = _COMPOUND_SPLIT.split(selector.strip())
    explicit = len(_COMBINATOR.findall(selector))
    real = [c for c in compounds if c]
    if len(real) - 1 > explicit:
        found.add("css-selector-descendant")
    for compound in real:
        if not _COMPOUND_START.match(compound):
            continue
        simple = 0
        if compound[0].isalpha():
            found.add("css-selector-type")
            simple += 1
        if compound.startswith("*"):
            found.add("css-selector-universal")
            simple += 1
        ids, classes = compound.count("#"), compound.count(".")
        if ids:
            found.add("css-selector-id")
        if classes:
            found.add("css-selector-class")
        simple += ids + classes + compound.count("[")
        if simple > 1:
            found.add("css-selector-chaining")
    return found
