"""Strict configuration and checkpoints."""
import pytest
import torch

from dm1_ros.configuration import ConfigError, from_dict, load_yaml, to_dict
from dm1_ros.policy.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from dm1_ros.policy.config import PolicyConfig
from dm1_ros.policy.model import GenerativePolicy


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key head\.widht"):
        from_dict(PolicyConfig, {"head": {"widht": 3}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"head\.hidden: expected an integer, got str"):
        from_dict(PolicyConfig, {"head": {"hidden": "big"}})
    with pytest.raises(ConfigError, match=r"method\.name: 'diffusion' is not one of"):
        from_dict(PolicyConfig, {"method": {"name": "diffusion"}})
    with pytest.raises(ConfigError, match=r"dispersive\[0\]\.weight: expected a number"):
        from_dict(PolicyConfig, {"dispersive": [{"layer": "condition", "weight": "high"}]})


def test_yaml_round_trip_with_overrides(tmp_path):
    import yaml

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(to_dict(PolicyConfig())))
    cfg = load_yaml(PolicyConfig, path, ["method.name=flow_matching", "head.hidden=512"])
    assert cfg.method.name == "flow_matching" and cfg.head.hidden == 512
    assert to_dict(cfg)["vision"] == to_dict(PolicyConfig())["vision"]
    with pytest.raises(ConfigError, match="policy.yaml: unknown key method.nme"):
        load_yaml(PolicyConfig, path, ["method.nme=1"])


def test_checkpoint_round_trip(tiny_policy, tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", tiny_policy, step=3)
    loaded, payload = load_checkpoint(path)
    assert payload["step"] == 3
    images = {"robot0_eye_in_hand_image": torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)}
    proprio, noise = torch.randn(2, 9), torch.randn(2, 4, 7)
    with torch.no_grad():
        assert torch.allclose(loaded(images, proprio, noise), tiny_policy(images, proprio, noise), atol=1e-6)
    assert torch.equal(loaded.action_normalizer.high, tiny_policy.action_normalizer.high)


def test_checkpoint_from_another_architecture_is_refused(tiny_policy, tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", tiny_policy)
    payload = read_checkpoint(path)
    payload["config"]["head"]["hidden"] = 32  # config says one thing, weights another
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="another architecture: .*head.inp.weight has shape"):
        load_checkpoint(path)


def test_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_invalid_config_combination_is_rejected():
    with pytest.raises(ValueError, match="state-only"):
        PolicyConfig(encoder="mlp")
    assert GenerativePolicy(PolicyConfig(encoder="mlp", image_keys=[])).cond_dim == 64 + 9
