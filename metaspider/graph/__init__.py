"""The refusal-aware agent: its YAML spec, LangGraph graph, routing policy, memory and REPL."""
