"""Bundled commands, each a plugin module that adds itself through the ``register_commands`` hook.

They import nothing heavy at module level: ``amlstep --help`` stays fast.
"""
