"""Search spaces as data, the `Arch` value and the registry."""

from tfnas.spaces.analysis import Cost, costs, total, trainable_params
from tfnas.spaces.arch import Arch, parse_arch, resolve_arch
from tfnas.spaces.registry import get_space, list_spaces, register
from tfnas.spaces.spec import Block, Head, LayerSpec, Op, OpGraph, SearchSpace

__all__ = ["Arch", "Block", "Cost", "Head", "LayerSpec", "Op", "OpGraph", "SearchSpace",
           "costs", "get_space", "list_spaces", "parse_arch", "register", "resolve_arch", "total",
           "trainable_params"]
