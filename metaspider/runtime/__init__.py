"""The LangChain chat model over a backbone and wrapper, its engine cache, tool-call parsing and constrained decoding."""
