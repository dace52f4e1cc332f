"""Fault injection: bad inputs on every surface, processes killed mid-work, and concurrent load.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python benchmarks/faults.py [--part bad_inputs|kill_agent|kill_collect|load]

writes benchmarks/results/faults.json and faults.md (all parts unless --part is given: then only that part is
re-measured and merged into the existing JSON).

- bad inputs: every case runs the real CLI in a fresh process (or, for HTTP responses, the `http_get` tool
  against a real server on 127.0.0.1) and must end with a non-zero exit code, no traceback, and one error
  line naming the file or field;
- nothing lost: an agent process killed with SIGKILL mid-turn keeps every earlier turn of its thread and
  the thread resumes; a `metaloom collect` killed mid-run resumes with no missing and no duplicate rows;
- load: 16 threads x 20 requests on one chat model (smollm2-135m, one llama.cpp thread) with random
  cancellations and abandoned streams: no deadlock, every request finishes or fails with a clear timeout,
  and every finished answer equals the same request run alone.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "smollm2-135m"
CLI = [sys.executable, "-c", "from metaspider.cli import main; main()"]
LOOM = [sys.executable, "-c", "from metaspider.cli import loom_main; loom_main()"]
ENV = {**os.environ, "COLUMNS": "2000", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


# --- bad inputs -----------------------------------------------------------------------------------


@dataclass
class Case:
    surface: str
    name: str
    command: list[str] = field(default_factory=list)
    expect: str = ""
    """A substring the error line must contain: the file or field it names."""
    exit_code: int | None = None
    traceback: bool = False
    error_line: str = ""
    error_lines: int = 0
    names_it: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        nonzero = self.exit_code is None or self.exit_code != 0  # None: a tool result, no process
        return nonzero and not self.traceback and self.error_lines == 1 and self.names_it


def _run_cli(case: Case, timeout: float = 240) -> Case:
    start = time.monotonic()
    result = subprocess.run(case.command, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)
    case.seconds = round(time.monotonic() - start, 2)
    output = result.stdout + result.stderr
    case.exit_code = result.returncode
    case.traceback = "Traceback" in output
    lines = [line for line in output.splitlines() if "error" in line.lower()]
    case.error_lines = len(lines)
    case.error_line = lines[0].strip()[:400] if lines else output.strip()[-400:]
    case.names_it = bool(lines) and case.expect in lines[0]
    return case


def _spec(folder: Path, name: str, **fields: object) -> Path:
    spec = {"model": MODEL, "wrapper": None, "policy": {"answer_below": 1.0}, "max_tokens": 8, **fields}
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _agent(spec: Path, question: str = "Hi") -> list[str]:
    return [*CLI, "agent", "run", str(spec), "-q", question]


def cli_cases(tmp: Path) -> list[Case]:
    run = tmp / "run-args"
    return [
        Case("CLI arguments", "unknown model", [*CLI, "models", "pull", "no-such-model"], "no-such-model"),
        Case("CLI arguments", "verify unknown model", [*CLI, "models", "verify", "no-such-model"], "no-such-model"),
        Case("CLI arguments", "missing argument", [*CLI, "models", "pull"], "name"),
        Case("CLI arguments", "unknown option", [*CLI, "models", "list", "--colour"], "--colour"),
        Case("CLI arguments", "spec file missing", _agent(tmp / "missing.yaml"), "missing.yaml"),
        Case("CLI arguments", "not a number", [*LOOM, "collect", "--run", str(run), "--limit", "abc"], "--limit"),
        Case(
            "CLI arguments",
            "unknown split",
            [*LOOM, "collect", "--run", str(run), "--split", "nosuch", "--limit", "1", "--threads", "1"],
            "nosuch",
        ),
        Case(
            "CLI arguments",
            "unknown data set",
            [*LOOM, "collect", "--run", str(run), "--dataset", "nosuch", "--limit", "1", "--threads", "1"],
            "nosuch",
        ),
    ]


def yaml_cases(tmp: Path) -> list[Case]:
    texts = {
        "malformed YAML": ("model: [unclosed\n", "bad-yaml.yaml"),
        "unknown field": (f"model: {MODEL}\npolicy: {{answer_below: 0.5}}\ncolour: red\n", "colour"),
        "wrong type": (f"model: {MODEL}\npolicy: {{answer_below: 0.5}}\nmax_tokens: lots\n", "max_tokens"),
        "missing policy": (f"model: {MODEL}\n", "policy"),
        "n_ctx too small": (f"model: {MODEL}\npolicy: {{answer_below: 0.5}}\nn_ctx: 10\n", "n_ctx"),
        "thresholds out of order": (f"model: {MODEL}\npolicy: {{answer_below: 0.5, tool_below: 0.2}}\n", "tool_below"),
        "a list, not a mapping": ("- model\n- policy\n", "list.yaml"),
        "empty file": ("", "empty.yaml"),
        "unknown tool": (f"model: {MODEL}\npolicy: {{answer_below: 0.5}}\ntools: [{{name: rm_rf}}]\n", "rm_rf"),
    }
    cases = []
    for name, (text, expect) in texts.items():
        filename = expect if expect.endswith(".yaml") else f"{name.replace(' ', '-').replace(',', '')}.yaml"
        path = tmp / filename
        path.write_text(text, encoding="utf-8")
        cases.append(Case("agent YAML", name, _agent(path), expect))
    binary = tmp / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    cases.append(Case("agent YAML", "binary garbage", _agent(binary), "binary.yaml"))
    return cases


def _shipped_wrapper() -> Path:
    from metaspider.core.wrapper.handle import resolve_wrapper_path

    return resolve_wrapper_path("default", MODEL)


def wrapper_cases(tmp: Path) -> list[Case]:
    shipped = _shipped_wrapper()

    def variant(name: str, change: Callable[[Path], None]) -> Path:
        folder = tmp / f"wrapper-{name}"
        shutil.copytree(shipped, folder)
        change(folder)
        return folder

    def manifest(edit: Callable[[dict], None]) -> Callable[[Path], None]:
        def change(folder: Path) -> None:
            data = json.loads((folder / "manifest.json").read_text())
            edit(data)
            (folder / "manifest.json").write_text(json.dumps(data))

        return change

    def truncate_weights(folder: Path) -> None:
        path = folder / "weights.safetensors"
        path.write_bytes(path.read_bytes()[:5000])

    empty = tmp / "wrapper-empty"
    empty.mkdir()
    folders = {
        "does not exist": (tmp / "no-such-wrapper", "no-such-wrapper"),
        "empty folder": (empty, "manifest.json"),
        "manifest not JSON": (variant("notjson", lambda f: (f / "manifest.json").write_text("{oops")), "manifest.json"),
        "huge d_model": (variant("huge", manifest(lambda d: d["config"].update(d_model=10**9))), "d_model"),
        "layer out of range": (
            variant("layers", manifest(lambda d: d["config"].update(read_layers=[400]))),
            "read_layers",
        ),
        "field missing": (variant("nofield", manifest(lambda d: d["config"].pop("inject_layers"))), "inject_layers"),
        "weights truncated": (variant("trunc", truncate_weights), "weights.safetensors"),
        "weights missing": (
            variant("noweights", lambda f: (f / "weights.safetensors").unlink()),
            "weights.safetensors",
        ),
    }
    return [
        Case("wrapper folder", name, _agent(_spec(tmp, f"w-{i}.yaml", wrapper=str(folder))), expect)
        for i, (name, (folder, expect)) in enumerate(folders.items())
    ]


def sidecar_cases(tmp: Path) -> list[Case]:
    from metaspider.core.models.registry import cached_path

    good = tmp / "good-sidecar.gguf"
    subprocess.run(
        [*CLI, "deploy", "export", str(_shipped_wrapper()), "--out", str(good)],
        env=ENV,
        check=True,
        capture_output=True,
    )
    files = {
        "missing": None,
        "empty": b"",
        "text": b"not a sidecar\n" * 50,
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "header only": good.read_bytes()[:64],
    }
    cases = []
    for name, data in files.items():
        path = tmp / f"sidecar-{name.replace(' ', '-')}.gguf"
        if data is not None:
            path.write_bytes(data)
        command = [*CLI, "deploy", "verify", "--model", MODEL, "--sidecar", str(path), "--limit", "1", "--threads", "1"]
        cases.append(Case("sidecar", name, command, path.name))
    command = [
        *CLI,
        "deploy",
        "verify",
        "--model",
        MODEL,
        "--sidecar",
        str(cached_path(MODEL)),
        "--limit",
        "1",
        "--threads",
        "1",
    ]
    cases.append(Case("sidecar", "a base model, not a sidecar", command, cached_path(MODEL).name))
    return cases


def gguf_cases(tmp: Path) -> list[Case]:
    from metaspider.core.models.registry import cached_path

    real = cached_path(MODEL).read_bytes()[:2_000_000]
    files = {
        "empty": b"",
        "text": b"hello, not a model\n" * 100,
        "magic only": b"GGUF\x03\x00\x00\x00" + b"\xff" * 64,
        "truncated": real,
    }
    cases = []
    for name, data in files.items():
        path = tmp / f"model-{name.replace(' ', '-')}.gguf"
        path.write_bytes(data)
        cases.append(Case("model GGUF", name, _agent(_spec(tmp, f"m-{path.stem}.yaml", model=str(path))), path.name))
        if name in ("truncated", "text"):
            torch_spec = _spec(tmp, f"mt-{path.stem}.yaml", model=str(path), backend="torch")
            cases.append(Case("model GGUF", f"{name} (torch)", _agent(torch_spec), path.name))
    return cases


def jsonl_cases(tmp: Path) -> list[Case]:
    rows = {
        "not JSON": b'{"id": 1, "question": "q", "answers": ["a"]}\n{oops\n',
        "missing field": b'{"id": 1, "answers": ["a"]}\n',
        "wrong type": b'{"id": 1, "question": "q", "answers": "a"}\n',
        "duplicate id": b'{"id": 1, "question": "q", "answers": ["a"]}\n{"id": 1, "question": "r", "answers": ["b"]}\n',
        "empty file": b"",
        "binary": b"\xff\xfe\x00\x81garbage\n",
        "not an object": b"[1, 2, 3]\n",
        "bad answer letter": b'{"id": 1, "question": "q", "choices": ["a", "b"], "answer": "Z"}\n',
    }
    cases = []
    for name, data in rows.items():
        path = tmp / f"data-{name.replace(' ', '-')}.jsonl"
        path.write_bytes(data)
        run = tmp / f"run-{path.stem}"
        command = [
            *LOOM,
            "collect",
            "--run",
            str(run),
            "--dataset",
            str(path),
            "--split",
            "all",
            "--limit",
            "2",
            "--threads",
            "1",
        ]
        cases.append(Case("dataset JSONL", name, command, path.name))
    missing = tmp / "no-such-data.jsonl"
    command = [*LOOM, "collect", "--run", str(tmp / "run-missing"), "--dataset", str(missing), "--threads", "1"]
    cases.append(Case("dataset JSONL", "missing file", command, missing.name))
    return cases


def sqlite_cases(tmp: Path) -> tuple[list[Case], Callable[[], None]]:
    corrupt = tmp / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 200)
    folder = tmp / "a-folder.sqlite"
    folder.mkdir()
    truncated = tmp / "truncated.sqlite"
    connection = sqlite3.connect(truncated)
    connection.execute("CREATE TABLE t (x)")
    connection.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 50)
    connection.commit()
    connection.close()
    data = truncated.read_bytes()
    truncated.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    locked = tmp / "locked.sqlite"
    holder = sqlite3.connect(locked, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")
    files = {"corrupt": corrupt, "a folder": folder, "truncated": truncated, "locked by another process": locked}
    cases = [
        Case("SQLite file", name, _agent(_spec(tmp, f"s-{i}.yaml", memory=str(path))), path.name)
        for i, (name, path) in enumerate(files.items())
    ]

    def release() -> None:
        holder.rollback()
        holder.close()

    return cases, release


class _Bad(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes: dict[str, Callable[[], None]] = {
            "/500": lambda: self._reply(500, {"content-type": "text/plain"}, b"boom"),
            "/png": lambda: self._reply(200, {"content-type": "image/png"}, b"\x89PNG"),
            "/badgzip": lambda: self._reply(
                200, {"content-type": "text/plain", "content-encoding": "gzip"}, b"\x1f\x8bjunk"
            ),
            "/br": lambda: self._reply(200, {"content-type": "text/plain", "content-encoding": "br"}, b"\x00\x01"),
            "/loop": lambda: self._reply(302, {"location": "/loop"}, b""),
            "/offlist": lambda: self._reply(302, {"location": "http://evil.example/"}, b""),
            "/private": lambda: self._reply(302, {"location": f"http://localhost:{port}/500"}, b""),
            "/slow": lambda: (time.sleep(3), self._reply(200, {"content-type": "text/plain"}, b"late")),
            "/reset": self._reset,
            "/short": lambda: self._reply(
                200, {"content-type": "text/plain", "content-length": "1000"}, b"only a bit", False
            ),
            "/notype": lambda: self._reply(200, {}, b"who knows"),
        }
        routes.get(self.path, lambda: self._reply(404, {}, b""))()

    def _reply(self, status: int, headers: dict[str, str], body: bytes, length: bool = True) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if length and "content-length" not in headers:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def _reset(self) -> None:
        self.connection.shutdown(2)

    def log_message(self, *_args: object) -> None:
        pass


def http_cases() -> list[Case]:
    from metaspider.tools.http_get import make_http_get_tool

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    tool = make_http_get_tool(["127.0.0.1"], allow_private=True, timeout=1.5)
    strict = make_http_get_tool(["127.0.0.1", "localhost"], timeout=1.5)
    paths = {
        "HTTP 500": ("/500", "500"),
        "binary content": ("/png", "image/png"),
        "corrupt gzip": ("/badgzip", "gzip"),
        "unsupported encoding": ("/br", "'br'"),
        "redirect loop": ("/loop", "redirects"),
        "redirect off the allow-list": ("/offlist", "evil.example"),
        "slow server": ("/slow", "timed out"),
        "connection reset": ("/reset", "request failed"),
        "body shorter than announced": ("/short", "request failed"),
        "no content type": ("/notype", "content type"),
        "invalid URL": ("http://[::1", "invalid URL"),
        "other scheme": ("file:///etc/passwd", "only http and https"),
    }
    cases = []
    for name, (path, expect) in paths.items():
        url = path if "://" in path or path.startswith("http") else base + path
        start = time.monotonic()
        result = tool.invoke({"url": url})
        cases.append(_tool_case(name, result, expect, time.monotonic() - start))
    start = time.monotonic()
    result = strict.invoke({"url": f"{base}/private"})
    cases.append(_tool_case("loopback without allow_private", result, "non-public address", time.monotonic() - start))
    server.shutdown()
    return cases


def _tool_case(name: str, result: str, expect: str, seconds: float) -> Case:
    lines = result.splitlines()
    return Case(
        "HTTP responses",
        name,
        [],
        expect,
        None,
        "Traceback" in result,
        result[:400],
        int(result.startswith("error:")) if len(lines) == 1 else 0,
        expect in result,
        round(seconds, 2),
    )


def bad_inputs() -> dict:
    with tempfile.TemporaryDirectory(prefix="faults-") as folder:
        tmp = Path(folder)
        sqlite, release = sqlite_cases(tmp)
        cases = [
            *cli_cases(tmp),
            *yaml_cases(tmp),
            *wrapper_cases(tmp),
            *sidecar_cases(tmp),
            *gguf_cases(tmp),
            *jsonl_cases(tmp),
        ]
        done = [_run_cli(case) for case in cases]
        done += [_run_cli(case) for case in sqlite]
        release()
        done += http_cases()
    surfaces: dict[str, dict] = {}
    for case in done:
        entry = surfaces.setdefault(case.surface, {"tried": 0, "passed": 0})
        entry["tried"] += 1
        entry["passed"] += int(case.ok)
    return {"surfaces": surfaces, "cases": [{**asdict(c), "ok": c.ok} for c in done]}


# --- nothing lost ---------------------------------------------------------------------------------


def _history(spec: Path, thread: str) -> list[tuple[str, str]]:
    code = (
        "import json,sys\nfrom metaspider.graph.builder import AgentSession\nfrom metaspider.graph.spec import load_spec\n"
        "s = AgentSession(load_spec(sys.argv[1]), sys.argv[2])\n"
        "print(json.dumps([(m.type, m.text) for m in s.history()]))\ns.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(spec), thread], capture_output=True, text=True, env=ENV, check=True
    )
    return [tuple(pair) for pair in json.loads(out.stdout.strip().splitlines()[-1])]


def _checkpoints(path: Path, thread: str) -> int:
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread,)).fetchone()[0]
    finally:
        connection.close()


def kill_agent() -> dict:
    """Two turns, a third killed with SIGKILL while it generates, then a fourth on the same thread."""
    with tempfile.TemporaryDirectory(prefix="faults-agent-") as folder:
        tmp = Path(folder)
        spec = _spec(tmp, "agent.yaml", memory=str(tmp / "memory.sqlite"), max_tokens=400)
        thread = "killtest"
        questions = ["What is the capital of France?", "What is two plus two?"]
        for question in questions:
            subprocess.run([*_agent(spec, question), "--thread", thread], env=ENV, check=True, capture_output=True)
        before = _history(spec, thread)
        victim = subprocess.Popen(
            [*_agent(spec, "Write a very long story about a dragon."), "--thread", thread],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        saved = _checkpoints(tmp / "memory.sqlite", thread)
        deadline = time.monotonic() + 120
        while _checkpoints(tmp / "memory.sqlite", thread) == saved and time.monotonic() < deadline:
            time.sleep(0.2)  # until the turn's input is checkpointed: the turn has begun
        time.sleep(float(os.environ.get("FAULTS_KILL_AFTER", "2")))  # into pass 1 / pass 2
        alive_when_killed = victim.poll() is None
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        after_kill = _history(spec, thread)
        resumed = subprocess.run(
            [*_agent(spec, "What colour is the sky?"), "--thread", thread],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        final = _history(spec, thread)
    kept = after_kill[: len(before)] == before
    answered = [m for m in before if m[0] == "ai"]
    return {
        "earlier_turns": len(questions),
        "earlier_messages": len(before),
        "earlier_answers": len(answered),
        "killed_mid_turn": alive_when_killed,
        "earlier_turns_kept": kept,
        "resume_exit_code": resumed.returncode,
        "resumed_turn_answered": final[-1][0] == "ai" and final[-2] == ("human", "What colour is the sky?"),
        "history_after_resume_starts_with_earlier_turns": final[: len(before)] == before,
    }


def _collected(run: Path) -> list[str]:
    ids: list[str] = []
    for chunk in sorted(run.glob("collect/*/*/chunk-*.json")):
        ids += [record["id"] for record in json.loads(chunk.read_text())]
    return ids


def kill_collect(limit: int = 80) -> dict:
    with tempfile.TemporaryDirectory(prefix="faults-collect-") as folder:
        run = Path(folder) / "run"
        command = [
            *LOOM,
            "collect",
            "--run",
            str(run),
            "--dataset",
            "countries",
            "--split",
            "train",
            "--limit",
            str(limit),
            "--threads",
            "1",
        ]
        victim = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 400
        while not _collected(run) and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.2)
        time.sleep(1.5)  # into the next chunk
        alive = victim.poll() is None
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        at_kill = len(_collected(run))
        resumed = subprocess.run(command, env=ENV, capture_output=True, text=True, check=False)
        ids = _collected(run)
    return {
        "limit": limit,
        "killed_mid_run": alive,
        "rows_at_kill": at_kill,
        "resume_exit_code": resumed.returncode,
        "rows_after_resume": len(ids),
        "unique_rows": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "missing": limit - len(set(ids)),
    }


# --- load -------------------------------------------------------------------------------------------

QUESTIONS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "What is 3 times 4?",
    "Which planet is closest to the sun?",
    "What language is spoken in Brazil?",
    "How many legs does a spider have?",
    "What is the opposite of hot?",
    "Say hello in Spanish.",
]


def load(threads: int = 16, per_thread: int = 20, seed: int = 0) -> dict:
    """Each request: invoke (60 %), a stream read to the end (20 %), cancelled after a few chunks (10 %), or
    abandoned: left open, unread, while others wait (10 %)."""
    from metaspider.core.backbones.model_lock import StreamAbandonedError
    from metaspider.runtime.chat_model import MetaSpiderChatModel
    from metaspider.runtime.engine import get_engine

    llm = MetaSpiderChatModel(model=MODEL, n_threads=1, max_tokens=16, timeout=120)
    lock = get_engine(MODEL, "llama_cpp", llm.n_ctx, 1).lock
    lock.idle_limit = 2.0
    alone = {q: llm.invoke(q).text for q in QUESTIONS}
    rng = random.Random(seed)
    plans = [
        [(rng.choice(QUESTIONS), rng.random(), rng.randint(1, 4)) for _ in range(per_thread)] for _ in range(threads)
    ]
    outcomes: dict[str, int] = {"finished": 0, "cancelled": 0, "abandoned": 0, "timeout": 0, "other_error": 0}
    mismatches: list[dict] = []
    errors: list[str] = []
    abandoned: list = []
    guard = threading.Lock()

    def count(kind: str) -> None:
        with guard:
            outcomes[kind] += 1

    def worker(plan: list) -> None:
        for question, draw, cut in plan:
            try:
                if draw < 0.6:
                    text = llm.invoke(question).text
                elif draw < 0.8:
                    text = "".join(c.text for c in llm.stream(question))
                elif draw < 0.9:
                    stream = llm.stream(question)
                    for _ in range(cut):
                        next(stream, None)
                    stream.close()
                    count("cancelled")
                    continue
                else:
                    # A consumer (say, a server handler) reads one chunk and goes away for good, leaving the
                    # stream open: its thread ends, the stream object stays referenced and unread.
                    def walk_away(q: str = question) -> None:
                        stream = llm.stream(q)
                        next(stream, None)
                        with guard:
                            abandoned.append(stream)

                    consumer = threading.Thread(target=walk_away)
                    consumer.start()
                    consumer.join()
                    count("abandoned")
                    continue
            except TimeoutError as exc:
                count("timeout")
                with guard:
                    errors.append(f"timeout: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 (counted and reported)
                count("other_error")
                with guard:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            count("finished")
            if text != alone[question]:
                with guard:
                    mismatches.append({"question": question, "alone": alone[question], "under_load": text})

    start = time.monotonic()
    pool = [threading.Thread(target=worker, args=(plan,), daemon=True) for plan in plans]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=max(1.0, 1500 - (time.monotonic() - start)))
    hung = sum(thread.is_alive() for thread in pool)
    elapsed = time.monotonic() - start
    resumed_abandoned = 0
    for stream in abandoned:
        try:
            list(stream)
        except StreamAbandonedError:
            resumed_abandoned += 1
        except Exception:  # noqa: BLE001, S110 (only the clear error counts)
            pass
    return {
        "threads": threads,
        "requests_per_thread": per_thread,
        "requests": threads * per_thread,
        "outcomes": outcomes,
        "hung_threads": hung,
        "finished_answers_differing_from_alone": len(mismatches),
        "mismatches": mismatches[:5],
        "errors": errors[:10],
        "abandoned_streams_raising_clear_error_on_resume": f"{resumed_abandoned}/{len(abandoned)}",
        "seconds": round(elapsed, 1),
    }


# --- report -----------------------------------------------------------------------------------------


def write_report(data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# Fault injection",
        "",
        "Command (from the repo root):",
        "",
        "    PYTHONPATH=$PWD nice -n 10 .venv/bin/python benchmarks/faults.py",
        "",
        "Measured on a shared 2-core machine; smollm2-135m, one llama.cpp thread.",
        "",
    ]
    if "bad_inputs" in data:
        lines += [
            "## Bad inputs",
            "",
            (
                "Each case runs the real CLI in a fresh process (HTTP responses: the `http_get` tool against a real "
                "server on 127.0.0.1). Passed = non-zero exit code, no traceback, exactly one error line, and that line "
                "names the file or field."
            ),
            "",
            "| surface | tried | passed |",
            "|---|---:|---:|",
        ]
        for surface, entry in data["bad_inputs"]["surfaces"].items():
            lines.append(f"| {surface} | {entry['tried']} | {entry['passed']} |")
        failed = [c for c in data["bad_inputs"]["cases"] if not c["ok"]]
        lines += ["", f"Failed cases: {len(failed)}."]
        for case in failed:
            lines.append(
                f"- {case['surface']} / {case['name']}: exit {case['exit_code']}, traceback {case['traceback']}, "
                f"{case['error_lines']} error line(s): `{case['error_line'][:200]}`"
            )
        lines += ["", "Every case and its error line: `faults.json`.", ""]
    if "kill_agent" in data:
        k = data["kill_agent"]
        lines += ["## Nothing lost", "", "| check | result |", "|---|---|"]
        lines += [f"| agent: {key.replace('_', ' ')} | {value} |" for key, value in k.items()]
    if "kill_collect" in data:
        lines += [f"| collect: {key.replace('_', ' ')} | {value} |" for key, value in data["kill_collect"].items()]
        lines.append("")
    if "load" in data:
        load_ = data["load"]
        lines += [
            "## Load",
            "",
            (
                f"{load_['threads']} threads × {load_['requests_per_thread']} requests on one chat model (max_tokens "
                "16, timeout 120 s, abandoned streams lose the model after 2 s idle)."
            ),
            "",
            "| measure | value |",
            "|---|---|",
        ]
        for key in (
            "requests",
            "outcomes",
            "hung_threads",
            "finished_answers_differing_from_alone",
            "abandoned_streams_raising_clear_error_on_resume",
            "seconds",
        ):
            lines.append(f"| {key.replace('_', ' ')} | {load_[key]} |")
        if load_["errors"]:
            lines += ["", "Errors seen: " + "; ".join(f"`{e}`" for e in load_["errors"])]
        lines.append("")
    (RESULTS / "faults.md").write_text("\n".join(lines) + "\n")


PARTS = {"bad_inputs": bad_inputs, "kill_agent": kill_agent, "kill_collect": kill_collect, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=list(PARTS), action="append")
    args = parser.parse_args()
    path = RESULTS / "faults.json"
    data = json.loads(path.read_text()) if args.part and path.exists() else {}
    for name in args.part or list(PARTS):
        start = time.monotonic()
        data[name] = PARTS[name]()
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)
        write_report(data)


if __name__ == "__main__":
    main()
