"""Settings for every test session: one torch thread in the test process and, by default, in its subprocesses.

On 2 cores shared with other work (a browser test's JupyterLab and chromium, a training subprocess, another pytest
worker), each multi-threaded op waits for its second thread's time slice: a tiny model's training step then takes
seconds instead of milliseconds. One thread keeps the tests fast under load and their numbers independent of the
machine's core count.

``OMP_NUM_THREADS=1`` is set for the whole session, before any test runs, so every subprocess (a CLI run, a
papermill kernel, a DDP rank) starts the same way whichever tests ran before it in this process: the thread count a
process starts with can change which kernels oneDNN picks, and with them the last bits of a training run that the
notebook references compare. Tests of the default (all usable cores) remove the variable for their subprocess.
"""

import os

import torch


def pytest_configure(config):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
