"""The real 106-article English Wikipedia sample shipped inside gensim's wheel, as plain text.

The dump is read from the installed gensim package (never copied into this repository). Pages of namespace 0
that are not redirects are turned from wiki markup into readable text: ``gensim``'s ``filter_wiki`` removes
templates, links, references and tables; headings become plain lines and paragraphs are kept.
"""

from __future__ import annotations

import bz2
import functools
import re
from pathlib import Path
from typing import Any

SAMPLE_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SAMPLE_FORMAT = 1  # bump when the text cleaning below changes: it is part of the cache key


def sample_path() -> Path:
    """Path of the 106-article English Wikipedia dump inside the installed gensim package."""
    import gensim

    path = Path(gensim.__file__).parent / SAMPLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Wikipedia sample not found at {path}; reinstall gensim (pip install gensim>=4.3)")
    return path


def sample_identity() -> dict[str, Any]:
    st = sample_path().stat()
    return {"source": "sample", "file": SAMPLE_FILE, "bytes": st.st_size, "format": SAMPLE_FORMAT}


_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$", re.MULTILINE)
_QUOTES = re.compile(r"'{2,}")
_EMPTY_PARENS = re.compile(r"\(\s*[,;]?\s*\)")
_SPACES = re.compile(r"[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


def wiki_to_text(title: str, markup: str) -> str:
    """Turn wiki markup into readable plain text: title, paragraphs, headings as plain lines."""
    from gensim.corpora.wikicorpus import filter_wiki

    text = filter_wiki(markup)
    text = _HEADING.sub(lambda m: "\n" + m.group(2), text)
    text = _QUOTES.sub("", text)
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    return f"{title}\n\n{text}\n" if text else ""


@functools.lru_cache(maxsize=1)
def load_sample_articles() -> tuple[dict[str, str], ...]:
    """Parse the gensim sample dump into ``({"title", "text"}, ...)``: namespace 0, no redirects, no empty pages.

    Parsing takes a few seconds; the result is kept for the life of the process.
    """
    from gensim.corpora.wikicorpus import extract_pages

    articles = []
    with bz2.open(sample_path()) as f:
        for title, markup, _ in extract_pages(f, filter_namespaces=("0",)):
            if markup.lstrip()[:9].lower() == "#redirect":
                continue
            text = wiki_to_text(title, markup)
            if text:
                articles.append({"title": title, "text": text})
    return tuple(articles)


NEWS_FILE = "test/test_data/lee_background.cor"


def news_texts() -> list[str]:
    """Held-out English text: the 300 Australian news articles of gensim's Lee background corpus (one per line,
    read from the installed gensim package), a different source and genre than the Wikipedia sample."""
    import gensim

    path = Path(gensim.__file__).parent / NEWS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"news corpus not found at {path}; reinstall gensim (pip install gensim>=4.3)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
