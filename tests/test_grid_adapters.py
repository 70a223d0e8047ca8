"""ST-Adapter and Mona: their convolutions against explicit shift-and-add sums on hand-built token grids,
and what they are for: a frame-order-blind backbone becomes order-aware."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import vidpeft
from vidpeft.backbones.layers import TokenLayout
from vidpeft.methods import blocks
from vidpeft.methods.grid_conv import depthwise_conv
from vidpeft.methods.mona import Mona
from vidpeft.methods.st_adapter import STAdapter

B, C, T, H, W = 2, 6, 4, 5, 7  # H, W not multiples of any window: nothing may come from window padding


def randomise(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


def layouts():
    """A ViT sequence with two extra tokens first, and Swin's channels-last stream, on the same grid."""
    vit = TokenLayout()
    vit.grid = (T, H, W)
    grid = torch.randn(B, T, H, W, C, generator=torch.Generator().manual_seed(0))
    extra = torch.randn(B, 2, C, generator=torch.Generator().manual_seed(1))
    sequence = torch.cat((extra, grid.reshape(B, T * H * W, C)), 1)
    return [(vit, sequence, grid, extra), (TokenLayout(channels_last=True), grid, grid, None)]


def shifted_sum(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum over kernel taps of weight[c, dt, dy, dx] * g[b, t + dt - kt//2, h + dy - kh//2, w + dx - kw//2, c],
    zero outside the grid; g is (B, T, H, W, C), weight (C, kt, kh, kw)."""
    _, kt, kh, kw = weight.shape
    frames = g.shape[1]
    padded = F.pad(g, (0, 0, kw // 2, kw // 2, kh // 2, kh // 2, kt // 2, kt // 2))
    out = torch.zeros_like(g)
    for dt in range(kt):
        for dy in range(kh):
            for dx in range(kw):
                out = out + weight[:, dt, dy, dx] * padded[:, dt:dt + frames, dy:dy + H, dx:dx + W]
    return out


@pytest.mark.parametrize("kernel,form", [((3, 1, 1), "conv2d"), ((3, 1, 1), "shifts"), ((5, 1, 1), "shifts"),
                                         ((1, 7, 7), "conv2d"), ((1, 7, 7), "conv3d-cl"), ((1, 7, 7), "shifts"),
                                         ((3, 7, 7), "conv2d"), ((3, 7, 7), "conv3d-cl"), ((3, 7, 7), "shifts"),
                                         ((5, 3, 3), "conv3d-cl"), ((5, 3, 3), "shifts"), ((3, 3, 5), None)])
@pytest.mark.parametrize("frames", [1, 2, T])
def test_depthwise_conv_forms_equal_the_dense_sum_and_conv3d_values_and_gradients(kernel, form, frames, device):
    """Every form of grid_conv.depthwise_conv against the shift-and-add sum written out, and its gradients
    against Conv3d's (the path it replaced), on grids shorter than the kernel too; with no form given, the
    device's default."""
    generator = torch.Generator().manual_seed(7)
    grid = torch.randn(B, frames, H, W, C, generator=generator).to(device).requires_grad_()
    weight = (torch.randn(C, 1, *kernel, generator=generator) * 0.5).to(device).requires_grad_()
    bias = torch.randn(C, generator=generator).to(device).requires_grad_()
    got = depthwise_conv(grid, weight, bias, form=form)
    expected = shifted_sum(grid, weight[:, 0]) + bias
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    seed = torch.randn(got.shape, generator=generator).to(device)
    ours = torch.autograd.grad((got * seed).sum(), (grid, weight, bias))
    padding = tuple(k // 2 for k in kernel)
    conv3d = F.conv3d(grid.movedim(-1, 1), weight, bias, padding=padding, groups=C).movedim(1, -1)
    theirs = torch.autograd.grad((conv3d * seed).sum(), (grid, weight, bias))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [(1, 7, 7), (3, 5, 3)])
def test_depthwise_conv_under_bf16_autocast_matches_conv2d_autocast(kernel):
    """The hand-written backward (DepthwiseConv3d, form conv3d-cl) in autocast's type, against autograd
    through the per-tap frame conv2ds (form conv2d) under the same autocast."""
    generator = torch.Generator().manual_seed(8)
    grid = torch.randn(B, T, H, W, C, generator=generator, requires_grad=True)
    weight = torch.randn(C, 1, *kernel, generator=generator, requires_grad=True)
    bias = torch.randn(C, generator=generator, requires_grad=True)
    seed = torch.randn(B, T, H, W, C, generator=generator)
    grads = []
    for form in ("conv3d-cl", "conv2d"):
        with torch.autocast("cpu", torch.bfloat16):
            out = depthwise_conv(grid, weight, bias, form=form)
        assert out.dtype == torch.bfloat16
        grads.append(torch.autograd.grad((out.float() * seed).sum(), (grid, weight, bias)))
    for ours, theirs in zip(*grads):
        assert ours.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("case", range(2), ids=["vit", "swin"])
def test_st_adapter_mixes_each_position_with_itself_in_neighbouring_frames_only(case):
    layout, stream, grid, extra = layouts()[case]
    adapter = STAdapter(layout, C, width=3)
    randomise(adapter, seed=2)
    hidden = grid @ adapter.fc1.weight.t() + adapter.fc1.bias
    kernel = adapter.conv.weight[:, 0]  # (m, 3, 1, 1)
    mixed = shifted_sum(hidden, kernel) + adapter.conv.bias
    expected = grid + mixed @ adapter.fc2.weight.t() + adapter.fc2.bias
    with torch.no_grad():
        out = adapter(stream)
        got, kept = layout.to_grid(out)
        torch.testing.assert_close(got.permute(0, 2, 3, 4, 1), expected, rtol=1e-5, atol=1e-5)
        if extra is not None:
            assert torch.equal(kept, extra)  # class token / prompts pass unchanged
        # videos of a batch never mix; frame t depends on frames t-1..t+1 only
        changed = stream.clone()
        if layout.channels_last:
            changed[1] += 1.0
            changed[0, 3] += 1.0
        else:
            changed[1] += 1.0
            changed[0, 2 + 3 * H * W:] += 1.0
        out2, _ = layout.to_grid(adapter(changed))
        assert torch.equal(out2[0, :, :2], got[0, :, :2])
        assert not torch.equal(out2[0, :, 2], got[0, :, 2])


@pytest.mark.parametrize("conv", ["2d", "3d"])
@pytest.mark.parametrize("case", range(2), ids=["vit", "swin"])
def test_mona_filters_equal_the_reference_sum_of_three_depthwise_convolutions(case, conv):
    layout, stream, grid, extra = layouts()[case]
    mona = Mona(layout, C, width=4, temporal=1 if conv == "2d" else 3, dropout=0.0)
    randomise(mona, seed=3)
    f = mona.adapter_conv
    x = F.layer_norm(grid, (C,), mona.norm.weight, mona.norm.bias) * mona.gamma + grid * mona.gammax
    h = x @ mona.project1.weight.t() + mona.project1.bias
    # MonaOp as the reference writes it: (conv1 + conv2 + conv3) / 3 + identity, then identity + projector
    convs = [shifted_sum(h, c.weight[:, 0]) + c.bias for c in (f.conv1, f.conv2, f.conv3)]
    h = sum(convs) / 3 + h
    h = h + h @ f.projector.weight[:, :, 0, 0, 0].t() + f.projector.bias
    expected = grid + F.gelu(h) @ mona.project2.weight.t() + mona.project2.bias
    with torch.no_grad():
        got, kept = layout.to_grid(mona(stream))
        torch.testing.assert_close(got.permute(0, 2, 3, 4, 1), expected, rtol=1e-5, atol=1e-5)
        if extra is not None:
            assert torch.equal(kept, extra)
        if conv == "2d":  # per frame: perturbing frame 3 leaves frames 0..2 as they were
            changed = stream.clone()
            if layout.channels_last:
                changed[:, 3] += 1.0
            else:
                changed[:, 2 + 3 * H * W:] += 1.0
            out2, _ = layout.to_grid(mona(changed))
            assert torch.equal(out2[:, :, :3], got[:, :, :3])


def mona_formula(mona: Mona, grid: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mona's branch written out with the reference's modules (LayerNorm, Linear, the three Conv3d and the
    1x1 projector, F.gelu), autocast left to choose types; `mask` the dropout's kept entries, scaled."""
    f = mona.adapter_conv
    x = F.layer_norm(grid.float(), (C,), mona.norm.weight, mona.norm.bias) * mona.gamma + grid.float() * mona.gammax
    h = mona.project1(x).movedim(-1, 1)
    h = (f.conv1(h) + f.conv2(h) + f.conv3(h)) / 3 + h
    h = (h + f.projector(h)).movedim(1, -1)
    h = F.gelu(h)
    return mona.project2(h if mask is None else h * mask)


@pytest.mark.parametrize("conv", ["2d", "3d"])
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_mona_branch_equals_autograd_of_the_formula_in_values_and_every_gradient(amp, conv, device):
    """Mona's two hand-written Functions and its filter against autograd through the reference's modules,
    with dropout active (the same draws: the mask is native_dropout's on a tensor of ones of the same shape
    and type from the same seed), in values, the grid's gradient and every parameter's. In float32 to 1e-4;
    under bf16 autocast (a bf16 stream), as far from the float32 formula as autocast's own run of the
    formula is."""
    torch.manual_seed(0)
    mona = Mona(TokenLayout(channels_last=True), C, width=4, temporal=1 if conv == "2d" else 3, dropout=0.25)
    randomise(mona, seed=3)
    mona.train().to(device)
    generator = torch.Generator().manual_seed(9)
    grid = torch.randn(B, T, H, W, C, generator=generator).to(device, torch.bfloat16 if amp else torch.float32)
    seed = torch.randn(B, T, H, W, C, generator=generator).to(device)
    torch.manual_seed(5)
    ones = torch.ones(B, T, H, W, 4, device=device, dtype=torch.bfloat16 if amp else torch.float32)
    kept = torch.native_dropout(ones, 0.25, True)[0].float()
    assert 0 < (kept == 0).sum() < kept.numel()

    def run(fn, x, autocast):
        x = x.detach().requires_grad_()
        torch.manual_seed(5)
        with torch.autocast(device, torch.bfloat16, enabled=autocast):
            out = fn(x)
        return [out, *torch.autograd.grad((out.float() * seed).sum(), (x, *mona.parameters()))]

    ours = run(mona.branch, grid, amp)
    names = ["output", "grid"] + [name for name, _ in mona.named_parameters()]
    exact = run(lambda x: mona_formula(mona, x, kept), grid.float(), False)
    if not amp:
        for name, a, b in zip(names, ours, exact):  # float32 sums over 280 rows, in other orders: 1e-4
            torch.testing.assert_close(a, b, rtol=1e-4, atol=5e-5, msg=lambda m: f"{name}: {m}")
        return
    theirs = run(lambda x: mona_formula(mona, x, kept), grid, True)
    assert ours[0].dtype == theirs[0].dtype == torch.bfloat16
    for name, a, b, e in zip(names, ours, theirs, exact):
        assert a.dtype == b.dtype, name
        ours_off, theirs_off = ((v.float() - e).abs().max().item() for v in (a, b))
        assert ours_off <= 2 * theirs_off + 1e-3 * e.abs().max().item(), (name, ours_off, theirs_off)


ORDER_BLIND = {"patch_size": (1, 4, 4), "window_size": (8, 4, 4), "drop_path_rate": 0.0}


def order_blind_swin(method: str, **options) -> torch.nn.Module:
    """Video Swin with one frame per patch, one window over the whole clip's time and zero relative
    position biases: nothing tells it frame order apart, so its features ignore it."""
    torch.manual_seed(0)
    model = vidpeft.build_model("videoswin-micro", method, 4, backbone_options=ORDER_BLIND, **options)
    with torch.no_grad():
        for block in blocks(model):
            block.attn.relative_position_bias_table.zero_()
    return model


def order_gap(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model.forward_features(x) - model.forward_features(x.flip(2))).abs().max().item()


@pytest.mark.parametrize("method,options,aware_after_a_step", [
    ("linear", {}, False),
    ("st-adapter", {}, True),
    ("mona", {}, False),  # per-frame filters: still blind to order
    ("mona", {"mona_conv": "3d"}, True),
])
def test_grid_adapters_make_a_frame_order_blind_model_order_aware(method, options, aware_after_a_step):
    model = order_blind_swin(method, **options)
    x = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    if method != "mona" or options.get("mona_conv") != "3d":
        assert order_gap(model, x) < 5e-6, "the backbone (and an adapter at step 0) must ignore frame order"
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    F.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    optimizer.step()
    # blind: float rounding only (~5e-7); aware: some 400 times that (mean pooling over positions cancels a
    # temporal kernel's first-order effect except at the clip's ends, so one step leaves a small gap)
    gap = order_gap(model, x)
    assert (gap > 5e-5) if aware_after_a_step else (gap < 5e-6), gap


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="st_positions: ffn; choose among attn, mlp"):
        vidpeft.build_model("videomae-micro", "st-adapter", 4, st_positions=("attn", "ffn"))
    with pytest.raises(ValueError, match="mona_conv: '4d'; choose 2d or 3d"):
        vidpeft.build_model("videoswin-micro", "mona", 4, mona_conv="4d")


def test_st_adapter_places_and_last_blocks():
    model = vidpeft.build_model("videoswin-micro", "st-adapter", 4, st_positions=("attn", "mlp"), st_last_blocks=3)
    placed = [(isinstance(b.pre_attn, STAdapter), isinstance(b.post_attn, STAdapter)) for b in blocks(model)]
    assert placed == [(False, False)] * 5 + [(True, True)] * 3
    widths = [b.pre_attn.fc1.out_features for b in list(blocks(model))[5:]]
    assert widths == [32, 64, 64]  # half of each stage's width: 64 in stage 3, 128 in stage 4


def test_st_adapter_learns_the_direction_of_motion_where_a_linear_probe_cannot(tmp_path, capsys):
    """The training comparison quoted in the README, small: on the generated right/left task and the
    order-blind backbone, ST-Adapter trained through vidpeft-train tells the directions apart on the
    test videos, a linear probe does not, and the backbone is order-blind."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "motion_order.py"
    spec = importlib.util.spec_from_file_location("motion_order", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--out", str(tmp_path), "--per-class", "60", "--epochs", "12", "--methods", "st-adapter,linear",
                "--lrs", "3e-3"])
    out = capsys.readouterr().out
    gap = float(out.split("reversed clip)| = ")[1].split()[0])
    assert gap < 5e-6
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}
    assert float(rows["st-adapter"][4]) >= 85.0, out
    assert float(rows["linear"][4]) <= 75.0, out
    adapter = json.loads((tmp_path / "runs" / "st-adapter_lr0.003" / "best" / "adapter.json").read_text())
    assert adapter["method"] == "st-adapter"
