"""Tests on real machines: qemu guests with their own kernels (see machines.py)."""
