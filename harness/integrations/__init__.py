"""Bridges to other evaluation tools.

`lmms` runs our models inside lmms-eval (needs the `lmms` extra); `lmms_import` turns lmms-eval results files into
our results store and needs nothing beyond the core install, so imports work where lmms-eval is not installed.
"""
