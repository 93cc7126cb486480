"""Model builders: the plain child network (and, for search, the supernets)."""

from tfnas.models.child import ChannelShuffle, ChannelSplit, SqueezeExcite, build_child

__all__ = ["ChannelShuffle", "ChannelSplit", "SqueezeExcite", "build_child"]
