"""MeanFlow core: the JVP derivative, the target, sampling, the network's size."""
import numpy as np
import pytest
import torch

from dm1_ros.policy import objectives
from dm1_ros.policy.config import HeadConfig, LowDimConfig, MethodConfig, PolicyConfig, TimeEmbeddingConfig
from dm1_ros.policy.model import GenerativePolicy


def small_lowdim(mode="t_r", scale=10.0):
    return PolicyConfig(
        image_keys=[], proprio_keys=["s"], proprio_dims=[3], action_dim=2, chunk=3, encoder="mlp",
        lowdim=LowDimConfig(hidden=16, layers=1, out_dim=8), head=HeadConfig(hidden=32, blocks=1),
        time=TimeEmbeddingConfig(mode=mode, scale=scale),
    )


def test_default_image_policy_matches_dmpo_size():
    policy = GenerativePolicy(PolicyConfig())
    parts = policy.parameter_breakdown()
    assert abs(parts["total"] - 1.78e6) / 1.78e6 < 0.02
    assert abs(parts["head"] - 1.35e6) / 1.35e6 < 0.02
    encoder = policy.image_encoders["robot0_eye_in_hand_image"]
    assert encoder.num_tokens == 121  # 96x96 -> 23x23 -> 11x11


def test_patchify_stem_of_the_fast_recipe_tokens_and_size():
    import yaml

    from dm1_ros.configuration import from_dict
    from dm1_ros.train.pretrain import TrainConfig

    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "config" / "train" / "lift_image_fast.yaml"
    cfg = from_dict(TrainConfig, yaml.safe_load(recipe.read_text()))
    policy = GenerativePolicy(cfg.policy)
    encoder = policy.image_encoders["robot0_eye_in_hand_image"]
    assert encoder.num_tokens == 64 and len(encoder.stem) == 1  # 96x96 -> 8x8 patches of 12x12, no second conv
    assert abs(policy.parameter_breakdown()["total"] - 0.93e6) / 0.93e6 < 0.02
    images = {"robot0_eye_in_hand_image": torch.randint(0, 256, (2, 96, 96, 3), dtype=torch.uint8)}
    visual, tokens = encoder(images["robot0_eye_in_hand_image"], torch.zeros(2, 9))
    assert visual.shape == (2, 128) and tokens.shape == (2, 128)


@pytest.mark.parametrize("mode", ["t_r", "t_dt"])
def test_jvp_total_derivative_matches_finite_differences(mode):
    torch.manual_seed(0)
    policy = GenerativePolicy(small_lowdim(mode)).double()
    b = 5
    cond, _ = policy.encode({}, torch.randn(b, 3, dtype=torch.float64))
    cond = cond.detach()
    z = torch.randn(b, 6, dtype=torch.float64)
    v = torch.randn(b, 6, dtype=torch.float64)
    t = torch.rand(b, dtype=torch.float64) * 0.8 + 0.1
    r = t * torch.rand(b, dtype=torch.float64)

    def fn(z, r, t):
        return policy.velocity(z, r, t, cond)

    u, dudt, _ = objectives.meanflow_dudt(fn, z, r, t, v)
    h = 1e-6  # d/dh u(z + h v, r, t + h), central difference
    fd = (fn(z + h * v, r, t + h)[0] - fn(z - h * v, r, t - h)[0]) / (2 * h)
    rel = (dudt - fd).norm() / fd.norm()
    assert rel < 1e-3, rel
    assert torch.allclose(u, fn(z, r, t)[0])


def test_gradient_flows_through_jvp_primal_like_a_plain_forward():
    """The loss backpropagates through u from the JVP; the stop-gradient target contributes nothing."""
    torch.manual_seed(0)
    policy = GenerativePolicy(small_lowdim()).double()
    cond = torch.randn(4, policy.cond_dim, dtype=torch.float64)
    z, v = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    t = torch.full((4,), 0.7, dtype=torch.float64)
    r = torch.full((4,), 0.2, dtype=torch.float64)
    fn = lambda z, r, t: policy.velocity(z, r, t, cond)  # noqa: E731
    u, dudt, _ = objectives.meanflow_dudt(fn, z, r, t, v)
    target = (v - (t - r)[:, None] * dudt).detach()
    ((u - target) ** 2).sum().backward()
    grad_jvp = [p.grad.clone() for p in policy.head.parameters()]
    policy.zero_grad()
    u2, _ = fn(z, r, t)
    ((u2 - target) ** 2).sum().backward()
    for a, b in zip(grad_jvp, [p.grad for p in policy.head.parameters()]):
        assert torch.allclose(a, b, atol=1e-10)


