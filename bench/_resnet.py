"""A faithful ResNet-50 (torchvision's architecture and module names), with random weights.

Why not ``torchvision.models.resnet50``: beside the torch 2.13 installed here, torchvision's
PyPI wheel does not import (its compiled C++ operators fail to register against this torch),
and superwidgets must not depend on it anyway. This file re-creates torchvision's
``ResNet``/``Bottleneck`` code (v1.5: the stride sits on the 3 × 3 convolution) line for line:

* the same modules under the same names: ``conv1, bn1, relu, maxpool, layer1 … layer4,
  avgpool, fc``; inside each stage ``layerN.i.{conv1, bn1, conv2, bn2, conv3, bn3, relu,
  downsample}``, so a site such as ``layer3`` or ``layer3.5.conv2`` is the same path as in a
  torchvision model (and a torchvision ``state_dict`` loads into it unchanged);
* Bottleneck blocks ``[3, 4, 6, 3]``, widths 64, 128, 256, 512 (× 4 = 256 … 2,048 output
  channels), BatchNorm after every convolution, in-place ReLUs, a 1 × 1 strided
  ``downsample`` on the first block of each stage;
* torchvision's initialisation: Kaiming-normal (``fan_out``, ReLU) convolutions, BatchNorm
  weights 1 and biases 0, PyTorch's default for ``fc``.

25.6 M parameters and 4.1 GFLOPs per 224 × 224 image, like the original: random weights cost
the same compute as pretrained ones, which is what the benchmarks measure.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Bottleneck", "ResNet", "resnet50"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3 × 3 convolution with padding 1 and no bias (torchvision's ``conv3x3``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1 × 1 convolution with no bias (torchvision's ``conv1x1``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """torchvision's ``Bottleneck``: 1 × 1 → 3 × 3 (strided) → 1 × 1 convolutions plus the identity.

    Parameters
    ----------
    inplanes : int
        Input channels.
    planes : int
        Width of the inner convolutions; the block outputs ``planes * 4`` channels.
    stride : int
        Stride of the 3 × 3 convolution (2 on the first block of stages 2–4).
    downsample : nn.Module, optional
        Maps the input to the output's shape for the residual sum.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        width = planes
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output ``relu(F(x) + identity(x))``."""
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """torchvision's ``ResNet`` for Bottleneck blocks.

    Parameters
    ----------
    layers : list of int
        Blocks per stage (``[3, 4, 6, 3]`` for ResNet-50).
    num_classes : int
        Outputs of the final ``fc`` layer.
    """

    def __init__(self, layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, num_classes)`` for images ``(n, 3, H, W)``."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def resnet50(num_classes: int = 1000, seed: int = 0) -> ResNet:
    """A ResNet-50 with torchvision's architecture and initialisation, random weights, in eval mode.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc`` (1,000 like ImageNet's).
    seed : int
        Seed of the weight initialisation (the global RNG state is restored afterwards).

    Returns
    -------
    ResNet
        The model, in eval mode (BatchNorm uses its running statistics: mean 0, variance 1).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNet([3, 4, 6, 3], num_classes=num_classes)
    return model.eval()


def main(reps: int = 15, threads: int = 2) -> dict[str, float]:
    """Measure FeatureLab on ResNet-50 at ``layer3``: one steering update ÷ one plain forward.

    Run as ``python -m bench._resnet``. The shown image is one random 224 × 224 image; the
    widget steers ``layer3`` channel 5 (a new amount at every repetition, so every update
    is a real change) with no cohort attached (``cohort_top=0``: the shown image only). The
    plain forward is ``model(image)`` with the lens's edits off. Both are timed interleaved,
    ``reps`` times, and the median of the paired ratios is printed as JSON.

    Parameters
    ----------
    reps : int
        Paired repetitions.
    threads : int
        Torch CPU threads.

    Returns
    -------
    dict
        ``update_s``, ``engine_s``, ``forward_s`` (medians, seconds), ``ratio`` (widget update ÷
        forward), ``engine_ratio`` (``lens.run`` of the edited image ÷ forward).
    """
    import superwidgets as sw

    from ._common import emit, interleaved, median, paired_ratio, set_threads

    set_threads(threads)
    model = resnet50()
    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    lens = sw.Lens(model)
    lab = sw.FeatureLab(lens, inputs=images, site="layer3", cohort_top=0)
    x = images[:1]
    amount = iter(range(1, 1_000_000))

    def update() -> None:
        s = lab.steer.copy()
        s[5] = float(next(amount) % 7 + 1)
        lab.steer = s
        if lab.error:
            raise RuntimeError(lab.error)

    steer = lab.edits[-1]
    shown = lab.session.x(0)

    def engine() -> None:
        steer.update(alpha=float(next(amount) % 7 + 1) / 4)
        lens.run(shown, capture=["layer3"])

    def forward() -> None:
        with lens.off(), torch.no_grad():
            model(x)

    samples = interleaved({"update": update, "engine": engine, "forward": forward}, reps=reps, warmup=2)
    out = {
        "update_s": median(samples["update"]),
        "engine_s": median(samples["engine"]),
        "forward_s": median(samples["forward"]),
        "ratio": paired_ratio(samples["update"], samples["forward"]),
        "engine_ratio": paired_ratio(samples["engine"], samples["forward"]),
        "resume": lens.resume_info,
        "threads": threads,
    }
    emit({"bench": "resnet50_layer3_steer", **{k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}})
    lens.close()
    return out


if __name__ == "__main__":
    main()
