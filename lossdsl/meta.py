"""A spec's metadata as data: the field block that ends its docstring.

    \"\"\"
    Focal loss: cross-entropy down-weighted on well-classified examples.
    ...prose: conventions, pitfalls...

    summary: Focal loss (softmax form): cross-entropy down-weighted on easy examples.
    paper: Focal Loss for Dense Object Detection
    authors: Tsung-Yi Lin, Priya Goyal, Ross Girshick, Kaiming He, Piotr Dollar
    venue: ICCV
    year: 2017
    arxiv: 1708.02002
    code: kornia.losses.focal_loss (kornia/losses/focal.py)
    verified: tests/peers/test_kornia.py (kornia); tests/test_references.py
    \"\"\"

The block is the docstring's last paragraph when that paragraph opens with a known field; a
value runs on over indented lines. `lossdsl list`, `show` and docs/specs.md read these fields,
never the prose, so a summary or a citation is what the author wrote, not a guess at a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lossdsl.errors import LossSyntaxError, did_you_mean
from lossdsl.source import Source, Span

# field -> what its value is (the hint of an error about it)
FIELDS = {
    "summary": "one sentence, at most 120 characters, ending with '.'",
    "paper": "the paper's title",
    "authors": "the authors, comma-separated (Tsung-Yi Lin, Priya Goyal; a last 'et al.')",
    "venue": "where it appeared (ICCV, NeurIPS, arXiv, ...)",
    "year": "the year of publication, four digits",
    "arxiv": "an arXiv id: 1708.02002 or 1708.02002v2",
    "doi": "a DOI: 10.1109/ICCV.2017.324",
    "code": "the reference implementations, ';'-separated",
    "verified": "what the tests compare it with, ';'-separated",
}
LISTS = ("authors", "code", "verified")
ARXIV = re.compile(r"(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?")
DOI = re.compile(r"10\.\d{4,9}/\S+")
KEY = re.compile(r"([A-Za-z_][\w-]*):(\s|$)")
MAX_SUMMARY = 120


@dataclass(frozen=True)
class Meta:
    summary: str | None = None
    paper: str | None = None
    authors: tuple[str, ...] = ()
    venue: str | None = None
    year: int | None = None
    arxiv: str | None = None
    doi: str | None = None
    code: tuple[str, ...] = ()
    verified: tuple[str, ...] = ()

    def citation(self) -> str:
        """Authors. Title. Venue year. arXiv:id (the parts present)."""
        if self.paper is None:
            return ""
        parts = [", ".join(self.authors), self.paper]
        parts.append(" ".join(str(p) for p in (self.venue, self.year) if p))
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}")
        if self.doi:
            parts.append(f"doi:{self.doi}")
        return ". ".join(p.rstrip(".") for p in parts if p) + "."

    def short_citation(self) -> str:
        """First author's surname, et al., venue year: Lin et al., ICCV 2017."""
        if self.paper is None:
            return ""
        first = _surname(self.authors[0])
        who = first + (" et al." if len(self.authors) > 2 or "et al." in self.authors else "")
        if len(self.authors) == 2 and "et al." not in self.authors:
            who += " and " + _surname(self.authors[1])
        return ", ".join(p for p in (who, " ".join(str(x) for x in (self.venue, self.year) if x)))


PARTICLES = {"van", "von", "de", "den", "der", "del", "della", "di", "da", "du", "le", "la", "ten"}


def _surname(author: str) -> str:
    """The surname of a name as written: its last word, with the particles before it (Aaron
    van den Oord -> van den Oord; Alexandre de Brebisson -> de Brebisson)."""
    words = author.split()
    k = len(words) - 1
    while k > 0 and words[k - 1].lower() in PARTICLES:
        k -= 1
    return " ".join(words[k:])


def first_sentence(doc: str) -> str:
    """A spec without a summary field: its docstring's first sentence, however it wraps."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.search(r"[.!?](\s|$)", para)
    return para[: m.start() + 1] if m else para


def field_block(lines: list[str]) -> tuple[int, int] | None:
    """The docstring lines [start, end) of its field block: its last paragraph, when that
    opens with a known field; None otherwise."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and lines[start - 1].strip():
        start -= 1
    first = KEY.match(lines[start].strip()) if start < end else None
    if first is None or first.group(1) not in FIELDS:
        return None
    return start, end


