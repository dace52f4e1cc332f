"""Keeping the agent's prompt inside the model's context window.

The context (`n_ctx:` in the spec) holds the system prompt, the history, this turn's question with its
tool results, and the answer still to be written. Three rules keep it there:
- a tool result is cut to `tool_result_tokens` tokens, with a visible marker saying how much was cut,
  so the model (and the user reading the history) knows the text is incomplete;
- the history is trimmed from the oldest turn on with langchain-core's `trim_messages`, keeping the
  system prompt and starting on a question, to what leaves `answer_reserve` tokens for the answer;
- the chat model clamps `max_tokens` to the room left and refuses a single prompt too long for the
  context with one error giving both numbers (`ContextOverflowError`)."""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.messages import BaseMessage, trim_messages

from metaspider.errors import ContextOverflowError

__all__ = ["ContextOverflowError", "cap_tool_result", "history_budget", "trim_history"]

MESSAGE_OVERHEAD = 8
"""Tokens a chat template spends around one message (role markers, newlines), counted generously."""

CountTokens = Callable[[str], int]


def cap_tool_result(
    text: str, limit: int, tokenize: Callable[[str], list[int]], detokenize: Callable[[list[int]], str]
) -> str:
    """`text` cut to `limit` tokens, with a marker giving how many tokens were dropped."""
    ids = tokenize(text)
    if len(ids) <= limit:
        return text
    kept = detokenize(ids[:limit])
    return f"{kept}\n[tool result truncated: {len(ids) - limit} of {len(ids)} tokens cut]"


def trim_history(messages: list[BaseMessage], budget: int, count: CountTokens) -> list[BaseMessage]:
    """The most recent messages that fit `budget` tokens, the system prompt kept, starting on a question.
    The current question is always kept (if it alone is too long, the chat model says so)."""

    def counter(batch: list[BaseMessage]) -> int:
        return sum(count(m.text) + MESSAGE_OVERHEAD for m in batch)

    trimmed = trim_messages(
        messages,
        max_tokens=budget,
        token_counter=counter,
        strategy="last",
        include_system=True,
        start_on="human",
        allow_partial=False,
    )
    if not trimmed or trimmed[-1] is not messages[-1]:
        system = [m for m in messages[:1] if m.type == "system"]
        return [*system, messages[-1]]
    return trimmed


def history_budget(n_ctx: int, answer_reserve: int) -> int:
    """Tokens the prompt may use so that `answer_reserve` tokens are left for the answer."""
    return max(n_ctx - answer_reserve, n_ctx // 4)
