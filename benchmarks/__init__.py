"""Benchmarks and studies of the project, run from the repository root as modules: `python -m benchmarks.NAME`.

Not part of the installed package (setup.cfg finds only `restoration` and `data_prep`).
"""
