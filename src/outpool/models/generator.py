"""The attribute-conditioned generator: an Attribute2Image-style conditional VAE (Yan et al.).

Images x (B, 3, 64, 64) in [0, 1] (the model works in [-1, 1] internally); attribute strengths
y (B, N) in the dataset's units, keyed by ``attributes`` (names), standardised inside the model
with the training set's mean and std (which travel in the checkpoint: the control network scales
its outputs with them); latent z (B, M).

Architecture of the authors' code, with widths scaled by one ``width`` knob (the original:
width 64, feature 1024, z 256):
- encoder q(z | x, y): 4 conv blocks (w, 2w, 4w, 4w; BatchNorm, ReLU, pooling) to a feature,
  y embedded by Linear+ReLU, the two mixed linearly into the mean and log-variance of z;
- decoder p(x | y, z): y embedded by Linear+ReLU, mixed linearly with z, Linear to (4w, 8, 8),
  conv blocks with nearest-neighbour upsampling 8 -> 16 -> 32 -> 64, then two 5x5 convs: the
  pixel mean (tanh) and the pixel log-variance (a Gaussian likelihood, as in the original).

The latent prior: after training, a full-covariance Gaussian is fitted to the training images'
mean codes (``fit_prior``; ex-post density estimation, Ghosh et al. 2020), since those codes do
not fill N(0, I) and a z drawn from N(0, I) can be a code the decoder never saw; its scale is
robust, fitted to where the bulk of the codes lie rather than inflated by the few far out. The
public methods speak of the prior's standard-normal coordinates u: ``sample(y, u)`` decodes
z = prior_mean + prior_scale @ u and ``latent(x, y)`` returns an image's u, so the prior over u
is N(0, I), as in Attribute2Image. Whatever draws or optimises latents (the control network's z
halves) works in u and renders with ``decode(y, from_standard(u))``, through which gradients
flow. ``encode`` / ``decode`` are the networks' own q and p on raw codes z; before the fit the
prior is N(0, I) itself.

Colour layers (``colour_layers``): the decoder also draws K soft masks, each filled with one
colour and added to the pixel mean, since an object's colour is one per-image vector times a
shape, which a plain conv decoder learns slowly. Each layer's colour is a hue (the chroma part of
a linear function of z, scaled to unit length) times a strength (softplus of a linear function
of the standardised y alone): z chooses the colour, y how vivid it is, the same way at every z.

The pixel mean is a tanh, as in the original; training penalises pre-tanh means beyond +-3
(``Pass.excess``), where tanh passes almost no gradient and a pixel pushed there would stay
saturated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from outpool.errors import ConfigError, DataError
from outpool.models.backbone import conv_block

# tanh passes gradient inside this range of pre-activations (tanh(3) = 0.995); the training
# loss penalises the excess (``Pass.excess``)
PRE_LIVE = 3.0
SOFTPLUS_ONE = 0.5413  # softplus(0.5413) = 1: a strength of 1 at the start


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of the conditional VAE."""

    z_dim: int = 64  # latent size M (the original: 256)
    width: int = 32  # channels of the first conv block w; the blocks use w, 2w, 4w, 4w
    feature: int = 512  # the encoder's image feature (the original: 1024)
    y_embed: int = 64  # size of the strengths' embedding, in the encoder and the decoder
    hidden: int = 256  # the decoder's code mixing y and z
    logvar_range: tuple[float, float] = (-7.0, 1.0)  # pixel log-variance clamp (stability)
    colour_layers: int = 4  # K masks, each filled with a hue from z times a strength from y

    def __post_init__(self) -> None:
        if self.colour_layers < 0:
            raise ConfigError(f"colour_layers must be >= 0, got {self.colour_layers}")


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest-neighbour 2x upsampling, 3x3 conv, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Pass(NamedTuple):
    """What one training pass of the VAE gives: each (B, ...)."""

    mean: torch.Tensor  # pixel mean in [0, 1]
    pix_logvar: torch.Tensor
    z_mean: torch.Tensor
    z_logvar: torch.Tensor
    # per image, the summed square of how far pre-tanh means went past +-PRE_LIVE: a pixel
    # pushed far past white sits where tanh passes no gradient and stays a white spot
    excess: torch.Tensor


