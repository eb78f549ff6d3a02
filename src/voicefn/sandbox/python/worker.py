"""The script each worker runs: ``python3 -S -s -P -B /sandbox/worker.py <control fd>``.

The worker's code is the :mod:`sandboxed` package beside this file (zygote, runtime, egress,
results; see its docstring). The host binds that package read-only under ``/sandbox/site``
with httpx and the other packages (:func:`.host.package_paths`), so it is importable there by
its own name, with no voicefn around it. In ``unsafe-process`` mode its parent directory is on
``PYTHONPATH`` instead. It is imported by name at run time: this script runs as ``__main__``
under the system python, outside any package.
"""

import importlib

if __name__ == "__main__":
    importlib.import_module("sandboxed.zygote").main()
