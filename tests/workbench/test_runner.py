"""The runner's output filter: the third-party warnings it names are hidden, a user's own warnings are shown."""

from __future__ import annotations

import dataclasses

from perceiver import tasks
from widgets.runner import TrainingRun

FAKE_CLI = '''
import sys
import warnings

from pytorch_lightning.utilities._pytree import _tree_flatten

_tree_flatten(1)  # torch's LeafSpec FutureWarning, named by the runner
warnings.warn("my own warning about the data")
warnings.warn("my_option is deprecated, use other_option", FutureWarning)
print("💡 Tip: an advertisement")
print("argv", sys.argv[1:])
'''


def test_named_third_party_warnings_hidden_user_warnings_shown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # python -m finds the fake CLI module here
    (tmp_path / "fake_cli.py").write_text(FAKE_CLI)
    task = dataclasses.replace(tasks.get("clm"), cli="fake_cli")
    run = TrainingRun(task, {"trainer": {}}, tmp_path / "run").start()
    assert run.wait(timeout=300) == 0, run.lines
    shown = "\n".join(run.lines)
    assert "UserWarning: my own warning about the data" in shown
    assert "FutureWarning: my_option is deprecated, use other_option" in shown  # no blanket "is deprecated" filter
    assert "argv ['fit', '--config'" in shown
    assert "LeafSpec" not in shown and "💡 Tip" not in shown
    log = (tmp_path / "run" / "train.log").read_text()
    assert "💡 Tip" in log and "LeafSpec" not in log  # the log keeps info lines; the named warning is never emitted

