"""LeNet-5, AlexNet, VGG: the classic plain stacks of seeds 000-004."""
from __future__ import annotations

from cnngraph.dsl import (Net, adaptive_avgpool2d, conv2d, dropout, flatten, linear, maxpool2d, relu, scope)

from . import register


@register("lenet5", (1, 28, 28), "LeNet-5 as in seed 003: 1×28×28, 5×5 convs pad 2, ReLU, max-pool", family="lenet")
def lenet5(input=(1, 28, 28), num_classes: int = 10):
    net = Net("lenet5")
    x = net.input(*input)
    x = relu(conv2d(x, 20, 5, padding=2, name="conv1"), name="relu1")
    x = maxpool2d(x, 2, 2, name="pool1")
    x = relu(conv2d(x, 50, 5, padding=2, name="conv2"), name="relu2")
    x = maxpool2d(x, 2, 2, name="pool2")
    x = flatten(x, name="flatten")
    x = relu(linear(x, 500, name="fc1"), name="relu3")
    linear(x, num_classes, name="fc2")
    return net.graph


@register("alexnet", (3, 227, 227), "AlexNet, 64-filter version of the slides and torchvision (names: torchvision's)",
          family="alexnet")
def alexnet(input=(3, 227, 227), num_classes: int = 1000, avgpool: bool = False, dropout_p: float = 0.5):
    """torchvision's AlexNet. ``avgpool=True`` adds its AdaptiveAvgPool2d(6), a no-op at 224 and 227
    that the slides' table leaves out."""
    net = Net("alexnet")
    x = net.input(*input)
    with scope("features", "stage"):
        x = relu(conv2d(x, 64, 11, stride=4, padding=2, name="0", title="conv1"), name="1")
        x = maxpool2d(x, 3, 2, name="2", title="pool1")
        x = relu(conv2d(x, 192, 5, padding=2, name="3", title="conv2"), name="4")
        x = maxpool2d(x, 3, 2, name="5", title="pool2")
        x = relu(conv2d(x, 384, 3, padding=1, name="6", title="conv3"), name="7")
        x = relu(conv2d(x, 256, 3, padding=1, name="8", title="conv4"), name="9")
        x = relu(conv2d(x, 256, 3, padding=1, name="10", title="conv5"), name="11")
        x = maxpool2d(x, 3, 2, name="12", title="pool5")
    if avgpool:
        x = adaptive_avgpool2d(x, 6, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = dropout(x, dropout_p, name="0")
        x = relu(linear(x, 4096, name="1", title="fc6"), name="2")
        x = dropout(x, dropout_p, name="3")
        x = relu(linear(x, 4096, name="4", title="fc7"), name="5")
        linear(x, num_classes, name="6", title="fc8")
    return net.graph


VGG_CFGS = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def vgg(input=(3, 224, 224), depth: int = 16, num_classes: int = 1000, batch_norm: bool = False,
        avgpool: bool = False, dropout_p: float = 0.5):
    """VGG-11/13/16/19 (configurations A, B, D, E), torchvision's names (``features.N``).

    Node titles follow seed 002 (``conv1-1`` ... ``conv5-3``, ``pool1`` ... ``fc8``).
    """
    from cnngraph.dsl import batchnorm

    net = Net(f"vgg{depth}" + ("_bn" if batch_norm else ""))
    x = net.input(*input)
    i = 0
    with scope("features", "stage"):
        for s, stage in enumerate(VGG_CFGS[depth], 1):
            for j, c in enumerate(stage, 1):
                x = conv2d(x, c, 3, padding=1, name=str(i), title=f"conv{s}-{j}")
                i += 1
                if batch_norm:
                    x = batchnorm(x, name=str(i))
                    i += 1
                x = relu(x, name=str(i))
                i += 1
            x = maxpool2d(x, 2, 2, name=str(i), title=f"pool{s}")
            i += 1
    if avgpool:
        x = adaptive_avgpool2d(x, 7, name="avgpool")
    x = flatten(x, name="flatten")
    with scope("classifier", "stage"):
        x = relu(linear(x, 4096, name="0", title="fc6"), name="1")
        x = dropout(x, dropout_p, name="2")
        x = relu(linear(x, 4096, name="3", title="fc7"), name="4")
        x = dropout(x, dropout_p, name="5")
        linear(x, num_classes, name="6", title="fc8")
    return net.graph


for _d in (11, 13, 16, 19):
    register(f"vgg{_d}", (3, 224, 224), f"VGG-{_d} (torchvision's vgg{_d})", family="vgg", depth=_d)(vgg)
    register(f"vgg{_d}_bn", (3, 224, 224), f"VGG-{_d} with batch norm (torchvision's vgg{_d}_bn)", family="vgg",
             depth=_d, batch_norm=True)(vgg)
