"""MetaSpiderChatModel is lazy: constructing one loads nothing, and `import metaspider` stays cheap."""

from __future__ import annotations

import subprocess
import sys

from metaspider import MetaSpiderChatModel
from metaspider.runtime import engine as engine_module


def test_construction_loads_nothing_and_import_stays_cheap():
    before = dict(engine_module._engines)
    MetaSpiderChatModel(model="no-such-model", wrapper="/no/such/folder")
    assert engine_module._engines == before
    probe = "import sys, metaspider; print('langchain_core' in sys.modules, 'llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
