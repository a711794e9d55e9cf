"""Turn fetched bytes into HTML text: charset detection, size cap, binary rejection and pre-cleaning."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from worker.errors import NormalizeError

MAX_BYTES = 10 * 1024 * 1024
MAX_CHARS = MAX_BYTES
# Markup left once scripts, styles and SVG are gone; real article pages stay far below this.
MAX_MARKUP = 3 * 1024 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Browsers (WHATWG Encoding) read these labels as a superset encoding; Python would decode them strictly.
_ALIASES = {
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "windows-1252": "cp1252",
    "x-cp1252": "cp1252",
    "iso-8859-9": "cp1254",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}

_SINGLE_BYTE_PREFIXES = ("cp125", "iso8859", "koi8", "mac-", "cp874", "cp437", "cp850", "cp866", "ascii")

_MAGIC: tuple[bytes, ...] = (
    b"%PDF-",
    b"\x89PNG",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"RIFF",
    b"OggS",
    b"\x00\x00\x01\x00",
    b"wOFF",
    b"wOF2",
    b"BZh",
    b"\xfd7zXZ",
    b"7z\xbc\xaf",
    b"Rar!",
)

_NON_HTML_MIME = re.compile(
    r"^(?:image|audio|video|font)/|^application/(?:pdf|zip|gzip|x-gzip|json|javascript|x-tar|vnd\.|msword|ogg|wasm)",
    re.I,
)

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([-\w.:]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([-\w.:]+)", re.I)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([-\w.:]+)", re.I)
_TAG = re.compile(r"<[A-Za-z!/?]")

# C0 controls other than tab/newline/carriage return; libxml2 rejects or truncates on several of them.
_CONTROL_CHARS = dict.fromkeys([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F], None)
_CONTROL_CHARS[0x0C] = " "
_CONTROL_CHARS[0xFFFD] = None  # replacement characters carry nothing a reader could use
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")

_CONTROL_SEARCH = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")

_RAW_OPEN = re.compile(r"<(script|style|svg|noscript|template|math)\b([^>]*)>|<!--", re.I)
_RAW_NAMES = ("script", "style", "svg", "noscript", "template", "math")
# As in the HTML tokenizer: "</script" followed by whitespace, "/" or ">" closes, whatever comes before ">".
_RAW_CLOSE = {name: re.compile(rf"</{name}(?:[\s/][^>]*)?>", re.I) for name in _RAW_NAMES}
_COMMENT_CLOSE = re.compile(r"--!?>")


@dataclass(frozen=True)
class Prepared:
    """HTML text ready for parsing, and the JSON-LD blocks lifted out of its scripts."""

    html: str
    json_ld: tuple[str, ...]
    noscript: str = ""


def check_content_type(content_type: str | None) -> None:
    """Refuse a response whose Content-Type is clearly not a web page (images, PDFs, JSON...)."""
    if content_type and _NON_HTML_MIME.search(content_type.strip()):
        raise NormalizeError(f"not an HTML document (content type {content_type.split(';')[0].strip()!r})")


def _canonical_encoding(label: str, *, from_meta: bool = False) -> str | None:
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    if from_meta and name.startswith(("utf-16", "utf16", "utf-32", "utf32")):
        # A meta tag is only readable if the bytes are ASCII-compatible, so it cannot really be UTF-16.
        name = "utf-8"
    try:
        resolved = codecs.lookup(name).name
    except LookupError:
        return None
    return _ALIASES.get(resolved, resolved)


def _is_single_byte(encoding: str) -> bool:
    return encoding.startswith(_SINGLE_BYTE_PREFIXES) or encoding == "latin-1"


def _decode(data: bytes, encoding: str, errors: str = "strict") -> str:
    # final=False tolerates a multi-byte character cut in half by the size cap.
    decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
    return decoder.decode(data, final=False)


def _has_non_ascii(data: bytes) -> bool:
    return not data.isascii()


def _try_utf8(data: bytes) -> str | None:
    """Decode as UTF-8 if it is UTF-8, or overwhelmingly so (a few stray bytes in a UTF-8 page)."""
    try:
        return _decode(data, "utf-8")
    except UnicodeDecodeError:
        pass
    text = _decode(data, "utf-8", "replace")
    bad = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", "ignore")) - bad
    if non_ascii >= 8 * bad:
        return text
    return None


def _declared_encodings(data: bytes, content_type: str | None) -> list[str]:
    found: list[str] = []
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match:
            enc = _canonical_encoding(match.group(1))
            if enc:
                found.append(enc)
    head = data[:16384]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        found_label = pattern.search(head)
        if found_label:
            enc = _canonical_encoding(found_label.group(1).decode("ascii", "replace"), from_meta=True)
            if enc and enc not in found:
                found.append(enc)
    return found


def decode_bytes(data: bytes, content_type: str | None = None) -> str:
    """Decode page bytes: BOM, then the header charset, then ``<meta charset>``, then UTF-8, then cp1252.

    A declared charset is only trusted when the bytes agree with it: a page declared UTF-8 that does not
    decode as UTF-8 falls through to the next guess, and a page declared as a single-byte charset whose
    non-ASCII bytes form valid UTF-8 is read as UTF-8 (the most common lie on the web).
    """
    data = data[:MAX_BYTES]
    # The BOM goes first, as in browsers: it is written by the tool that produced the bytes.
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom) :], encoding, "replace")
    for encoding in _declared_encodings(data, content_type):
        if encoding == "utf-8":
            text = _try_utf8(data)
            if text is not None:
                return text
            continue
        if _is_single_byte(encoding):
            if _has_non_ascii(data):
                try:
                    return _decode(data, "utf-8")
                except UnicodeDecodeError:
                    pass
            return _decode(data, encoding, "replace")
        if encoding.startswith(("utf-16", "utf-32")) and b"\x00" not in data[:1024]:
            continue
        try:
            return _decode(data, encoding)
        except UnicodeDecodeError:
            continue
    text = _try_utf8(data)
    if text is not None:
        return text
    return _decode(data, "cp1252", "replace")


def _looks_binary(data: bytes | str) -> bool:
    if isinstance(data, bytes):
        if data.startswith(_MAGIC):
            return True
        sample = data[:8192].decode("latin-1")
    else:
        sample = data[:8192]
    if not sample:
        return False
    return len(_CONTROL_RE.findall(sample)) > 0.05 * len(sample)


def to_text(document: bytes | str, content_type: str | None = None) -> str:
    """Return the document as text, capped in size; raise NormalizeError for empty or binary input."""
    if isinstance(document, bytes | bytearray | memoryview):
        data = bytes(document[:MAX_BYTES])
        if not data.strip():
            raise NormalizeError("empty document")
        if _looks_binary(data) and not data.startswith(tuple(bom for bom, _ in _BOMS)):
            raise NormalizeError("not an HTML document (binary content)")
        text = decode_bytes(data, content_type)
    elif isinstance(document, str):
        text = document[:MAX_CHARS]
        # Lone surrogates would make the parser fail when it encodes the text.
        text = text.encode("utf-8", "replace").decode("utf-8")
    else:
        raise NormalizeError(f"unsupported document type {type(document).__name__}")
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise NormalizeError("empty document")
    if _looks_binary(text):
        raise NormalizeError("not an HTML document (binary content)")
    if not _TAG.search(text[:1_000_000]):
        raise NormalizeError("not an HTML document (no markup)")
    return text


def prepare(text: str) -> Prepared:
    """Drop scripts, styles, SVG and comments before parsing (they dominate modern pages), keeping JSON-LD.

    Done with a linear scan rather than one regex so that unclosed ``<script`` openers cannot make it
    quadratic; an unclosed raw-text element swallows the rest of the page, as it does in a browser.
    """
    out: list[str] = []
    json_ld: list[str] = []
    noscript: list[str] = []
    pos = 0
    while True:
        match = _RAW_OPEN.search(text, pos)
        if match is None:
            out.append(text[pos:])
            break
        out.append(text[pos : match.start()])
        name = match.group(1)
        if name is None:
            close = _COMMENT_CLOSE.search(text, match.end())
        else:
            close = _RAW_CLOSE[name.lower()].search(text, match.end())
        if close is None:
            break
        lowered = name.lower() if name is not None else ""
        if lowered == "script" and "ld+json" in (match.group(2) or "").lower():
            json_ld.append(text[match.end() : close.start()])
        elif lowered == "noscript" and sum(map(len, noscript)) < MAX_MARKUP:
            noscript.append(text[match.end() : close.start()])
        out.append(" ")
        pos = close.end()
    html = _strip_controls("".join(out)[:MAX_MARKUP])
    return Prepared(html=html, json_ld=tuple(json_ld), noscript=_strip_controls("".join(noscript)))


def _strip_controls(text: str) -> str:
    # str.translate walks every character in Python; most pages hold no control character at all.
    return text.translate(_CONTROL_CHARS) if _CONTROL_SEARCH.search(text) else text