class ConditionalVAE(nn.Module):
    """q(z | x, y) and p(x | y, z) for one set of named attributes."""

    y_mean: torch.Tensor
    y_std: torch.Tensor
    prior_mean: torch.Tensor
    prior_scale: torch.Tensor

    def __init__(
        self,
        config: GeneratorConfig,
        *,
        attributes: tuple[str, ...],
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.attributes = attributes
        n, w, m = len(attributes), config.width, config.z_dim
        self.register_buffer("y_mean", y_mean.detach().float().reshape(n))
        self.register_buffer("y_std", y_std.detach().float().reshape(n).clamp_min(1e-6))
        # the latent prior N(prior_mean, prior_scale prior_scale^T); N(0, I) until fit_prior
        self.register_buffer("prior_mean", torch.zeros(m))
        self.register_buffer("prior_scale", torch.eye(m))
        # encoder
        self.enc = nn.Sequential(
            conv_block(3, w),
            conv_block(w, 2 * w),
            conv_block(2 * w, 4 * w),
            conv_block(4 * w, 4 * w),
            nn.Flatten(),
            nn.Linear(4 * w * 4 * 4, config.feature),
            nn.ReLU(inplace=True),
        )
        self.enc_y = nn.Sequential(nn.Linear(n, config.y_embed), nn.ReLU(inplace=True))
        self.enc_mu = nn.Linear(config.feature + config.y_embed, m)
        self.enc_logvar = nn.Linear(config.feature + config.y_embed, m)
        # decoder
        self.dec_y = nn.Sequential(nn.Linear(n, config.y_embed), nn.ReLU(inplace=True))
        self.dec_mix = nn.Linear(m + config.y_embed, config.hidden)
        self.dec_fc = nn.Sequential(nn.Linear(config.hidden, 4 * w * 8 * 8), nn.ReLU(inplace=True))
        self.dec_conv = nn.Sequential(up_block(4 * w, 2 * w), up_block(2 * w, w), up_block(w, w))
        self.dec_mean = nn.Conv2d(w, 3, 5, padding=2)
        self.dec_logvar = nn.Conv2d(w, 3, 5, padding=2)
        k = config.colour_layers
        self.colour_masks = nn.Conv2d(w, k, 5, padding=2) if k else None
        self.colour_values = nn.Linear(m, 3 * k) if k else None  # the hue, from z
        # how vivid, from y: a product lets y set the strength while z sets which colour (a
        # sum could only add a fixed colour)
        self.colour_gains = nn.Linear(n, k) if k else None
        if self.colour_values is not None and self.colour_gains is not None:
            nn.init.zeros_(self.colour_values.weight)  # starts as the plain decoder
            nn.init.zeros_(self.colour_values.bias)
            nn.init.zeros_(self.colour_gains.weight)  # starts at strength 1
            nn.init.constant_(self.colour_gains.bias, SOFTPLUS_ONE)

    def standardise(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, M) of q(z | x, y); x in [0, 1]."""
        h = torch.cat([self.enc(x * 2 - 1), self.enc_y(self.standardise(y))], dim=1)
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel mean in [0, 1] and pixel log-variance (in [-1, 1] units), each (B, 3, 64, 64)."""
        pre, logvar = self.decode_pre(y, z)
        return (torch.tanh(pre) + 1) / 2, logvar

    def decode_pre(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``decode`` before the tanh of the mean (whose [-1, 1] is the image's [0, 1])."""
        ys = self.standardise(y)
        code = self.dec_mix(torch.cat([z, self.dec_y(ys)], dim=1))
        h = self.dec_fc(code).view(len(z), 4 * self.config.width, 8, 8)
        h = self.dec_conv(h)
        pre = self.dec_mean(h)
        if self.colour_masks is not None:
            masks = torch.sigmoid(self.colour_masks(h))  # (B, K, H, W)
            pre = pre + torch.einsum("bkhw,bkc->bchw", masks, self.layer_colours(ys, z))
        lo, hi = self.config.logvar_range
        return pre, self.dec_logvar(h).clamp(lo, hi)

    def layer_colours(self, ys: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The colour (B, K, RGB) each colour layer adds, from standardised y and z."""
        assert self.colour_values is not None and self.colour_gains is not None
        # a hue from z: the chroma part of a colour (its grey removed), scaled to length 1
        # (softly, so that the zero start has no direction and a zero gradient is not a NaN)
        c = self.colour_values(z).view(len(z), -1, 3)
        c = c - c.mean(-1, keepdim=True)
        hue = c / torch.sqrt((c * c).sum(-1, keepdim=True) + 0.01)
        # how vivid, from y alone: the same rise for every z
        strength = nn.functional.softplus(self.colour_gains(ys))
        return hue * strength.unsqueeze(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Pass:
        """One reparameterised pass (see ``Pass``)."""
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        pre, pix_logvar = self.decode_pre(y, z)
        excess = ((pre.abs() - PRE_LIVE).relu() ** 2).flatten(1).sum(1)
        return Pass((torch.tanh(pre) + 1) / 2, pix_logvar, mu, logvar, excess)

    def from_standard(self, u: torch.Tensor) -> torch.Tensor:
        """Codes z (B, M) of the prior's standard-normal coordinates u (B, M)."""
        return self.prior_mean + u @ self.prior_scale.T

    @torch.no_grad()
    def latent(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The prior coordinates u (B, M) of the encoder's mean code: sample(y, latent(x, y))
        is reconstruct(x, y)."""
        z = self.encode(x, y)[0] - self.prior_mean
        return torch.linalg.solve_triangular(self.prior_scale, z.T, upper=False).T

    @torch.no_grad()
    def fit_prior(self, codes: torch.Tensor, ridge: float = 1e-4) -> None:
        """Make the prior a Gaussian of ``codes`` (N, M), the training images' mean codes: their
        mean, and their covariance scaled so that the codes' median Mahalanobis radius is the
        median radius of M-dimensional standard normal samples. The codes are heavy-tailed (a
        dense core, a few far out), so the plain covariance puts most samples on a shell that
        holds few codes; the robust scale puts them where the codes are. ``ridge`` keeps a
        direction the codes never use (zero variance) invertible."""
        if len(codes) < 2:
            raise DataError(f"fitting the latent prior needs at least 2 images, got {len(codes)}")
        m = codes.shape[1]
        eye = torch.eye(m, dtype=torch.double, device=codes.device)
        mean = codes.double().mean(0)
        scale = torch.linalg.cholesky(torch.cov(codes.T.double()) + ridge * eye)
        centred = (codes.double() - mean).T
        radius2 = (torch.linalg.solve_triangular(scale, centred, upper=False) ** 2).sum(0)
        factor = torch.sqrt(radius2.median() / chi2_median(m))
        self.prior_mean.copy_(mean.float())
        self.prior_scale.copy_((factor * scale).float())

    @torch.no_grad()
    def sample(self, y: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 3, 64, 64) in [0, 1] for strengths y (B, N) at prior coordinates u
        (default: drawn from N(0, I))."""
        if u is None:
            u = torch.randn(len(y), self.config.z_dim, device=y.device)
        return self.decode(y, self.from_standard(u))[0]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image at the encoder's mean z."""
        return self.decode(y, self.encode(x, y)[0])[0]


def chi2_median(dof: int) -> float:
    """Median of the chi-squared distribution with ``dof`` degrees of freedom (Wilson-Hilferty:
    1.3% high at 2 degrees of freedom, within 0.1% from 8 on)."""
    return dof * (1.0 - 2.0 / (9.0 * dof)) ** 3
