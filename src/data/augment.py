"""Augmentation of whole batches on their device: a random affine (rotation, translation, scale)
and Simard et al.'s elastic distortion, in one grid_sample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(
    images: Tensor,
    degrees: float,
    translate: float,
    scale: float,
    elastic_alpha: float,
    elastic_sigma: float,
) -> Tensor:
    """Random affine (rotation, translation, scale) of a whole float batch, plus an elastic
    distortion when elastic_alpha > 0, in one grid_sample."""
    n = images.shape[0]
    angle = torch.empty(n, device=images.device).uniform_(-degrees, degrees).deg2rad()
    zoom = torch.empty(n, device=images.device).uniform_(1 - scale, 1 + scale)
    shift = torch.empty(n, 2, device=images.device).uniform_(-2 * translate, 2 * translate)
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    theta = torch.cat([theta, shift.unsqueeze(2)], 2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if elastic_alpha > 0:
        grid = grid + elastic_displacement(images, elastic_alpha, elastic_sigma)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def elastic_displacement(images: Tensor, alpha: float, sigma: float) -> Tensor:
    """Simard et al.'s elastic distortion (2003): random displacements in [-1, 1] per pixel,
    smoothed by a Gaussian of `sigma` pixels and scaled by `alpha` pixels; returned in
    grid_sample's coordinates, [N, H, W, (x, y)]."""
    n, _, height, width = images.shape
    noise = torch.empty(n, 2, height, width, device=images.device).uniform_(-1, 1)
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=noise.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    # The 2-D Gaussian as two 1-D passes, x then y, each channel (x and y shift) on its own.
    smooth = F.conv2d(
        noise, kernel.view(1, 1, 1, -1).expand(2, 1, 1, -1), padding=(0, radius), groups=2
    )
    smooth = F.conv2d(
        smooth, kernel.view(1, 1, -1, 1).expand(2, 1, -1, 1), padding=(radius, 0), groups=2
    )
    pixels_to_grid = torch.tensor([2 / width, 2 / height], device=images.device)
    return (alpha * smooth.permute(0, 2, 3, 1) * pixels_to_grid).to(images.dtype)
