"""YAML "billion laughs" documents: a few hundred bytes that expand to billions of strings."""

from __future__ import annotations

__all__ = ["alias_bomb"]


def alias_bomb(field: str, levels: int = 10) -> str:
    """A spec whose ``field`` is a few hundred bytes of YAML aliases standing for 9**levels strings."""
    items = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return f"name: s\ndataset: demo\n{field}: [{', '.join(items)}]\n"
