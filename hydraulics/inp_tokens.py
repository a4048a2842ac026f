"""EPANET's lexical rules for .inp text, and the writer of the canonical text WNTR reads.

The one tokeniser of .inp text: tokenising, section headers, keyword matching, number and clock-time
parsing follow EPANET's input2.c/input3.c exactly, because every reader of the text (the normaliser, the
controls and rules parser, the error locator of ``inp_reader``, the upload counter of the API) must see
each line the way EPANET does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

MAXTOKS = 40                      # EPANET reads at most 40 tokens of a line (types.h MAXTOKS)
MAXLINE = 1024                    # fgets(line, MAXLINE, f): at most MAXLINE - 1 bytes a read (types.h)
# EPANET's section keywords (input2.c SectTxt), in its order.
SECTIONS = ('[TITLE]', '[JUNCTIONS]', '[RESERVOIRS]', '[TANKS]', '[PIPES]', '[PUMPS]', '[VALVES]',
            '[CONTROLS]', '[RULES]', '[DEMANDS]', '[SOURCES]', '[EMITTERS]', '[PATTERNS]',
            '[CURVES]', '[QUALITY]', '[STATUS]', '[ROUGHNESS]', '[ENERGY]', '[REACTIONS]',
            '[MIXING]', '[REPORT]', '[TIMES]', '[OPTIONS]', '[COORDINATES]', '[VERTICES]',
            '[LABELS]', '[BACKDROP]', '[TAGS]', '[LEAKAGE]', '[END]')
# WNTR reads sections in its own fixed order, so the rewritten file may order them freely.
OUT_ORDER = ('[TITLE]', '[OPTIONS]', '[TIMES]', '[PATTERNS]', '[CURVES]', '[JUNCTIONS]',
             '[RESERVOIRS]', '[TANKS]', '[PIPES]', '[PUMPS]', '[VALVES]', '[DEMANDS]', '[EMITTERS]',
             '[STATUS]', '[CONTROLS]', '[RULES]', '[ENERGY]', '[QUALITY]', '[SOURCES]',
             '[REACTIONS]', '[MIXING]', '[COORDINATES]', '[VERTICES]')
VALVE_TYPES = ('PRV', 'PSV', 'PBV', 'FCV', 'TCV', 'GPV', 'PCV')
PRESSURE_VALVES = ('PRV', 'PSV', 'PBV')


class NormaliseError(Exception):
    """A construct that EPANET accepts but WNTR cannot represent faithfully."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line, self.message = line, message


@dataclass
class Line:
    no: int
    toks: list[str]
    comment: str
    raw: str


# EPANET's text primitives (input2.c), shared by the normaliser and the controls parser.
def _upper(s: str) -> str:
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in s)


def match(s: str, keyword: str) -> bool:
    """input2.c match(): the token (leading blanks skipped) starts with the keyword, ignoring case."""
    return bool(keyword) and _upper(s.lstrip(" ")).startswith(_upper(keyword))


def findmatch(s: str, keywords) -> int:
    for i, kw in enumerate(keywords):
        if match(s, kw):
            return i
    return -1


_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)", re.I)
_HEXFLOAT = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?\d+)?", re.I)


def getfloat(s: str):
    """input2.c getfloat(): C strtod, then `if (*endptr > 0) return 0` -> the number, or None.

    strtod reads the longest prefix that is a number; the test on the character after it is made with C's
    signed char, so a byte >= 0x80 there (a degree sign, a no-break space) reads as the end of the number."""
    t = s.lstrip(" \t\n\r\f\v")
    if t == "":
        return 0.0 if s == "" else None
    m = _HEXFLOAT.match(t) or _FLOAT.match(t)
    if m is None:
        return None
    rest = t[m.end():]
    if rest and ord(rest[0]) < 0x80:
        return None
    text = m.group(0)
    return float.fromhex(text) if m.re is _HEXFLOAT else float(text.split("(")[0])


def hour(time: str, units: str) -> float:
    """input2.c hour(): a time token (decimal or h:m:s) plus optional units -> hours, or -1.0."""
    y = [0.0, 0.0, 0.0]
    parts = [p for p in time.split(":") if p != ""][:3]
    for n, p in enumerate(parts):
        v = getfloat(p)
        if v is None:
            return -1.0
        y[n] = v
    n = len(parts)
    if n == 1:
        if len(units) == 0:
            return y[0]
        if match(units, "SEC"):
            return y[0] / 3600.0
        if match(units, "MIN"):
            return y[0] / 60.0
        if match(units, "HOU"):
            return y[0]
        if match(units, "DAY"):
            return y[0] * 24.0
    if n > 1:
        y[0] = y[0] + y[1] / 60.0 + y[2] / 3600.0
    if units == "":
        return y[0]
    if match(units, "AM"):
        return -1.0 if y[0] >= 13.0 else (y[0] - 12.0 if y[0] >= 12.0 else y[0])
    if match(units, "PM"):
        return -1.0 if y[0] >= 13.0 else (y[0] if y[0] >= 12.0 else y[0] + 12.0)
    return -1.0

