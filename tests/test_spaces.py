"""Search spaces as data: registry, Arch validation, spec-derived costs."""

import json

import numpy as np
import pytest
import yaml

from conftest import PIXEL1_LUT, require
from tfnas.errors import TfnasError
from tfnas.spaces import Arch, costs, get_space, list_spaces, parse_arch, total

SPACES = list_spaces()


def test_registry_lists_the_four_spaces_and_fails_loudly():
  assert set(SPACES) >= {"proxyless_mobile", "proxyless_cifar", "spos_shufflenet", "fbnet_cifar"}
  with pytest.raises(TfnasError, match="unknown search space 'nope'.*proxyless_mobile"):
    get_space("nope")


@pytest.mark.parametrize("name", SPACES)
def test_references_and_random_archs_round_trip(name):
  space = get_space(name)
  refs = dict(space.references)
  for key in ("smallest", "largest"):
    assert key in refs
  rng = np.random.default_rng(0)
  archs = [parse_arch(space, r) for r in refs]
  for _ in range(20):
    ops = [int(rng.integers(len(b.ops))) for b in space.choice_blocks]
    chans = ([int(rng.integers(len(b.mid_scales))) for b in space.choice_blocks]
             if space.has_channel_choices else None)
    archs.append(Arch.create(space, ops, chans))
  for arch in archs:
    assert parse_arch(space, arch.to_string(space)) == arch
    assert parse_arch(space, json.dumps(arch.to_json(space))) == arch
    assert parse_arch(space, arch.to_json(space)) == arch
  small, large = (total(space, parse_arch(space, r)).macs for r in ("smallest", "largest"))
  assert all(small <= total(space, a).macs <= large for a in archs if a.channels is None
             or all(space.choice_blocks[i].mid_scales[c] == 1.0 for i, c in enumerate(a.channels)))


def test_proxyless_mobile_layout():
  space = get_space("proxyless_mobile")
  assert space.input_shape == (224, 224, 3)
  assert space.stem == (32, 3, 2)
  first = space.blocks[0]
  assert first.name == "first" and first.out_shape == (112, 112, 16) and len(first.ops) == 1
  blocks = space.choice_blocks
  assert len(blocks) == 21
  assert [b.out_shape[2] for b in blocks] == [24] * 4 + [40] * 4 + [80] * 4 + [96] * 4 + [192] * 4 + [320]
  assert [b.stride for b in blocks if b.stride == 2] == [2, 2, 2, 2]
  for b in blocks:
    assert ("zero" in b.op_names) == (b.in_shape == b.out_shape and b.stride == 1)
    assert b.op_names[:6] == ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")
  assert space.blocks[-1].out_shape == (7, 7, 320) and space.head.conv_filters == 1280
  assert space.head.num_classes == 1000


def test_proxyless_mobile_shapes_are_exactly_the_pixel1_table_keys():
  table = yaml.safe_load(open(require(PIXEL1_LUT)))
  space = get_space("proxyless_mobile")
  fmt = lambda s: "x".join(map(str, s))
  for b in space.blocks:
    for op in b.ops:
      if op.name == "zero":
        continue
      key = (f"expanded_conv-input:{fmt(b.in_shape)}-output:{fmt(b.out_shape)}-expand:"
             f"{op.expand}-kernel:{op.kernel}-stride:{b.stride}-idskip:{int(b.same_shape)}")
      assert key in table, key
  assert f"Conv-input:224x224x3-output:{fmt(space.stem_layers[0].out_shape)}" in table
  assert "Conv_1-input:7x7x320-output:7x7x1280" in table


def test_proxyless_cifar_layout_keeps_last_stage_at_4x4():
  space = get_space("proxyless_cifar")
  assert space.input_shape == (32, 32, 3) and space.stem[2] == 1
  assert space.blocks[-1].out_shape == (4, 4, 320)
  assert space.head.num_classes == 10


def test_spos_and_fbnet_layouts():
  spos = get_space("spos_shufflenet")
  assert [b.out_shape[2] for b in spos.choice_blocks] == [64] * 4 + [160] * 4 + [320] * 8 + [640] * 4
  assert [i for i, b in enumerate(spos.choice_blocks) if b.stride == 2] == [0, 4, 8, 16]
  assert spos.blocks[-1].out_shape == (7, 7, 640)
  assert spos.choice_blocks[0].op_names == ("choice_3", "choice_5", "choice_7", "choice_x")
  assert spos.choice_blocks[0].mid_scales == (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
  fb = get_space("fbnet_cifar")
  assert len(fb.choice_blocks) == 22 and fb.head.num_classes == 100
  assert fb.choice_blocks[0].op_names == ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1",
                                          "k5_e1_g2", "k5_e3", "k5_e6", "skip")
  assert [b.out_shape[2] for b in fb.choice_blocks] == (
      [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352])
  assert fb.blocks[-1].out_shape == (4, 4, 352)


@pytest.mark.parametrize("value, pattern", [
    ([0] * 20, r"has 20 choices; expected 21"),
    ([0] * 20 + [9], r"block b20: op index 9 out of range; allowed: 0=k3_e3"),
    (["zero"] + [0] * 20, r"block b00: op 'zero' is not allowed \('zero' needs equal"),
    (["k9_e3"] + [0] * 20, r"block b00: op 'k9_e3' is not allowed; allowed:"),
    ("proxyless_mobile:k3_e3", r"has 1 choices; expected 21"),
    ("spos_shufflenet:" + ",".join(["choice_3"] * 20), r"belongs to space 'spos_shufflenet'"),
    ("all_k3_e9", r"neither a reference"),
    ("{not json", r"arch JSON is malformed"),
    ("", r"empty arch"),
])
def test_invalid_archs_name_block_value_and_allowed(value, pattern):
  with pytest.raises(TfnasError, match=pattern):
    parse_arch(get_space("proxyless_mobile"), value)


def test_channel_choices_validate():
  space = get_space("spos_shufflenet")
  arch = parse_arch(space, ",".join(["choice_x@0.6"] * 20))
  assert arch.mid_scales(space) == [0.6] * 20
  with pytest.raises(TfnasError, match=r"block b00: channel scale '0.7' not allowed"):
    parse_arch(space, ",".join(["choice_x@0.7"] * 20))
  with pytest.raises(TfnasError, match="give '@scale' on every block"):
    parse_arch(space, ",".join(["choice_x@0.6"] + ["choice_3"] * 19))
  assert total(space, arch).macs < total(space, parse_arch(space, "all_choice_x")).macs


def test_costs_are_additive_and_change_with_resolution():
  space = get_space("proxyless_mobile")
  arch = parse_arch(space, "all_k3_e6")
  parts = costs(space, arch)
  assert [p.name for p in parts][:3] == ["stem", "first", "b00"]
  t = total(space, arch)
  assert t.macs == sum(p.macs for p in parts) and t.params == sum(p.params for p in parts)
  small = get_space("proxyless_mobile", resolution=112)
  assert total(small, arch).params == t.params
  # Half the side is about a quarter of the MACs (the 7x7 stages round up to 4x4).
  assert 0.25 <= total(small, arch).macs / t.macs < 0.3
