"""PyTorch modules for the ONNX/PyTorch tests, each behind a factory edgepipe calls (``foreign_nets.py:heads``).

Every factory returns ``(module, example_input)``, the convention of
docs/onnx-pytorch.md. Weights are random with fixed seeds, batch-norm
statistics too (so folding them is exercised); nothing is downloaded.
``dscnn_kws`` and ``mobilenet_v2_small`` follow their papers' architectures
(MLPerf Tiny's DS-CNN keyword spotter; MobileNetV2's inverted residuals).
"""

from __future__ import annotations

import torch
from torch import nn


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module.eval()


class Heads(nn.Module):
    """Conv + BN + ReLU, a depthwise-separable block with a residual add, and two outputs:
    class scores (softmax over a pooled vector) and a 2-channel map (NCHW in PyTorch)."""

    output_names = ["scores", "mask"]

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.cls = nn.Linear(8, 5)
        self.seg = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.stem(x)
        y = torch.relu(self.pw(self.dw(y)) + y)
        return torch.softmax(self.cls(y.mean(dim=(2, 3))), dim=-1), self.seg(y)


def heads():
    torch.manual_seed(0)
    return _seeded(Heads(), 1), torch.zeros(1, 3, 16, 16)


class TinyKws(nn.Module):
    """A small DS-CNN on 10 frames × 8 coefficients (one channel): conv, two depthwise-separable
    blocks, average pooling, a flattened classifier (so the NCHW flatten order matters)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, (5, 3), stride=2, padding=(2, 1)), nn.BatchNorm2d(16), nn.ReLU())
        blocks = []
        for _ in range(2):
            blocks += [nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
                       nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(16 * 5 * 4, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.blocks(self.conv(x)), 1))


def tiny_kws():
    torch.manual_seed(2)
    return _seeded(TinyKws(), 3), torch.zeros(1, 1, 10, 8)


class DsCnn(nn.Module):
    """MLPerf Tiny's keyword-spotting DS-CNN (Zhang et al., "Hello Edge", DS-CNN-S as MLPerf Tiny trains it):
    49 frames × 10 MFCCs, conv 64 (10×4, stride 2), four depthwise-separable blocks of 64, average pool,
    12 classes."""

    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(1, 64, (10, 4), stride=2, padding=(5, 1)), nn.BatchNorm2d(64), nn.ReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(64, 12)

    def forward(self, x):
        return torch.softmax(self.fc(self.features(x).mean(dim=(2, 3))), dim=-1)


def dscnn_kws():
    torch.manual_seed(4)
    return _seeded(DsCnn(), 5), torch.zeros(1, 1, 49, 10)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class MobileNetV2Small(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) at width 0.35 on 64×64 RGB, the paper's block table cut after
    the 32-channel stage: stem conv (stride 2), inverted residuals (expansion 6, ReLU6, linear
    bottlenecks, residuals where shapes allow), 1×1 conv to 128, global pool, 10 classes."""

    def __init__(self):
        super().__init__()
        cfg = [(1, 8, 1, 1), (6, 8, 2, 2), (6, 16, 3, 2), (6, 24, 4, 2), (6, 32, 3, 1)]
        layers = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()]
        cin = 16
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128, 10)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def mobilenet_v2_small():
    torch.manual_seed(6)
    return _seeded(MobileNetV2Small(), 7), torch.zeros(1, 3, 64, 64)


def not_a_pair():
    """A factory that breaks the convention: the module alone."""
    return heads()[0]


class Spectrum(nn.Module):
    """An FFT, which the TorchScript ONNX exporter cannot export."""

    def forward(self, x):
        return torch.fft.rfft(x).abs()


def spectrum():
    return Spectrum().eval(), torch.zeros(1, 16)


class ImageAndMeta(nn.Module):
    """Two inputs (an NCHW image and a vector of 4), named by the example dict; one output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8 + 4, 3)

    def forward(self, image, meta):
        return self.fc(torch.cat([self.conv(image).mean(dim=(2, 3)), meta], dim=1))


def image_and_meta():
    torch.manual_seed(8)
    return _seeded(ImageAndMeta(), 9), {"image": torch.zeros(1, 3, 16, 16), "meta": torch.zeros(1, 4)}


class DictHeads(nn.Module):
    """forward returns a dict: its keys name the outputs."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Linear(6, 3)
        self.box = nn.Linear(6, 3)

    def forward(self, x):
        return {"logits": self.logits(x), "box": torch.sigmoid(self.box(x))}


def dict_heads():
    torch.manual_seed(10)
    return DictHeads().eval(), torch.zeros(1, 6)
