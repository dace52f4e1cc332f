"""MetaSpiderChatModel as a drop-in LangChain chat model: a prompt | model | parser chain.

    python examples/chain.py "Australia"

The chain is plain LangChain; only the model line is metaspider. Its uncertainty rides along on the
AI message, so we run the prompt and the model first to show it, then the parser."""

from __future__ import annotations

import sys

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from metaspider import MetaSpiderChatModel

prompt = ChatPromptTemplate.from_messages(
    [("system", "Answer in one short sentence."), ("human", "What is the capital of {country}?")]
)


def main(country: str, model: str = "smollm2-135m") -> tuple[str, dict]:
    llm = MetaSpiderChatModel(model=model, max_tokens=40)
    chain = prompt | llm | StrOutputParser()
    answer = chain.invoke({"country": country})
    message = (prompt | llm).invoke({"country": country})
    return answer, message.response_metadata["uncertainty"]


if __name__ == "__main__":
    answer, uncertainty = main(sys.argv[1] if len(sys.argv) > 1 else "France", *sys.argv[2:3])
    print(answer)
    print(f"uncertainty: {uncertainty}")
