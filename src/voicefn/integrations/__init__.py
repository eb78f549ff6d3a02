"""Optional integrations with voice frameworks and tool ecosystems.

Each submodule is an extra: ``pip install "voicefn[livekit]"`` for
:mod:`voicefn.integrations.livekit`, ``voicefn[pipecat]`` for :mod:`voicefn.integrations.pipecat`.
Importing a submodule without its extra raises an ``ImportError`` that names the extra
(:func:`voicefn.integrations._guard.require`).
"""
