"""A tool-calling loop with MetaSpiderChatModel and metaspider's calculator tool.

    python examples/tool_loop.py "What is 1234 * 5678?"

The model is asked to call the calculator (tool_choice="calculator": the call is grammar-constrained,
so even a tiny model produces a call that parses); the tool runs; its result goes back into the
conversation and the model answers with tools switched off. (The 135M default tends to echo its call
instead of answering; pass a bigger model, e.g. qwen2.5-coder-0.5b, as the second argument.)"""

from __future__ import annotations

import sys

from langchain_core.messages import BaseMessage, HumanMessage

from metaspider import MetaSpiderChatModel
from metaspider.tools.calculator import calculator

TOOLS = {"calculator": calculator}


def main(question: str, model: str = "smollm2-135m", max_steps: int = 3) -> list[BaseMessage]:
    llm = MetaSpiderChatModel(model=model, max_tokens=64)
    messages: list[BaseMessage] = [HumanMessage(question)]
    choice = "calculator"
    for _ in range(max_steps):
        reply = llm.bind_tools(list(TOOLS.values()), tool_choice=choice).invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            messages.append(TOOLS[call["name"]].invoke(call))
        choice = "none"
    return messages


if __name__ == "__main__":
    question = sys.argv[1] if len(sys.argv) > 1 else "What is 1234 * 5678?"
    for message in main(question, *sys.argv[2:3]):
        print(f"{message.type}: {message.content or message.tool_calls}")
