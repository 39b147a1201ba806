"""Train many small networks as one: compatible trials (same architecture, optimizer settings,
epochs, batch size and dataset; any seed, init scheme, freeze mode) stacked into one network whose
layers are grouped over the members, each with its own data order, BatchNorm statistics, frozen or
trained filters and divergence check, each ending in the RunResult its lone train() run would give
(equal within float tolerance in fp32; tests/test_ensemble.py).

    grouping  the grouped network: Ensemble, GroupedLinear, which layers it supports, member_images
    plan      which trials train together: ensemble_key, compatible, group_compatible, the memory check;
              where it is the default (pays_off: accelerators, not the CPU)
    network   GroupedNetwork: the grouped network as train.train_group trains it (train.Network),
              member_losses
    loop      train_ensemble, estimate_time

Supported networks: built of Conv2d (any groups), BatchNorm2d, Linear on flat features, per-channel
layers (activations, pooling, flatten, Dropout(p=0)) and containers of these: our ConvMixers and
plain CNNs, timm's ConvMixers (convmixer_768_32, convmixer_1024_20_ks9_p14, convmixer_1536_20) and
other timm models of those layers (ResNets). Not supported, so trained one after another by
train(): timm's ConvNeXts (LayerNorm over channels, layer scale), models with timm's BatchNormAct2d
(EfficientNets, MobileNets), attention, dropout above 0, and our NIFF ConvMixers.

Why grouped convolutions and not torch.func.stack_module_state + vmap: vmap runs a batched-weight
conv2d as the same grouped convolution, but it cannot go through our swapped-convolution depthwise
backward (depthwise.py, a custom autograd Function), nor update stacked BatchNorm buffers in place
without functionalizing them (benchmarks/ensemble_throughput.py --vmap times one step both ways).
"""

from .grouping import Ensemble, GroupedLinear, grouping_problem, member_images, unsupported_layer
from .loop import estimate_time, train_ensemble
from .network import GroupedNetwork, member_losses
from .plan import (
    MEMBER_FIELDS,
    compatible,
    ensemble_key,
    group_compatible,
    max_members,
    member_bytes,
    pays_off,
    use_ensemble,
)

__all__ = ["MEMBER_FIELDS", "Ensemble", "GroupedLinear", "GroupedNetwork", "compatible", "ensemble_key",
           "estimate_time", "group_compatible", "grouping_problem", "max_members", "member_bytes", "member_images",
           "member_losses", "pays_off", "train_ensemble", "unsupported_layer", "use_ensemble"]
