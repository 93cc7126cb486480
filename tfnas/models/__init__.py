"""Model builders: the plain child network (and, for search, the supernets)."""

from tfnas.models.child import ChannelSplit, build_child

__all__ = ["ChannelSplit", "build_child"]
