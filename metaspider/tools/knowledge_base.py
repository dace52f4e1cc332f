"""The `knowledge_base` tool: BM25 search over a folder of Markdown and text files.

It gives the agent facts the base model cannot know. Files are cut into passages (one paragraph each,
prefixed with the heading it sits under so "## CEO" helps rank "Ada Quill leads the company."); the
`bm25s` library ranks them. The index is built once, when the tool is made.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import bm25s
from langchain_core.tools import StructuredTool

from metaspider.errors import MetaspiderError
from metaspider.tools.errors import error_safe_tool

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
# Passages scoring under this fraction of the best one only share common words (often just the
# company name) with the query: they distract a small model more than they help it.
RELATIVE_CUTOFF = 0.5


@dataclass(frozen=True)
class Passage:
    """One passage of the knowledge base: its text and the file it came from."""

    source: str  # file name relative to the knowledge-base folder
    text: str


def read_passages(folder: Path) -> list[Passage]:
    """All passages of the text files under `folder`, in file-name order."""
    if not folder.is_dir():
        raise MetaspiderError(f"knowledge base folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    passages = [
        Passage(source=file.relative_to(folder).as_posix(), text=text)
        for file in files
        for text in split_passages(file.read_text(encoding="utf-8"))
    ]
    if not passages:
        raise MetaspiderError(f"knowledge base folder {folder} has no text in .md or .txt files")
    return passages


def split_passages(document: str) -> list[str]:
    """One passage per paragraph, each carrying the nearest heading above it."""
    passages: list[str] = []
    heading = ""
    paragraph: list[str] = []

    def close_paragraph() -> None:
        if paragraph:
            body = " ".join(paragraph)
            passages.append(f"{heading}: {body}" if heading else body)
            paragraph.clear()

    for line in document.splitlines():
        stripped = line.strip()
        if match := _HEADING.match(stripped):
            close_paragraph()
            heading = match.group(1).strip()
        elif stripped:
            paragraph.append(stripped)
        else:
            close_paragraph()
    close_paragraph()
    return passages


class KnowledgeBase:
    """A BM25 index over passages."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self._retriever = bm25s.BM25()
        self._retriever.index(_tokenize([p.text for p in passages]), show_progress=False)

    def search(self, query: str, top_k: int) -> list[tuple[Passage, float]]:
        """The best `top_k` passages, best first, without those far below the best one."""
        k = min(top_k, len(self.passages))
        indices, scores = self._retriever.retrieve(_tokenize([query]), k=k, show_progress=False)
        best = float(scores[0][0])
        return [
            (self.passages[int(index)], float(score))
            for index, score in zip(indices[0], scores[0], strict=False)
            if score > 0 and score >= RELATIVE_CUTOFF * best
        ]


def _tokenize(texts: list[str]) -> list[list[str]]:
    """Lists of strings, so the query and the corpus share one vocabulary inside the retriever."""
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def make_knowledge_base_tool(folder: Path, top_k: int = 3) -> StructuredTool:
    """The `knowledge_base` tool over the .md/.txt files in `folder` (indexed now, not per query)."""
    knowledge_base = KnowledgeBase(read_passages(folder))

    def knowledge_base_search(query: str) -> str:
        """Search the local knowledge base (company facts, documents) for passages about the query.

        Returns the best passages, each with the file it comes from.
        """
        hits = knowledge_base.search(query, top_k)
        if not hits:
            return f"no passage matches {query!r}"
        return "\n\n".join(f"[{passage.source}] {passage.text}" for passage, _ in hits)

    return error_safe_tool(knowledge_base_search, name="knowledge_base")
