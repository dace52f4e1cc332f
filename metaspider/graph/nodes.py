"""The agent's nodes: assess (pass 1) → answer | tool | refuse | draft → escalate.

Every node reads the current knobs (gain, modifier) from the run's `configurable`, so the REPL can
turn them between turns without rebuilding the graph.

The prompt the model sees is not the raw message list: a 135M model shown its own earlier JSON tool
call imitates it instead of answering. `model_view` therefore keeps past turns as question/answer
pairs and puts this turn's tool results in front of the question as context; the state keeps the
faithful AIMessage/ToolMessage pair for the event stream and the history.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.types import interrupt

from metaspider.graph.context_budget import cap_tool_result, history_budget, trim_history
from metaspider.graph.policy import Thresholds, decide
from metaspider.graph.spec import AgentSpec, HumanEscalation, ModelEscalation
from metaspider.graph.state import AgentState, Route
from metaspider.runtime.chat_model import MetaSpiderChatModel
from metaspider.tools.specs import CalculatorSpec, HttpGetSpec, ImportToolSpec, KnowledgeBaseSpec, ToolSpec

N_CTX = 2048
"""The default context window (the spec's `n_ctx:` when it names none)."""

_ARITHMETIC = re.compile(r"[-+(]*\d[\d.\s()]*(?:(?:\*\*|[-+*/%^×])[\s(]*[-+]?\d[\d.\s()]*)+")
_URL = re.compile(r"https?://\S+")


def keep_args(args: dict[str, Any], _question: str) -> dict[str, Any]:
    """A tool's arguments as the model wrote them (the default argument rewrite)."""
    return args


def arithmetic_in(question: str) -> str | None:
    """The arithmetic expression written in a question ("What is 1234 * 5678?" → "1234 * 5678")."""
    match = _ARITHMETIC.search(question)
    return match.group(0).strip().replace("^", "**").replace("×", "*") if match else None


def expression_from_question(args: dict[str, Any], question: str) -> dict[str, Any]:
    """The question's own expression: a 135M model copying "1234 * 5678" drops or changes digits."""
    expression = arithmetic_in(question)
    return {**args, "expression": expression} if expression else args


def query_from_question(args: dict[str, Any], question: str) -> dict[str, Any]:
    """The model's query if it is made of the question's words ("Lumen Dial"), else the question: a
    135M model's own queries are often garbled ("The CEO of Orrě") or off the topic."""
    query = str(args.get("query", "")).strip()
    question_words = set(_words(question))
    if query and set(_words(query)) <= question_words:
        return {**args, "query": query}
    return {**args, "query": question}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@dataclass(frozen=True)
class AgentTool:
    """A tool, whether it can help with a question (the model then picks among those that can), and
    how the model's arguments are completed before the call."""

    tool: BaseTool
    applies: Callable[[str], bool]
    complete_args: Callable[[dict[str, Any], str], dict[str, Any]] = keep_args


def agent_tools(specs: list[ToolSpec], tools: list[BaseTool]) -> list[AgentTool]:
    """The spec's tools paired with when each applies to a question and how its arguments are rewritten."""
    return [
        AgentTool(
            tool,
            _applicability(spec),
            _ARGUMENT_COMPLETION.get(type(spec), keep_args),
        )
        for spec, tool in zip(specs, tools, strict=False)
    ]


def _applicability(spec: ToolSpec) -> Callable[[str], bool]:
    """Cheap and explainable: arithmetic for the calculator, a BM25 hit for the knowledge base, a URL
    for http_get. A tiny model asked to pick freely calls the calculator for everything."""
    match spec:
        case CalculatorSpec():
            return lambda question: arithmetic_in(question) is not None
        case KnowledgeBaseSpec(folder=folder):
            from metaspider.tools.knowledge_base import KnowledgeBase, read_passages

            knowledge_base = KnowledgeBase(read_passages(folder))
            return lambda question: bool(knowledge_base.search(question, 1))
        case HttpGetSpec():
            return lambda question: bool(_URL.search(question))
        case ImportToolSpec():
            return always_applies
    raise TypeError(f"unknown tool spec {spec!r}")


_ARGUMENT_COMPLETION: dict[type, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    CalculatorSpec: expression_from_question,
    KnowledgeBaseSpec: query_from_question,
}


def always_applies(_question: str) -> bool:
    """Applicability of a tool offered for every question."""
    return True


def measure_uncertainty(spec: AgentSpec, modifier: str | None, messages: list[BaseMessage]) -> float:
    """u for `messages` without generating (pass 1): the wrapper's score, or without a wrapper the
    baseline 1 − max softmax probability of the first answer token (the score the answer reports).

    The one place the agent asks for u, so it can move to a chat-model method when there is one."""
    from metaspider.runtime.engine import get_engine
    from metaspider.runtime.tool_calls import has_native_tool_calls, to_template_messages

    engine = get_engine(spec.model, spec.backend, spec.n_ctx)
    rendered = to_template_messages(messages, has_native_tool_calls(engine.backbone.chat_template))
    with engine.lock:
        assessment = engine.pipeline(spec.wrapper, modifier, None).assess(rendered)
    return float(assessment.uncertainty.score)


def model_view(messages: list[BaseMessage], system_prompt: str) -> list[BaseMessage]:
    """What the model reads: system prompt, past questions and answers, this turn's question with
    its tool results as context."""
    start = current_turn_start(messages)
    view: list[BaseMessage] = [SystemMessage(system_prompt)]
    view += [m for m in messages[:start] if isinstance(m, HumanMessage) or _is_answer(m)]
    question = messages[start].text
    results = tool_results(messages[start:])
    if results:
        context = "\n".join(_context_line(r) for r in results)
        question = f"Context:\n{context}\n\nQuestion: {question}"
    return [*view, HumanMessage(question)]


def current_turn_start(messages: list[BaseMessage]) -> int:
    """Index of the current turn's question (the last human message)."""
    return max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))


