"""Bit packing and Pallas aggregation kernels (installed as ``lpgnas.kernels``)."""

__all__: list[str] = []
