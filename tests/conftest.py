"""Settings for every test session: one torch thread in the test process.

On 2 cores shared with other work (a browser test's JupyterLab and chromium, a training subprocess, another pytest),
each multi-threaded op waits for its second thread's time slice: a tiny model's training step then takes seconds
instead of milliseconds. One thread keeps the in-process tests fast under load, and their numbers independent of
the machine's core count. Subprocesses choose their own threads (``--cpu_threads``).
"""

import torch


def pytest_configure(config):
    torch.set_num_threads(1)
