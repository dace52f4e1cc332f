"""`metaspider serve`: an OpenAI-compatible chat-completions server whose every answer carries the
wrapper's uncertainty (`metaspider.uncertainty`). Needs the `serve` extra (FastAPI, uvicorn,
prometheus-client); see `metaspider.serve.app.create_app` for embedding the app elsewhere."""
