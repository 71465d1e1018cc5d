"""Search-space files and their loader (installed as ``lpgnas.search_spaces``)."""

__all__: list[str] = []
