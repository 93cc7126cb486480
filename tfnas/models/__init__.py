"""Model builders: the plain child network (and, for search, the supernets)."""

from tfnas.models.child import (ChannelShuffle, ChannelSplit, HardSwish, SqueezeExcite,
                                build_child)

__all__ = ["ChannelShuffle", "ChannelSplit", "HardSwish", "SqueezeExcite", "build_child"]
