"""The code that runs inside the Python sandbox (the worker), one concept per module.

Runs under the system ``python3`` inside bubblewrap (or, in the explicit ``unsafe-process`` mode,
as a plain process), started through ``worker.py`` beside this package. Only the standard
library, httpx and its pure-Python dependencies, the python3-seccomp extension and this package
are visible there, so nothing here may import voicefn: the modules import each other relatively.

* :mod:`.zygote` -- the zygote's fork loop and each child's lockdown (pipes, rlimits, seccomp).
* :mod:`.warmup` -- one fake invocation end to end in the zygote, before anything is forked.
* :mod:`.channel` -- framing and the child's private pipes to the supervisor.
* :mod:`.runtime` -- what user code gets (``ctx``, ``logger``, captured ``print``) and
  :func:`~.runtime.invoke`, which runs it once.
* :mod:`.egress` -- httpx inside the sandbox: every request goes over the channel.
* :mod:`.results` -- the result's size and JSON checks, and error details safe to show.
"""