def parse_meta(doc: str, src: Source, line: int, col: int, errors: list) -> Meta:
    """The field block of a docstring whose text `doc` starts at (line, col) of `src`. Mistakes
    append a LossSyntaxError pointing at the field to `errors` (parsing goes on)."""
    lines = doc.split("\n")
    block = field_block(lines)
    if block is None:
        return Meta()
    start, end = block

    def span(k: int, a: int, b: int) -> Span:
        c0 = col + 3 if k == 0 else 1  # the first line of the docstring follows its quotes
        return Span(src, line + k, c0 + a, line + k, c0 + max(b, a + 1))

    raw: dict[str, tuple[str, Span]] = {}
    key = None
    base = len(lines[start]) - len(lines[start].lstrip())  # an indented docstring's margin
    for k in range(start, end):
        text = lines[k]
        col0 = len(text) - len(text.lstrip())
        indent = max(col0 - base, 0)
        m = KEY.match(text.strip())
        if m is None or (indent and key is not None):
            if key == "" and indent:  # the continuation of a field already reported
                continue
            if key is None or not indent:
                errors.append(
                    LossSyntaxError(
                        "a line of the docstring's field block is not `field: value`",
                        span(k, col0, len(text.rstrip())),
                        "write `field: value`, or indent the line to continue the field above",
                    )
                )
                continue
            value, sp = raw[key]
            raw[key] = (f"{value} {text.strip()}".strip(), sp)
            continue
        key = m.group(1)
        kspan = span(k, col0, col0 + len(key))
        if key not in FIELDS:
            errors.append(
                LossSyntaxError(
                    f"unknown docstring field '{key}'",
                    kspan,
                    did_you_mean(key, FIELDS) or f"the fields are: {', '.join(FIELDS)}",
                )
            )
            key = ""
            continue
        if key in raw:
            errors.append(
                LossSyntaxError(
                    f"the docstring field '{key}' is given twice",
                    kspan,
                    "give each field once; a value runs on over indented lines",
                )
            )
            key = ""
            continue
        vstart = col0 + m.end()
        raw[key] = (text.strip()[m.end() :].strip(), span(k, vstart, len(text.rstrip())))
    return _check(raw, errors)


def _check(raw: dict[str, tuple[str, Span]], errors: list) -> Meta:
    def bad(key: str, message: str) -> None:
        errors.append(LossSyntaxError(message, raw[key][1], f"{key}: {FIELDS[key]}"))

    out: dict[str, object] = {}
    for key, (value, _) in raw.items():
        if not value:
            bad(key, f"the docstring field '{key}' is empty")
            continue
        if key in LISTS:
            items = tuple(v.strip() for v in value.split("," if key == "authors" else ";"))
            if not all(items):
                bad(key, f"the docstring field '{key}' has an empty entry")
                continue
            out[key] = items
        elif key == "year":
            if not (value.isdigit() and len(value) == 4 and 1000 <= int(value) <= 2100):
                bad(key, f"the year {value!r} is not a four-digit year")
                continue
            out[key] = int(value)
        elif key == "arxiv" and not ARXIV.fullmatch(value.removeprefix("arXiv:")):
            bad(key, f"{value!r} is not an arXiv id")
        elif key == "doi" and not DOI.fullmatch(value.removeprefix("doi:")):
            bad(key, f"{value!r} is not a DOI")
        elif key == "summary" and (len(value) > MAX_SUMMARY or not value.endswith(".")):
            n = len(value)
            bad(
                key,
                f"the summary is {n} characters"
                if n > MAX_SUMMARY
                else "the summary does not end with '.'",
            )
        else:
            out[key] = value.removeprefix("arXiv:").removeprefix("doi:")
    if "paper" in raw:
        for need in ("authors", "year"):
            if need not in raw:
                errors.append(
                    LossSyntaxError(
                        f"the docstring names a paper but no {need}",
                        raw["paper"][1],
                        f"add `{need}: ...` ({FIELDS[need]})",
                    )
                )
    for key in ("authors", "venue", "year", "arxiv", "doi"):
        if key in raw and "paper" not in raw:
            errors.append(
                LossSyntaxError(
                    f"the docstring field '{key}' belongs to a paper, but no `paper:` is given",
                    raw[key][1],
                    "add `paper: TITLE`, or drop the field",
                )
            )
            break
    return Meta(**out)  # type: ignore[arg-type]
