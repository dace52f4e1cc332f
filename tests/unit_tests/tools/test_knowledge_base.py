from pathlib import Path

import pytest

from metaspider.errors import MetaspiderError
from metaspider.tools.knowledge_base import make_knowledge_base_tool, split_passages

AGENTS_KB = Path(__file__).parents[3] / "agents" / "kb"


@pytest.fixture
def kb_folder(tmp_path: Path) -> Path:
    (tmp_path / "birds.md").write_text(
        "# Birds\n\n## Owls\n\nThe snowy owl hunts lemmings in the tundra.\n\n"
        "## Parrots\n\nThe kea is a parrot that lives in the Southern Alps.\n",
        encoding="utf-8",
    )
    (tmp_path / "notes.txt").write_text(
        "Lighthouses guide ships at night.\n\nThe Tower of Hercules is a Roman lighthouse.\n",
        encoding="utf-8",
    )
    (tmp_path / "image.png").write_bytes(b"\x89PNG kea owl")
    return tmp_path


def test_splits_paragraphs_under_their_heading():
    document = "# Title\n\nFirst line\ncontinued.\n\n## Section\n\nSecond paragraph.\n\n## Empty\n"
    assert split_passages(document) == ["Title: First line continued.", "Section: Second paragraph."]


def test_finds_the_passage_and_names_its_file(kb_folder: Path):
    tool = make_knowledge_base_tool(kb_folder)
    result = tool.invoke({"query": "Where does the kea live?"})
    assert result.startswith("[birds.md] Parrots: The kea is a parrot")
    assert "owl" not in result


def test_searches_text_files_and_limits_results(kb_folder: Path):
    tool = make_knowledge_base_tool(kb_folder, top_k=1)
    result = tool.invoke({"query": "Roman lighthouse"})
    assert result == "[notes.txt] The Tower of Hercules is a Roman lighthouse."


def test_reports_no_match(kb_folder: Path):
    tool = make_knowledge_base_tool(kb_folder)
    assert tool.invoke({"query": "quantum chromodynamics"}).startswith("no passage matches")
    assert tool.invoke({"query": "the of and"}).startswith("no passage matches")


def test_missing_or_empty_folder_is_a_user_error(tmp_path: Path):
    with pytest.raises(MetaspiderError, match="not found"):
        make_knowledge_base_tool(tmp_path / "missing")
    with pytest.raises(MetaspiderError, match="no text"):
        make_knowledge_base_tool(tmp_path)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Who is the CEO of Orrery Labs?", "Ingrid Halvorsen"),
        ("When was Orrery Labs founded?", "2011"),
        ("Where is Orrery Labs headquartered?", "Tromsø"),
        ("How much does the Lumen Dial cost?", "480 euros"),
    ],
)
def test_shipped_knowledge_base_answers_its_questions_first(question: str, answer: str):
    tool = make_knowledge_base_tool(AGENTS_KB)
    first_passage = tool.invoke({"query": question}).split("\n\n")[0]
    assert answer in first_passage
