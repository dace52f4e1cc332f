"""The LangChain chat model over a backbone and wrapper, its engine cache, tool-call parsing, constrained decoding,
and the middleware that routes a `create_agent` agent on u."""