def test_time_sampling_orders_r_below_t_and_applies_flow_ratio():
    g = torch.Generator().manual_seed(0)
    r, t = objectives.sample_times(20000, MethodConfig(flow_ratio=0.5), g)
    assert bool((r <= t).all()) and bool((t <= 1).all()) and bool((r >= 0).all())
    assert abs(float((r == t).float().mean()) - 0.5) < 0.02
    r, t = objectives.sample_times(1000, MethodConfig(flow_ratio=1.0), g)
    assert bool((r == t).all())


def test_one_step_sample_is_noise_minus_average_velocity():
    torch.manual_seed(0)
    policy = GenerativePolicy(small_lowdim()).eval()
    proprio = torch.randn(3, 3)
    noise = torch.randn(3, 3, 2) * 0.1
    cond, _ = policy.encode({}, proprio)
    expected = noise.reshape(3, -1) - policy.velocity(noise.reshape(3, -1), torch.zeros(1), torch.ones(1), cond)[0]
    got = policy.sample_normalized(cond, noise, steps=1)
    assert torch.allclose(got.reshape(3, -1), expected.clamp(-1, 1), atol=1e-6)
    # Actions come back in robot units within the fitted range.
    actions = policy.select_action({}, proprio, steps=1)
    assert actions.shape == (3, 3, 2)
    assert bool((actions >= policy.action_normalizer.low - 1e-5).all() and (actions <= policy.action_normalizer.high + 1e-5).all())


def test_high_time_frequency_inflates_the_meanflow_correction():
    """SPEC §6: the (t - r) du/dt term grows with the embedding's highest frequency; the default keeps it moderate."""
    def mean_dudt(scale):
        torch.manual_seed(0)
        policy = GenerativePolicy(small_lowdim(scale=scale))
        cond = torch.randn(256, policy.cond_dim)
        z, v = torch.randn(256, 6), torch.randn(256, 6)
        t, r = torch.rand(256), torch.zeros(256)
        _, dudt, _ = objectives.meanflow_dudt(lambda z, r, t: policy.velocity(z, r, t, cond), z, r, t, v)
        return float(dudt.detach().abs().mean())

    assert PolicyConfig().time.scale <= 10.0
    assert mean_dudt(100.0) > 3 * mean_dudt(10.0)


