"""DenseNet-BC (Huang et al. 2017, seed 002 "Densely Connected Convolutional Networks"), torchvision's names.

Inside a dense block every layer takes the concatenation of *all* preceding feature maps
(the block input and every earlier layer's ``growth_rate`` new maps) and adds
``growth_rate`` maps of its own: BN → ReLU → 1×1 conv (``bn_size·k`` maps, the "B" of
DenseNet-BC) → BN → ReLU → 3×3 conv (``k`` maps). Transitions halve the channels (the "C",
compression 0.5) with BN → ReLU → 1×1 conv and 2×2 average pooling.

The graph mirrors torchvision exactly: each dense layer concatenates its inputs itself
(``torch.cat`` in ``_DenseLayer.bn_function``, a copy even for the first layer's single
input) and the block ends with one more concatenation of everything.

>>> from cnngraph import analyze
>>> r = analyze(build_densenet(block_config=(6, 12, 24, 16)))
>>> r.total.params
7978856
>>> r.rows[-1].output_shape
(1000,)
"""
from __future__ import annotations

from cnngraph.dsl import (Net, adaptive_avgpool2d, avgpool2d, batchnorm, block, concat, conv2d, dropout, flatten,
                          linear, maxpool2d, relu, scope)

from cnngraph.zoo import register


@block("DenseLayer")
def dense_layer(features, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0):
    """H_l: concat(all previous maps) → BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv (k maps)."""
    x = concat(features, name="concat")
    x = conv2d(relu(batchnorm(x, name="norm1"), name="relu1"), bn_size * growth_rate, 1, bias=False, name="conv1")
    x = conv2d(relu(batchnorm(x, name="norm2"), name="relu2"), growth_rate, 3, padding=1, bias=False, name="conv2")
    return dropout(x, drop_rate, name="dropout") if drop_rate > 0 else x


@block("DenseBlock")
def dense_block(x, num_layers: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0):
    """``num_layers`` dense layers; the output has C + num_layers·k channels."""
    features = [x]
    for i in range(num_layers):
        features.append(dense_layer(features, growth_rate, bn_size, drop_rate, name=f"denselayer{i + 1}"))
    return concat(features, name="concat")


@block("Transition")
def transition(x, out_channels):
    """BN → ReLU → 1×1 conv to ``out_channels`` → 2×2/2 average pool."""
    x = conv2d(relu(batchnorm(x, name="norm"), name="relu"), out_channels, 1, bias=False, name="conv")
    return avgpool2d(x, 2, 2, name="pool")


def build_densenet(input=(3, 224, 224), growth_rate: int = 32, block_config=(6, 12, 24, 16),
                   num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0,
                   num_classes: int = 1000, title: str | None = None):
    """torchvision's DenseNet: 7×7/2 stem and 3×3/2 max pool, dense blocks with transitions
    between them, a final BN, ReLU, global average pool and ``classifier``."""
    net = Net(title or "densenet", growth_rate=growth_rate, block_config=tuple(block_config))
    x = net.input(*input)
    with scope("features", "stage"):
        x = conv2d(x, num_init_features, 7, stride=2, padding=3, bias=False, name="conv0")
        x = relu(batchnorm(x, name="norm0"), name="relu0")
        x = maxpool2d(x, 3, 2, padding=1, name="pool0")
        for i, num_layers in enumerate(block_config, 1):
            x = dense_block(x, num_layers, growth_rate, bn_size, drop_rate, name=f"denseblock{i}")
            if i != len(block_config):
                x = transition(x, x.C // 2, name=f"transition{i}")
        x = batchnorm(x, name="norm5")
    x = relu(x, name="relu")
    x = flatten(adaptive_avgpool2d(x, 1, name="avgpool"), name="flatten")
    return net.output(linear(x, num_classes, name="classifier")).graph


# name: (growth rate k, layers per block, stem width) -- Table 1 of Huang et al. 2017.
DENSENETS = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
}

for _d, (_k, _cfg, _init) in DENSENETS.items():
    register(f"densenet{_d}", (3, 224, 224), f"DenseNet-{_d}, torchvision's (k={_k})",
             family="densenet", growth_rate=_k, block_config=_cfg, num_init_features=_init,
             title=f"densenet{_d}")(build_densenet)
