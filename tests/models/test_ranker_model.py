"""DeepSTN ranker: shapes, the STN's gradient path, the identity crop, feature-axis joining."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from outpool.errors import ConfigError, UnknownNameError
from outpool.models.ranker import STAGES, DeepSTN, RankerConfig, crop_penalty, zoom_in

LOC_PARTS = ("loc_features", "loc_fc", "loc_scale", "loc_shift")


def tiny(width: int = 4, **kw: object) -> DeepSTN:
    torch.manual_seed(0)
    return DeepSTN(RankerConfig(width=width, **kw))  # type: ignore[arg-type]


def images(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g)  # (n, 3, 64, 64) in [0, 1]


def pair_loss(model: DeepSTN, x: torch.Tensor) -> torch.Tensor:
    """A score-difference loss: first half of the batch should outrank the second half."""
    s = model(x)
    s_a, s_b = s.split(len(x) // 2)
    return torch.nn.functional.softplus(s_b - s_a).mean()


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def nonzero_grad(module: torch.nn.Module) -> bool:
    """Every parameter tensor of ``module`` has a gradient that is not all zero."""
    gs = grads(module)
    return bool(gs) and all(g is not None and g.abs().sum() > 0 for g in gs)


@pytest.mark.parametrize("stage", STAGES)
def test_scores_have_shape_b(stage: str) -> None:
    model = tiny()
    model.set_stage(stage)
    out = model(images(5))
    assert out.shape == (5,)
    assert torch.isfinite(out).all()
    scores, params = model.score_and_transform(images(3))
    assert scores.shape == (3,) and params.shape == (3, 3)


@pytest.mark.parametrize("stage", STAGES)
def test_gradient_reaches_the_output_layers_of_the_loc_net_at_init(stage: str) -> None:
    # The shift and scale layers start at zero weight, so at init only they (and the scale
    # BIAS, despite its zero weight) can receive gradient.
    model = tiny()
    model.set_stage(stage)
    pair_loss(model, images(6)).backward()
    assert model.loc_scale.bias.grad is not None
    assert model.loc_scale.bias.grad.abs().item() > 0
    assert nonzero_grad(model.loc_shift)
    assert model.loc_scale.weight.grad is not None
    assert model.loc_scale.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("stage", STAGES)
def test_gradient_reaches_every_part_of_the_loc_net(stage: str) -> None:
    # Once the zero-initialised output layers have moved (as after any training step), the
    # gradient must flow back through theta, loc_fc and into loc_features.
    model = tiny()
    model.set_stage(stage)
    with torch.no_grad():
        model.loc_shift.weight.normal_(0, 0.05)
        model.loc_scale.weight.normal_(0, 0.05)
    pair_loss(model, images(6)).backward()
    for part in LOC_PARTS:
        assert nonzero_grad(getattr(model, part)), part


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_two_optimiser_steps_from_init_reach_loc_features(stage: str) -> None:
    model = tiny()
    model.set_stage(stage)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = images(6)
    model.eval()  # BatchNorm/dropout fixed: the change below comes from the step alone
    before = model.transform(x).detach()
    for _ in range(2):
        opt.zero_grad()
        model.train()
        pair_loss(model, x).backward()
        opt.step()
    assert nonzero_grad(model.loc_features)
    assert nonzero_grad(model.loc_fc)
    model.eval()
    after = model.transform(x).detach()
    assert not torch.allclose(before[:, 1:], after[:, 1:]), "the shifts did not move"
    assert not torch.allclose(before[:, 0], after[:, 0]), "the scale did not move"


@pytest.mark.slow
def test_one_optimiser_step_changes_the_crop_params() -> None:
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = images(6)
    model.eval()
    before = model.transform(x).detach()
    scale_bias = model.loc_scale.bias.detach().clone()
    shift = [p.detach().clone() for p in model.loc_shift.parameters()]
    model.train()
    pair_loss(model, x).backward()
    opt.step()
    model.eval()
    after = model.transform(x).detach()
    assert (before[:, 1:] - after[:, 1:]).abs().max() > 1e-6  # the shifts moved
    assert (before[:, 0] - after[:, 0]).abs().max() > 0  # and the scale, a little
    assert not torch.equal(model.loc_scale.bias, scale_bias)
    assert all(
        not torch.equal(a, b) for a, b in zip(shift, model.loc_shift.parameters(), strict=True)
    )


def test_identity_transform_is_a_no_op() -> None:
    model = tiny(crop_size=64)
    x = images(4)
    params = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1)
    out = model.crop(x, params)
    assert out.shape == x.shape
    assert (out - x).abs().max() < 1e-5


def test_crop_with_a_shift_moves_the_image() -> None:
    # Guards the identity test: a non-trivial transform must change the pixels.
    model = tiny(crop_size=64)
    x = images(2)
    out = model.crop(x, torch.tensor([[0.5, 0.5, -0.5]] * 2))
    assert (out - x).abs().max() > 0.1
    half = model.crop(x, torch.tensor([[0.5, 0.0, 0.0]] * 2))
    # scale 0.5 centred: the crop samples the middle half of the image (pixels 16..47),
    # upsampled 2x; the centre 2x2 block of the crop is the centre pixels of the input.
    assert torch.allclose(half[..., 31:33, 31:33].mean(), x[..., 31:33, 31:33].mean(), atol=0.05)


def test_crop_size_sets_the_output_resolution() -> None:
    model = tiny(crop_size=32)
    assert model.crop(images(2), torch.tensor([[0.5, 0.0, 0.0]] * 2)).shape == (2, 3, 32, 32)


def test_theta_keeps_the_autograd_graph() -> None:
    params = torch.tensor([[0.4, 0.1, -0.2], [0.7, -0.3, 0.5]], requires_grad=True)
    theta = DeepSTN.theta(params)
    assert theta.shape == (2, 2, 3)
    assert theta.requires_grad and theta.grad_fn is not None
    expected = torch.tensor(
        [[[0.4, 0.0, 0.1], [0.0, 0.4, -0.2]], [[0.7, 0.0, -0.3], [0.0, 0.7, 0.5]]]
    )
    assert torch.equal(theta.detach(), expected)
    w = torch.arange(6.0).view(2, 3) + 1.0  # distinct weights per matrix entry
    (theta * w).sum().backward()
    assert params.grad is not None
    # d/ds = w00 + w11, d/dtx = w02, d/dty = w12 (the same for both rows of the batch)
    row = torch.tensor([1.0 + 5.0, 3.0, 6.0])
    assert torch.equal(params.grad, torch.stack([row, row]))


def test_crop_gradient_flows_to_params() -> None:
    model = tiny()
    x = images(2)
    params = torch.tensor([[0.5, 0.1, 0.2]] * 2, requires_grad=True)
    model.crop(x, params).sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


def test_crop_and_global_features_are_joined_on_the_feature_axis() -> None:
    model = tiny(width=4)
    assert model.cnn.out_features == 32
    assert model.head.in_features == 2 * model.cnn.out_features
    assert model.head_crop.in_features == model.cnn.out_features


@pytest.mark.parametrize("stage", STAGES)
def test_scores_do_not_depend_on_the_rest_of_the_batch(stage: str) -> None:
    model = tiny()
    # make the head use both halves of its input so a batch-axis join would show
    with torch.no_grad():
        model.loc_shift.weight.normal_(0, 0.05)
    model.set_stage(stage)
    model.eval()
    x = images(3)
    with torch.no_grad():
        alone = model(x[:1])
        together = model(x)
        swapped = model(x.flip(0))
    assert torch.allclose(together[0], alone[0], atol=1e-5)
    assert torch.allclose(swapped.flip(0), together, atol=1e-5)
    assert len(set(together.tolist())) == 3  # the images really do get different scores


def test_full_score_uses_both_streams() -> None:
    # The full-stage score is head([f_crop, f_global]): zeroing either half of the head's
    # weights must change the score, so both streams feed it.
    model = tiny()
    model.set_stage("full")
    model.eval()
    x = images(4)
    d = model.cnn.out_features
    with torch.no_grad():
        base = model(x)
        for half in (slice(0, d), slice(d, 2 * d)):
            saved = model.head.weight[:, half].clone()
            model.head.weight[:, half] = 0
            assert not torch.allclose(model(x), base)
            model.head.weight[:, half] = saved


def test_initial_scale_is_scale_init_and_moves_slowly() -> None:
    for scale_init in (0.35, 0.66):
        model = tiny(scale_init=scale_init, scale_ratio=0.05)
        model.eval()
        params = model.transform(images(5))
        assert torch.allclose(params[:, 0], torch.full((5,), scale_init), atol=1e-6)
        assert torch.equal(params[:, 1:], torch.zeros(5, 2))  # centred at init

    model = tiny(scale_init=0.35, scale_ratio=0.05)
    model.eval()
    x = images(4)
    model.transform(x)[:, 0].sum().backward()
    # d scale / d bias = scale_ratio, for each image of the batch
    assert model.loc_scale.bias.grad is not None
    assert torch.allclose(model.loc_scale.bias.grad, torch.tensor([4 * 0.05]))
    model.zero_grad()
    model.transform(x)[:, 1].sum().backward()
    # d shift / d bias = tanh'(0) = 1: the shift moves 1/scale_ratio = 20 times faster
    assert model.loc_shift.bias.grad is not None
    assert torch.allclose(model.loc_shift.bias.grad, torch.tensor([4.0, 0.0]))

    with torch.no_grad():  # the same nudge to both biases
        model.loc_scale.bias += 0.1
        model.loc_shift.bias += 0.1
        p = model.transform(x)
    assert torch.allclose(p[:, 0], torch.full((4,), 0.35 + 0.1 * 0.05), atol=1e-6)
    assert torch.allclose(p[:, 1:], torch.full((4, 2), float(torch.tanh(torch.tensor(0.1)))))


def test_scale_is_kept_in_range() -> None:
    model = tiny()
    model.eval()
    with torch.no_grad():
        model.loc_scale.bias.fill_(1000.0)
        assert torch.all(model.transform(images(2))[:, 0] == 1.0)
        model.loc_scale.bias.fill_(-1000.0)
        assert torch.all(model.transform(images(2))[:, 0] == 0.05)


def test_crop_penalty_is_zero_inside_and_positive_outside() -> None:
    inside = torch.tensor([[0.35, 0.0, 0.0], [0.5, 0.5, -0.5], [1.0, 0.0, 0.0]])
    assert crop_penalty(inside).item() == 0.0
    outside = torch.tensor([[0.5, 0.75, 0.0]])  # 0.25 beyond the right edge
    assert crop_penalty(outside).item() == pytest.approx(0.25**2)
    p = outside.clone().requires_grad_(True)
    crop_penalty(p).backward()
    assert p.grad is not None and p.grad[0, 1] > 0 and p.grad[0, 0] > 0


def test_set_stage_rejects_unknown_names() -> None:
    model = tiny()
    with pytest.raises(UnknownNameError) as err:
        model.set_stage("nope")
    assert "nope" in str(err.value) and "crop" in str(err.value) and "full" in str(err.value)
    assert model.stage == "crop"


def test_unknown_backbone_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        DeepSTN(RankerConfig(backbone="resnet9000", width=4))
    assert "resnet9000" in str(err.value)
    assert "small" in str(err.value)
    assert err.value.valid == ["resnet18", "small"]


def test_each_stage_trains_its_own_head() -> None:
    # stage "crop" scores the crop stream alone (head_crop); stage "full" uses head on both
    x = images(4)
    for stage, used, unused in (("crop", "head_crop", "head"), ("full", "head", "head_crop")):
        model = tiny()
        model.set_stage(stage)
        pair_loss(model, x).backward()
        head = getattr(model, used)
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0, stage
        # (the bias gets ~0: a common offset cancels in every score difference)
        assert all(g is None for g in grads(getattr(model, unused))), stage


@pytest.mark.parametrize("stage", STAGES)
def test_mirror_average_scores_an_image_and_its_mirror_alike_at_test_time(stage: str) -> None:
    averaged, single = tiny(mirror_average=True), tiny()
    for model in (averaged, single):
        with torch.no_grad():
            model.loc_shift.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
        model.set_stage(stage)
        model.eval()
    x = images(4)
    with torch.no_grad():
        one_view, mirrored = single(x), single(x.flip(-1))
        assert not torch.allclose(one_view, mirrored, atol=1e-4)  # the net is not symmetric
        scored = averaged.score_views(x)
        assert torch.allclose(scored, (one_view + mirrored) / 2, atol=1e-5)
        assert torch.allclose(scored, averaged.score_views(x.flip(-1)), atol=1e-5)
        # forward is one view in eval mode too: what a control step or a created pair sees
        assert torch.equal(averaged(x), single(x))
        assert torch.equal(single.score_views(x), single(x))  # no extra views: forward
    averaged.train()  # training scores each image once: the jitter already mirrors
    single.train()
    torch.manual_seed(0)
    train_averaged = averaged(x)
    torch.manual_seed(0)
    assert torch.allclose(train_averaged, single(x))


def test_zoom_in_magnifies_about_the_centre() -> None:
    x = images(2)
    assert torch.allclose(zoom_in(x, 1.0), x, atol=1e-5)  # factor 1: the image itself
    # factor 2 shows the central half, each of its pixels spread over 2x2 output pixels
    centre = x[..., 16:48, 16:48]
    twice = F.interpolate(centre, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(zoom_in(x, 2.0)[..., 2:-2, 2:-2], twice[..., 2:-2, 2:-2], atol=1e-5)


@pytest.mark.parametrize("stage", STAGES)
def test_test_zooms_average_the_score_over_magnified_views(stage: str) -> None:
    single = tiny()
    zoomed, both = tiny(test_zooms=(1.125, 1.25)), tiny(test_zooms=(1.125,), mirror_average=True)
    for model in (single, zoomed, both):
        model.set_stage(stage)
        model.eval()
    x = images(4)
    with torch.no_grad():
        views = [single(x), single(zoom_in(x, 1.125)), single(zoom_in(x, 1.25))]
        assert not torch.allclose(views[0], views[1], atol=1e-4)  # the views differ
        assert torch.allclose(zoomed.score_views(x), torch.stack(views).mean(0), atol=1e-5)
        four = [*views[:2], single(x.flip(-1)), single(zoom_in(x, 1.125).flip(-1))]
        assert torch.allclose(both.score_views(x), torch.stack(four).mean(0), atol=1e-5)
        assert torch.equal(both(x), views[0])  # forward: the one plain view
    zoomed.train()  # training scores each image once
    single.train()
    torch.manual_seed(0)
    train_zoomed = zoomed(x)
    torch.manual_seed(0)
    assert torch.allclose(train_zoomed, single(x))


@pytest.mark.parametrize("bad", [(0.0,), (-1.0,), (float("nan"),)])
def test_test_zooms_must_be_positive(bad: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="test_zooms"):
        RankerConfig(test_zooms=bad)