def num(tok: str) -> float:
    """C strtod() on a whole token, as EPANET's getfloat(); ValueError if it is not a number."""
    value = getfloat(tok)
    if value is None:
        raise ValueError(f"not a number: {tok!r}")
    return value


hours = hour   # the normaliser's name for EPANET's hour()


# C's strcspn() for the two character sets gettokens() uses; a regex search instead of a loop over
# characters, because the API counts a 32 MiB upload with this tokeniser before anything else runs.
_STOPS = {' \t\n\r': re.compile('[ \t\n\r]'), '"\n\r': re.compile('["\n\r]')}
_TOKEN = re.compile('[^ \t\n\r]+')


def _strcspn(s: str, start: int, chars: str) -> int:
    m = _STOPS[chars].search(s, start)
    return (m.start() if m else max(len(s), start)) - start


def tokenise(line: str) -> tuple[list[str], str]:
    """EPANET's gettokens() step by step, including its bookkeeping after a quoted token (the
    count of characters left is then one short, so the final token keeps what follows it)."""
    body, _, comment = line.partition(';')
    if '"' not in body:
        # Without quotes gettokens() gives the runs between separators, the first MAXTOKS of them.
        return _TOKEN.findall(body)[:MAXTOKS], comment.rstrip('\r\n')
    toks, pos, left = [], 0, len(body)
    while left > 0 and len(toks) < MAXTOKS:
        m = _strcspn(body, pos, ' \t\n\r')
        if m == left:
            toks.append(body[pos:])
            break
        left -= m + 1
        if m == 0:
            pos += 1
            continue
        if body[pos] == '"':
            pos += 1
            m = _strcspn(body, pos, '"\n\r')
        toks.append(body[pos:pos + m])
        pos += m + 1
    return toks, comment.rstrip('\r\n')


def numtok(tok: str) -> str:
    """A numeric field as WNTR's float() reads it with EPANET's value (hex floats, a trailing byte >= 0x80)."""
    return fmt(num(tok))


def isnum(tok: str) -> bool:
    try:
        num(tok)
        return True
    except ValueError:
        return False


def hms(seconds: int) -> str:
    return '%d:%02d:%02d' % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


def fmt(x: float) -> str:
    return repr(float(x))


def _fgets(raw: bytes) -> list[bytes]:
    """One file line (without its newline) as the lines EPANET's readdata() sees.

    EPANET reads with fgets(line, MAXLINE): a longer line arrives in pieces of MAXLINE - 1 bytes
    (the newline counts), each read as a line of its own; and C string functions end every piece at
    its first NUL byte, so whatever follows a NUL up to the newline is never seen."""
    seg = raw + b'\n'
    return [seg[i:i + MAXLINE - 1].rstrip(b'\n').split(b'\x00', 1)[0] for i in range(0, len(seg), MAXLINE - 1)]


def epanet_lines(data: bytes) -> tuple[list[bytes], list[int]]:
    """The lines EPANET's readdata() sees in a file's bytes (see _fgets), and the file line number of each."""
    rows = data.split(b'\n')
    if data.endswith(b'\n'):          # split() leaves an empty piece after the last newline
        rows.pop()
    pieces, numbers = [], []
    for no, raw in enumerate(rows, start=1):
        for piece in _fgets(raw):
            pieces.append(piece)
            numbers.append(no)
    return pieces, numbers


