"""STAND-IN of the AUTOMATIC1111 WebUI 1.10.1 interfaces that A-STAR uses, for tests only.

Nothing here is WebUI code. Each piece imitates the behaviour, signatures and call order of the
WebUI file named in its docstring, written from reading that source; tests that use it say so.
"""
