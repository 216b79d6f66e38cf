"""perceiver: a notebook-first research workbench for Perceiver IO and Perceiver AR."""

__version__ = "0.1.0"
