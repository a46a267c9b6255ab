"""Thin ctypes wrappers over the Linux system calls the engine needs (a leaf: imports nothing of ours)."""
