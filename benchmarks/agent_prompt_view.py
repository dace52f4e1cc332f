"""Does the agent still need its prompt rewrite (`model_view`) now that it is LangChain's `create_agent`?

The agent answers a tool-routed question from a prompt where this turn's tool results are written as
context in front of the question (`model_view`, in `PromptMiddleware`). The alternative is the raw
`create_agent` messages: the question, the model's tool-call AIMessage and the ToolMessage, rendered by the
chat template. Both run here side by side on the same model, spec and calculator questions (the tool route
forced, `tool_hints: true`): per variant, answers that contain the tool's result, and answers that are a
JSON tool call imitated instead of an answer.

    PYTHONPATH=. python benchmarks/agent_prompt_view.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from langchain_core.messages import BaseMessage, SystemMessage

from metaspider.graph import agent_middleware
from metaspider.graph.builder import AgentSession
from metaspider.graph.spec import AgentSpec, load_spec

QUESTIONS = [
    ("What is 1234 * 5678?", "7006652"),
    ("What is 17 * 23?", "391"),
    ("What is 999 + 1?", "1000"),
    ("What is 81 / 9?", "9"),
    ("What is 12 * 12?", "144"),
    ("What is 250 - 75?", "175"),
    ("What is 3456 + 6543?", "9999"),
    ("What is 45 * 11?", "495"),
]
RESULTS = Path(__file__).parent / "results"


def raw_view(spec: AgentSpec, messages: list[BaseMessage]) -> list[BaseMessage]:
    """The messages as `create_agent` holds them, after the system prompt (nothing rewritten)."""
    return [SystemMessage(spec.system_prompt), *messages]


def run(model: str) -> dict:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from agent_specs import write_spec

    variants = {"model_view (kept)": agent_middleware.prompt_view, "raw create_agent messages": raw_view}
    out: dict = {"model": model, "questions": len(QUESTIONS), "variants": {}}
    for name, view in variants.items():
        agent_middleware.prompt_view = view
        spec = load_spec(
            write_spec(
                Path(tempfile.mkdtemp()),
                model=model,
                policy={"answer_below": 0.0, "tool_below": 1.0},
                tools=[{"name": "calculator"}],
                tool_hints=True,
                max_tokens=48,
            )
        )
        session = AgentSession(spec)
        rows = []
        for i, (question, expected) in enumerate(QUESTIONS):
            session.thread_id = f"view-{i}"
            answer = session.run(question).answer or ""
            rows.append(
                {
                    "question": question,
                    "answer": answer,
                    "has_result": expected in answer.replace(",", ""),
                    "imitates_tool_call": answer.lstrip().startswith("{") and '"name"' in answer,
                }
            )
        session.close()
        out["variants"][name] = {
            "has_result": sum(r["has_result"] for r in rows),
            "imitates_tool_call": sum(r["imitates_tool_call"] for r in rows),
            "rows": rows,
        }
    return out


def markdown(result: dict) -> str:
    lines = [
        "# The agent's prompt rewrite (`model_view`) against raw `create_agent` messages",
        "",
        f"Model `{result['model']}`, {result['questions']} calculator questions on the tool route "
        "(`tool_hints: true`, max_tokens 48, greedy). Produced by:",
        "",
        "    PYTHONPATH=. python benchmarks/agent_prompt_view.py",
        "",
        "| prompt | answers with the tool's result | of them, a plain answer | answers that are an imitated JSON tool call |",
        "|---|---|---|---|",
    ]
    n = result["questions"]
    for name, v in result["variants"].items():
        plain = sum(r["has_result"] and not r["imitates_tool_call"] for r in v["rows"])
        lines.append(f"| {name} | {v['has_result']} / {n} | {plain} / {n} | {v['imitates_tool_call']} / {n} |")
    lines += ["", "Answers:", ""]
    for name, v in result["variants"].items():
        lines += [f"- {name}:"] + [f"  - {r['question']} → `{r['answer']}`" for r in v["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = parser.parse_args()
    if args.markdown_only:
        result = json.loads((RESULTS / "agent_prompt_view.json").read_text())
    else:
        result = run(args.model)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent_prompt_view.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    (RESULTS / "agent_prompt_view.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