def epanet_rows(lines: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """(file line number, text) of the lines EPANET's readdata() sees, from a binary file's lines (each
    with or without its newline), one line in memory at a time. The text is Latin-1, byte for byte: the
    separators and section headers EPANET looks for are ASCII, so tokens split where EPANET splits them
    whatever the file's encoding (names may need decode_inp's choice of encoding to read right)."""
    for no, raw in enumerate(lines, start=1):
        for piece in _fgets(raw[:-1] if raw.endswith(b'\n') else raw):
            yield no, piece.decode('latin-1')


def decode_inp(data: bytes) -> tuple[str, str]:
    """Text and encoding of .inp bytes: UTF-8, else Latin-1 (EPANET reads bytes; old Windows files
    carry Latin-1/CP1252 names and comments)."""
    try:
        return data.decode('utf-8'), 'utf-8'
    except UnicodeDecodeError:
        return data.decode('latin-1'), 'latin-1'


BLANK_STAND_IN = '\u2423'          # '␣': WNTR splits its lines at blanks, EPANET allows quoted IDs with them


def section_of(token: str) -> str | None:
    """The section a header token ('[JUNCTIONS]', '[junc...') opens, as readdata()'s findmatch() reads
    it; None for a header EPANET does not know."""
    k = findmatch(token, SECTIONS)
    return SECTIONS[k] if k >= 0 else None


def section_lines(rows: Iterable[tuple[int, str]], strict: bool = False, headers: bool = False
                  ) -> Iterator[tuple[str | None, Line]]:
    """(section, line) for every data line of (line number, text) rows, the way EPANET's readdata()
    assigns them: blank and comment-only lines skipped, a token starting with '[' opens a section, reading
    stops at [END]. Lines before the first header, or under one EPANET does not know, come with section
    None; ``strict`` raises NormaliseError at an unknown header instead. ``headers`` yields the header
    lines too, each with the section it opens (EPANET echoes an unknown one in its error report)."""
    sect = None
    for no, raw in rows:
        toks, comment = tokenise(raw + '\n')        # fgets() keeps the newline
        if not toks:
            continue
        if toks[0].startswith('['):
            sect = section_of(toks[0])
            if sect is None and strict:
                raise NormaliseError(no, 'unknown section %s' % toks[0])
            if sect == '[END]':
                return
            if headers:
                yield sect, Line(no, toks, comment, raw.rstrip('\r'))
            continue
        yield sect, Line(no, toks, comment, raw.rstrip('\r'))


def numbered_rows(text: str, line_numbers: Iterable[int] | None = None) -> Iterator[tuple[int, str]]:
    """(file line number, text) for each line of ``text`` (only \\n ends a line, as for fgets()); the
    numbers default to 1, 2, ... (see ``epanet_lines`` for text whose lines are not the file's)."""
    rows = text.split('\n')
    return zip(line_numbers if line_numbers is not None else range(1, len(rows) + 1), rows)


def split_sections(text: str, line_numbers: list[int] | None = None,
                   aliases: dict[str, str] | None = None) -> list[tuple[str, Line]]:
    """Assign every data line to its section the way EPANET's readdata() does.

    ``line_numbers`` gives the file line of each line of ``text`` (see ``epanet_lines``).  A token with
    blanks inside (a quoted ID) becomes one without, the same everywhere it appears; ``aliases``, if
    given, receives original -> stand-in."""
    lines = [(sect, ln) for sect, ln in section_lines(numbered_rows(text, line_numbers), strict=True)
             if sect is not None]
    names = {} if aliases is None else aliases
    # A stand-in must differ from every token of the lines kept (the only ones WNTR's copy holds).
    taken = {tok for _, ln in lines for tok in ln.toks}
    return [(sect, Line(ln.no, [_stand_in(tok, names, taken) for tok in ln.toks], ln.comment, ln.raw))
            for sect, ln in lines]


def _stand_in(tok: str, names: dict[str, str], taken: set[str]) -> str:
    # a number stays as it is: the normaliser rewrites numbers where it reads them (numtok)
    if not any(ch.isspace() for ch in tok) or getfloat(tok) is not None:
        return tok
    if tok not in names:
        alias = base = ''.join(BLANK_STAND_IN if ch.isspace() else ch for ch in tok)
        n = 1
        while alias in taken:
            n += 1
            alias = '%s~%d' % (base, n)
        taken.add(alias)
        names[tok] = alias
    return names[tok]


def _atoi(tok: str) -> int:
    digits = ''
    for ch in tok.strip():
        if ch.isdigit() or (not digits and ch in '+-'):
            digits += ch
        else:
            break
    return int(digits) if digits.strip('+-') else 0


def _range(ids, a: str, b: str):
    """EPANET's ID ranges in [STATUS]/[QUALITY]/[REACTIONS]: numeric if both ends are, else text."""
    i1, i2 = _atoi(a), _atoi(b)
    if i1 > 0 and i2 > 0:
        return [x for x in ids if i1 <= _atoi(x) <= i2]
    return [x for x in ids if a <= x <= b]


class _Out:
    def __init__(self):
        self.sections = {s: [] for s in OUT_ORDER}

    def add(self, sect: str, no: int, *toks):
        self.sections[sect].append((no, ' '.join(str(x) for x in toks)))

    def render(self) -> tuple[str, list[int]]:
        text, nos = [], []
        for sect in OUT_ORDER:
            text.append(sect)
            nos.append(0)
            for no, line in self.sections[sect]:
                text.append(line)
                nos.append(no)
            text.append('')
            nos.append(0)
        text.append('[END]')
        nos.append(0)
        return '\n'.join(text) + '\n', nos
