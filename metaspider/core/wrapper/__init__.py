"""The wrapper: its config, Torch module, NumPy maths, folder and GGUF sidecar formats, runtimes, modifiers and the `Wrapper` handle."""