def tool_results(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """Each tool call of `messages` with its result: name, args, result, status."""
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return [
        {
            "name": m.name or calls.get(m.tool_call_id, {}).get("name", "tool"),
            "args": calls.get(m.tool_call_id, {}).get("args", {}),
            "result": m.text,
            "status": m.status,
        }
        for m in messages
        if isinstance(m, ToolMessage)
    ]


def _empty_call(name: str) -> dict[str, Any]:
    from metaspider.runtime.tool_calls import new_call_id

    return {"name": name, "args": {}, "id": new_call_id(), "type": "tool_call"}


def run_tool(tool: BaseTool, call: dict[str, Any]) -> ToolMessage:
    """The tool's ToolMessage; an exception becomes an error result the model reads, never a crash
    (the built-in tools already do this; tools passed in by a user may not)."""
    try:
        return tool.invoke(call)
    except Exception as exc:
        return ToolMessage(
            f"error: {type(exc).__name__}: {exc}", tool_call_id=call["id"], name=call["name"], status="error"
        )


def _is_answer(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) and not message.tool_calls


def _context_line(result: dict[str, Any]) -> str:
    """ "calculator: 1234 * 5678 = 7006652": a bare number would lose what it is the result of."""
    if result["name"] == "calculator" and "expression" in result["args"] and result["status"] != "error":
        return f"calculator: {result['args']['expression']} = {result['result']}"
    return f"{result['name']}: {result['result']}"


class AgentNodes:
    """The node functions of one agent, bound to its spec, thresholds and tools."""

    def __init__(self, spec: AgentSpec, thresholds: Thresholds, tools: list[AgentTool]):
        self.spec = spec
        self.thresholds = thresholds
        self.tools = tools

    # --- helpers -----------------------------------------------------------------------------------

    def knobs(self, config: RunnableConfig | None) -> tuple[float, str | None]:
        """(gain, modifier) for this run: the run's `configurable`, else the spec."""
        configurable = (config or {}).get("configurable", {})
        return configurable.get("gain", self.spec.gain), configurable.get("modifier", self.spec.modifier)

    def chat_model(self, config: RunnableConfig | None, inject: bool = True) -> MetaSpiderChatModel:
        """`inject=False`: pass 2 without the wrapper's injection (gain 0), for text that is not the
        model's own answer: the Doubter is trained to turn answers into refusals, and would write its
        refusal sentence into a tool's arguments or refuse to read out a tool's result."""
        gain, modifier = self.knobs(config)
        if not inject:
            gain = 0.0
        return MetaSpiderChatModel(
            model=self.spec.model,
            backend=self.spec.backend,
            wrapper=self.spec.wrapper,
            modifier=modifier,
            gain=gain,
            temperature=self.spec.temperature,
            max_tokens=self.spec.max_tokens,
            n_ctx=self.spec.n_ctx,
        )

    def view(self, state: AgentState) -> list[BaseMessage]:
        """What the model reads, trimmed to the context window (oldest turns first)."""
        backbone = self._backbone()
        view = model_view(state["messages"], self.spec.system_prompt)
        budget = history_budget(self.spec.n_ctx, self.spec.max_tokens)
        return trim_history(view, budget, lambda text: len(backbone.tokenize(text, special=False)))

    def _backbone(self):  # noqa: ANN202 (a Backbone; imported lazily)
        from metaspider.runtime.engine import get_engine

        return get_engine(self.spec.model, self.spec.backend, self.spec.n_ctx).backbone

    def cap_result(self, result: ToolMessage) -> ToolMessage:
        """The tool's result cut to `tool_result_tokens` tokens, with a visible marker."""
        backbone = self._backbone()
        text = cap_tool_result(
            result.text,
            self.spec.tool_result_tokens,
            lambda t: backbone.tokenize(t, special=False),
            backbone.detokenize,
        )
        return result if text == result.text else result.model_copy(update={"content": text})

    @staticmethod
    def question(state: AgentState) -> str:
        """The current turn's question text."""
        messages = state["messages"]
        return messages[current_turn_start(messages)].text

    def tools_left(self, state: AgentState) -> list[AgentTool]:
        """Tools that apply to the question and were not called yet this turn."""
        used = {call["name"] for call in state.get("tool_calls", [])}
        question = self.question(state)
        return [t for t in self.tools if t.tool.name not in used and t.applies(question)]

    # --- nodes ---------------------------------------------------------------------------------------

    def assess(self, state: AgentState, config: RunnableConfig) -> AgentState:
        """Pass 1 on the thread: u, and the route the policy picks for it."""
        _, modifier = self.knobs(config)
        score = measure_uncertainty(self.spec, modifier, self.view(state))
        steps = state.get("steps", 0) + 1
        decision = decide(
            score,
            self.thresholds,
            tool_available=bool(self.tools_left(state)),
            has_tool_results=bool(state.get("tool_calls")),
            can_escalate=self.spec.escalation is not None,
        )
        route, reason = decision.route, decision.reason
        if route == "tool" and steps >= self.spec.max_steps:
            route, reason = "refuse", f"{reason}; the step budget (max_steps={self.spec.max_steps}) is used up"
        return {"score": score, "route": route, "reason": reason, "steps": steps}

    def answer(self, state: AgentState, config: RunnableConfig) -> AgentState:
        """Answer with the wrapper's injection, or plainly when a tool's result grounds the answer."""
        grounded = bool(state.get("tool_calls"))
        message = self.chat_model(config, inject=not grounded).invoke(self.view(state))
        return {"messages": [message], "outcome": "used_tool" if grounded else "answered"}

    def tool(self, state: AgentState, config: RunnableConfig) -> AgentState:
        """Let the model call one of the tools that still apply, and run it."""
        candidates = self.tools_left(state)
        choice = candidates[0].tool.name if len(candidates) == 1 else "any"
        llm = self.chat_model(config, inject=False).bind_tools([c.tool for c in candidates], tool_choice=choice)
        request = llm.invoke(self.view(state))
        # A forced call always parses; only a token budget too small for any call leaves none.
        picked = request.tool_calls[0] if request.tool_calls else _empty_call(candidates[0].tool.name)
        chosen = next(c for c in candidates if c.tool.name == picked["name"])
        call = {**picked, "args": chosen.complete_args(picked["args"], self.question(state))}
        request = AIMessage("", tool_calls=[call], response_metadata=request.response_metadata)
        result = self.cap_result(run_tool(chosen.tool, call))
        record = {"name": call["name"], "args": call["args"], "result": result.text, "status": result.status}
        return {"messages": [request, result], "tool_calls": [*state.get("tool_calls", []), record]}

    def refuse(self, state: AgentState) -> AgentState:
        """Refuse in words, naming the reason (u above the answer threshold and no tool or escalation left)."""
        text = f"I can't answer that reliably ({state['reason']})."
        return {"messages": [AIMessage(text)], "outcome": "refused"}

    def draft(self, state: AgentState, config: RunnableConfig) -> AgentState:
        """What the bare model would answer, for the human to check (with the injection it would mostly
        be a refusal). A node of its own: a node that interrupts runs again from its start when resumed."""
        return {"draft": self.chat_model(config, inject=False).invoke(self.view(state)).text}

    def escalate(self, state: AgentState, config: RunnableConfig) -> AgentState:
        """Hand the question to the stronger model, or pause for a person's reply."""
        escalation = self.spec.escalation
        if isinstance(escalation, ModelEscalation):
            stronger = MetaSpiderChatModel(
                model=escalation.model,
                backend=escalation.backend,
                temperature=self.spec.temperature,
                max_tokens=self.spec.max_tokens,
            )
            message = stronger.invoke(self.view(state))
            return {"messages": [message], "outcome": "escalated"}
        assert isinstance(escalation, HumanEscalation)
        reply = interrupt(
            {
                "question": self.question(state),
                "draft": state.get("draft"),
                "score": state["score"],
                "reason": state["reason"],
            }
        )
        text = str(reply).strip()
        if not text:
            return {"messages": [AIMessage("No one answered this question.")], "outcome": "refused"}
        return {"messages": [AIMessage(text, name="human")], "outcome": "escalated"}

    # --- edges -------------------------------------------------------------------------------------

    def after_assess(self, state: AgentState) -> str:
        """The next node for the route chosen in `assess` (a human escalation first drafts an answer)."""
        route: Route = state["route"]
        if route == "escalate" and isinstance(self.spec.escalation, HumanEscalation):
            return "draft"
        return route