def test_image_policy_loss_runs_encoder_once_and_backpropagates(tiny_image_config):
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    calls = []
    encoder = policy.image_encoders["robot0_eye_in_hand_image"]
    encoder.register_forward_hook(lambda *a: calls.append(1))
    batch = {
        "images": {"robot0_eye_in_hand_image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)},
        "proprio": torch.randn(4, 9),
        "actions": torch.rand(4, 4, 7),
    }
    loss, logs = policy.compute_loss(batch)
    loss.backward()
    assert len(calls) == 1
    assert torch.isfinite(loss) and "loss/meanflow" in logs
    assert encoder.stem[0].weight.grad is not None and encoder.stem[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_mp1_guidance_mixes_the_models_own_velocity_into_tangent_and_target(scale):
    """u(z, r, t) = c z: with v_hat = w v + (1 - w) c z_t, du/dt along v_hat is c v_hat and the target is
    v_hat - (t - r) c v_hat (SPEC §7); w = 1 is the plain MeanFlow loss."""
    from dm1_ros.policy.config import GuidanceConfig
    from dm1_ros.policy.objectives import meanflow_loss, sample_times

    c = 0.7
    fn = lambda z, r, t: (c * z, {})  # noqa: E731
    a = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    cfg = MethodConfig(guidance=GuidanceConfig(kind="mp1", scale=scale))
    loss, _, _ = meanflow_loss(fn, a, cfg, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(a.shape, generator=g)
    r, t = sample_times(32, cfg, g)
    z = (1 - t[:, None]) * a + t[:, None] * eps
    v_hat = scale * (eps - a) + (1 - scale) * c * z
    expected = (c * z - (v_hat - (t - r)[:, None] * c * v_hat)).pow(2).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    plain, _, _ = meanflow_loss(fn, a, MethodConfig(), torch.Generator().manual_seed(5))
    assert (float(loss) == pytest.approx(float(plain), rel=1e-6)) == (scale == 1.0)


def test_cfg_guidance_learns_a_null_condition_and_exports_one_evaluation(tiny_image_config, tmp_path):
    from dm1_ros.policy.config import GuidanceConfig
    from dm1_ros.policy.export import export_bundle

    tiny_image_config.method.guidance = GuidanceConfig(kind="cfg", scale=2.0, dropout=0.5)
    torch.manual_seed(0)
    policy = GenerativePolicy(tiny_image_config)
    policy.action_normalizer.fit(np.random.default_rng(0).uniform(-1, 1, (16, 7)))
    policy.proprio_normalizer.fit(np.random.default_rng(1).uniform(-1, 1, (16, 9)))
    batch = {"images": {"robot0_eye_in_hand_image": torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)},
             "proprio": torch.rand(8, 9), "actions": torch.rand(8, 4, 7) * 2 - 1}
    loss, _ = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert policy.null_condition.shape == (policy.cond_dim,) and policy.null_condition.grad.abs().sum() > 0
    manifest = export_bundle(policy.eval(), tmp_path / "b")  # the deployed sampler never reads the null condition
    assert manifest.parity.max_abs_diff <= 1e-4 and manifest.sampling_steps == 1
    with pytest.raises(ValueError, match="guidance mp1 is for meanflow"):
        PolicyConfig(method=MethodConfig(name="flow_matching", guidance=GuidanceConfig(kind="mp1")))


def test_distillation_pulls_the_one_step_sample_toward_the_teachers_multi_step_sample():
    torch.manual_seed(0)
    cfg = small_lowdim()
    cfg.method.distill_steps = 3
    student, teacher = GenerativePolicy(cfg), GenerativePolicy(cfg).eval()
    batch = {"images": {}, "proprio": torch.randn(5, 3), "actions": torch.rand(5, 3, 2) * 2 - 1}
    cond, _ = student.encode({}, batch["proprio"])
    loss, value = student.distill_loss(batch, cond, teacher, torch.Generator().manual_seed(1))
    # The same noise by hand: the student's one step against the teacher's three steps, clipped like any sample.
    noise = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    target = teacher.sample_normalized(teacher.encode({}, batch["proprio"])[0], noise, 3).reshape(5, -1)
    one_step = noise - student.velocity(noise, torch.zeros(5), torch.ones(5), cond)[0]
    assert value == pytest.approx(float((one_step - target).pow(2).mean().detach()), rel=1e-5)
    # Only the student learns, and the term enters compute_loss with its weight only when a teacher is given.
    loss.backward()
    assert next(student.head.parameters()).grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    assert "loss/distill" in student.compute_loss(batch, torch.Generator().manual_seed(2), teacher)[1]
    assert "loss/distill" not in student.compute_loss(batch, torch.Generator().manual_seed(2))[1]


def test_distillation_steps_are_checked():
    from dm1_ros.policy.config import GuidanceConfig

    with pytest.raises(ValueError, match="distill_steps must be 0 .off. or at least 2, not 1"):
        PolicyConfig(method=MethodConfig(distill_steps=1))
    with pytest.raises(ValueError, match="distill_steps trains MeanFlow's one-step map, not flow_matching"):
        PolicyConfig(method=MethodConfig(name="flow_matching", distill_steps=5))
    with pytest.raises(ValueError, match="distill_steps with guidance mp1 is not supported"):
        PolicyConfig(method=MethodConfig(distill_steps=5, guidance=GuidanceConfig(kind="mp1")))
