"""Dispersive regularizers: reference values, gradients on collapsed features, and that they spread features."""
import math

import pytest
import torch

from dm1_ros.policy import dispersive
from dm1_ros.policy.config import DispersiveTerm

KINDS = ["infonce_l2", "infonce_cosine", "hinge", "covariance"]


def test_values_on_hand_computed_batches():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # squared distances 0,1,1,0; / (D tau) = / 1 -> log((2 + 2 e^-1) / 4)
    assert dispersive.infonce_l2(z, tau=0.5).item() == pytest.approx(math.log((2 + 2 * math.exp(-1)) / 4), abs=1e-6)
    # distance 1 < margin 2 -> (2 - 1)^2 = 1 for both ordered pairs
    assert dispersive.hinge(z, margin=2.0).item() == pytest.approx(1.0, abs=1e-5)
    assert dispersive.hinge(z, margin=0.5).item() == pytest.approx(0.0, abs=1e-6)
    orth = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cosine distance 1 off the diagonal, / tau 0.5 -> log((2 + 2 e^-2) / 4)
    assert dispersive.infonce_cosine(orth, tau=0.5).item() == pytest.approx(math.log((2 + 2 * math.exp(-2)) / 4), abs=1e-6)
    # covariance of [[1,0],[-1,0]]: diag (2, 0), no off-diagonal -> mean((1-2)^2, (1-0)^2) = 1
    assert dispersive.covariance(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_is_nonzero_on_collapsed_features(kind):
    torch.manual_seed(0)
    z = (torch.ones(16, 8) + 1e-3 * torch.randn(16, 8)).requires_grad_()
    loss = dispersive.dispersive_loss(DispersiveTerm(kind=kind), z)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    assert z.grad.abs().max() > 1e-6, z.grad.abs().max()  # scales with the 1e-3 jitter


@pytest.mark.parametrize("kind", KINDS)
def test_optimizing_the_loss_spreads_collapsed_features(kind):
    torch.manual_seed(0)
    z = (torch.ones(32, 8) + 1e-2 * torch.randn(32, 8)).requires_grad_()
    spread = lambda x: torch.pdist(x.detach()).mean().item()  # noqa: E731
    before = spread(z)
    optimizer = torch.optim.Adam([z], lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        dispersive.dispersive_loss(DispersiveTerm(kind=kind), z).backward()
        optimizer.step()
    assert spread(z) > 3 * before, (before, spread(z))


def test_clamped_variant_of_released_code_is_inert_where_reference_is_not():
    """Why the reference form: the released masked + clamped InfoNCE has no gradient once features are spread."""
    torch.manual_seed(0)
    z = (3.0 * torch.randn(16, 4)).requires_grad_()
    sim = -torch.cdist(z, z) ** 2 / 0.5
    sim = sim.masked_fill(torch.eye(16, dtype=torch.bool), -1e9).clamp(-10, 10)
    torch.logsumexp(sim.reshape(-1), 0).backward()
    released = z.grad.abs().max().item()
    z.grad = None
    dispersive.infonce_l2(z, tau=0.5).backward()
    assert released < 1e-6 < z.grad.abs().max().item()


def test_terms_are_weighted_and_logged_separately():
    feats = {"condition": torch.randn(8, 5), "head_hidden": torch.randn(8, 7)}
    terms = [DispersiveTerm(layer="condition", kind="infonce_l2", weight=0.5), DispersiveTerm(layer="head_hidden", kind="covariance", weight=0.1)]
    total, logs = dispersive.total_dispersive(terms, feats)
    assert set(logs) == {"disp/condition/infonce_l2", "disp/head_hidden/covariance"}
    assert total.item() == pytest.approx(0.5 * logs["disp/condition/infonce_l2"] + 0.1 * logs["disp/head_hidden/covariance"], rel=1e-5)
    with pytest.raises(KeyError, match="tokens"):
        dispersive.total_dispersive([DispersiveTerm(layer="tokens")], feats)


def test_policy_logs_dispersive_terms_for_every_named_layer(tiny_image_config):
    from dm1_ros.policy.model import GenerativePolicy

    tiny_image_config.dispersive = [DispersiveTerm(layer=layer) for layer in ("condition", "tokens", "head_hidden", "time_embedding")]
    policy = GenerativePolicy(tiny_image_config)
    batch = {
        "images": {"robot0_eye_in_hand_image": torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8)},
        "proprio": torch.randn(6, 9),
        "actions": torch.rand(6, 4, 7),
    }
    loss, logs = policy.compute_loss(batch)
    loss.backward()
    assert {k for k in logs if k.startswith("disp/")} == {f"disp/{l}/infonce_l2" for l in ("condition", "tokens", "head_hidden", "time_embedding")}
