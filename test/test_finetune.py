"""PPO fine-tuning (SPEC §4): the chain's log-probability, the PPO and BC updates, and a tiny end-to-end run."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from dm1_ros.configuration import ConfigError, from_dict, load_yaml
from dm1_ros.finetune.chain import STD_MAX, STD_MIN, ChainPolicy, bc_loss
from dm1_ros.finetune.config import FinetuneConfig
from dm1_ros.finetune.critic import Critic
from dm1_ros.finetune.loop import COLUMNS, ppo_update
from dm1_ros.finetune.ppo import RewardScaler, gae
from dm1_ros.policy.config import HeadConfig, LowDimConfig, PolicyConfig
from dm1_ros.policy.model import GenerativePolicy

LIFT_KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
ROOT = Path(__file__).resolve().parent.parent


def lowdim_policy(proprio_dims=(2,), keys=None, chunk=1, action_dim=1, seed=0, hidden=32) -> GenerativePolicy:
    cfg = PolicyConfig(image_keys=[], encoder="mlp", proprio_keys=list(keys or [f"s{i}" for i in range(len(proprio_dims))]),
                       proprio_dims=list(proprio_dims), chunk=chunk, action_dim=action_dim,
                       lowdim=LowDimConfig(hidden=hidden, layers=1, out_dim=16), head=HeadConfig(hidden=hidden))
    torch.manual_seed(seed)
    policy = GenerativePolicy(cfg)
    policy.action_normalizer.fit(np.stack([-np.ones(action_dim), np.ones(action_dim)]))
    p = sum(proprio_dims)
    policy.proprio_normalizer.fit(np.stack([-2 * np.ones(p), 2 * np.ones(p)]))
    return policy


@pytest.mark.parametrize("steps", [1, 2])
def test_chain_log_prob_equals_a_direct_gaussian_computation(steps):
    policy = ChainPolicy(lowdim_policy((3,), chunk=2, action_dim=3), steps=steps)
    with torch.no_grad():  # a noise net whose std differs per dimension and per observation
        policy.noise.out.weight.normal_(0, 2.0)
        policy.noise.out.bias.normal_(0, 1.0)
    g = torch.Generator().manual_seed(1)
    proprio = torch.randn(5, 3, generator=g)
    cond = policy.encode({}, proprio)
    chain = policy.sample(cond, g)
    assert chain.shape == (5, steps + 1, 6)

    expected = Normal(0.0, 1.0).log_prob(chain[:, 0]).sum(-1)
    transitions = torch.zeros(5)
    times = np.linspace(1.0, 0.0, steps + 1)
    for k in range(steps):  # written out from SPEC §4, not through ChainPolicy.mean_step
        t, r = torch.tensor([times[k]], dtype=torch.float32), torch.tensor([times[k + 1]], dtype=torch.float32)
        u, _ = policy.actor.velocity(chain[:, k], r, t, cond)
        mu = chain[:, k] - float(times[k] - times[k + 1]) * u
        std = policy.noise.log_std(cond, k).exp()
        assert float(std.detach().std()) > 1e-3  # the check below would not notice a mixed-up std otherwise
        transitions = transitions + Normal(mu, std).log_prob(chain[:, k + 1]).sum(-1)
    expected = expected + transitions
    with torch.no_grad():
        got, _ = policy.log_prob(cond, chain, "sum", include_initial=True)
        got_mean, _ = policy.log_prob(cond, chain, "mean")
        other, _ = policy.log_prob(cond, chain.flip(0), "sum", include_initial=True)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got_mean, transitions / (steps * 6), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other, expected, atol=1e-2)  # another chain has another density
    # a rollout's log-probability, computed while sampling, is the same number
    sampled, logp_while_sampling = policy.sample_with_log_prob(cond, torch.Generator().manual_seed(3), "sum")
    with torch.no_grad():
        torch.testing.assert_close(logp_while_sampling, policy.log_prob(cond, sampled, "sum")[0], atol=1e-4, rtol=1e-5)


def test_noise_free_chain_is_the_deployed_sampler():
    actor = lowdim_policy((3,), chunk=2, action_dim=3)
    policy = ChainPolicy(actor, steps=1)
    proprio = torch.randn(4, 3)
    x0 = torch.randn(4, 6)
    with torch.no_grad():
        cond = policy.encode({}, proprio)
        deployed = actor(images={}, proprio=proprio, noise=x0.reshape(4, 2, 3), steps=1)
        chain = torch.stack([x0, policy.mean_chain(cond, x0)], dim=1)
    torch.testing.assert_close(policy.actions(chain), deployed)


def test_log_std_stays_inside_its_bounds():
    for direction in (1.0, -1.0):  # push the std as far up (or down) as it goes
        policy = ChainPolicy(lowdim_policy((3,), chunk=2, action_dim=3), steps=2)
        cond = policy.encode({}, torch.randn(64, 3) * 10).detach()
        opt = torch.optim.Adam(policy.noise.parameters(), lr=0.3)
        for _ in range(60):
            loss = -direction * sum(policy.noise.log_std(cond, k).mean() for k in range(2))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            std = torch.cat([policy.noise.log_std(cond * s, k).exp() for k in range(2) for s in (1.0, 100.0)])
        assert float(std.min()) >= STD_MIN - 1e-6 and float(std.max()) <= STD_MAX + 1e-6
        assert (float(std.max()) > 0.11) if direction > 0 else (float(std.min()) < 0.06)  # it did move
    with pytest.raises(ConfigError, match="std_min <= init_std"):
        FinetuneConfig(std_min=0.1, init_std=0.08)


def test_gae_and_reward_scaling():
    adv, ret = gae(np.array([[0.0], [0.0], [1.0], [0.0]]), np.zeros((4, 1)), np.array([[0.0], [0.0], [1.0], [0.0]]),
                   np.array([2.0]), gamma=0.9, lam=1.0)
    np.testing.assert_allclose(adv[:, 0], [0.81, 0.9, 1.0, 1.8], rtol=1e-6)  # the episode end cuts the bootstrap
    np.testing.assert_allclose(ret, adv)
    scaler = RewardScaler(2, gamma=0.99)
    scaled = [scaler(np.array([1.0, 0.0]) * 10, np.array([False, False])) for _ in range(200)]
    assert 0.0 < abs(scaled[-1][0]) < 1.0  # a reward of 10 every step is scaled down to O(1)


def _bandit_batch(policy, critic, n, g):
    """Contextual bandit: context c in [-1, 1]^2, reward -(a - 0.6 c_0)^2 for a 1-d action."""
    c = torch.rand(n, 2, generator=g) * 2 - 1
    with torch.no_grad():
        cond = policy.encode({}, c)
        chain = policy.sample(cond, g)
        logp, _ = policy.log_prob(cond, chain)
        a = policy.actions(chain)[:, 0, 0]
        reward = -(a - 0.6 * c[:, 0]).pow(2)
        value = critic({}, c)
    return {"images": {}, "proprio": c, "chains": chain, "logp": logp, "advantages": reward - value, "returns": reward}


def _bandit_reward(policy, n=512, seed=123):
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 2 - 1
    with torch.no_grad():
        chain = policy.sample(policy.encode({}, c), g, deterministic=True)
        return float(-(policy.actions(chain)[:, 0, 0] - 0.6 * c[:, 0]).pow(2).mean())


def test_ppo_update_raises_the_expected_reward_on_a_contextual_bandit():
    torch.manual_seed(0)
    policy = ChainPolicy(lowdim_policy((2,), seed=3), steps=1, init_std=0.12)
    critic = Critic(policy.actor.config, policy.actor.proprio_normalizer, hidden=32, layers=1)
    cfg = FinetuneConfig(clip=0.2, target_kl=0.0, update_epochs=4, minibatch_size=128, entropy_coef=0.0)
    opts = {"actor": torch.optim.Adam(policy.actor.parameters(), lr=3e-3), "noise": torch.optim.Adam(policy.noise.parameters(), lr=1e-3),
            "critic": torch.optim.Adam(critic.parameters(), lr=3e-3)}
    g = torch.Generator().manual_seed(0)
    before = _bandit_reward(policy)
    for _ in range(25):
        logs = ppo_update(policy, critic, None, _bandit_batch(policy, critic, 256, g), cfg, opts, bc_coef=0.0, update_actor=True, generator=g)
    after = _bandit_reward(policy)
    assert logs["approx_kl"] > 0 and 0 <= logs["clipfrac"] <= 1
    assert after > 0.5 * before, (before, after)  # measured: -0.25 -> about -0.02 (rewards are negative)


def test_bc_term_pulls_the_policy_toward_the_reference():
    reference = lowdim_policy((2,), chunk=2, action_dim=2, seed=1).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    c = torch.rand(128, 2, generator=g) * 2 - 1
    batch = {"images": {}, "proprio": c, "chains": torch.zeros(128, 2, 4), "logp": torch.zeros(128),
             "advantages": torch.zeros(128), "returns": torch.zeros(128)}  # no advantage: only BC can move the actor
    cfg = FinetuneConfig(entropy_coef=0.0, update_epochs=5, minibatch_size=64, target_kl=0.0)

    def distance(policy):
        with torch.no_grad():
            x0 = torch.randn(256, 4, generator=torch.Generator().manual_seed(9))
            p = torch.rand(256, 2, generator=torch.Generator().manual_seed(8)) * 2 - 1
            return float((policy.mean_chain(policy.encode({}, p), x0) - ChainPolicy(reference).mean_chain(reference.encode({}, p)[0], x0)).pow(2).mean())

    results = {}
    for coef in (0.0, 1.0):
        actor = copy.deepcopy(reference).requires_grad_(True)
        with torch.no_grad():
            for p in actor.head.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.3)
        policy = ChainPolicy(actor)
        critic = Critic(actor.config, actor.proprio_normalizer, hidden=16, layers=1)
        opts = {"actor": torch.optim.Adam(actor.parameters(), lr=1e-2), "noise": torch.optim.Adam(policy.noise.parameters(), lr=1e-3),
                "critic": torch.optim.Adam(critic.parameters(), lr=1e-3)}
        start = distance(policy)
        assert float(bc_loss(policy, reference, {}, c).detach()) > 0
        for _ in range(8):
            ppo_update(policy, critic, reference, batch, cfg, opts, bc_coef=coef, update_actor=True, generator=g)
        results[coef] = (start, distance(policy))
    assert results[1.0][1] < 0.2 * results[1.0][0], results  # BC pulls toward the reference
    assert results[0.0][1] == pytest.approx(results[0.0][0], rel=1e-6), results  # without it nothing moves the actor


def test_unknown_config_key_fails_naming_it_and_shipped_recipes_load(tmp_path):
    with pytest.raises(ConfigError, match="unknown key bc_coef_strat"):
        from_dict(FinetuneConfig, {"bc_coef_strat": 0.1})
    for path in sorted((ROOT / "config" / "finetune").glob("*.yaml")):
        cfg = load_yaml(FinetuneConfig, path)
        assert cfg.chain_steps == 1 and cfg.std_min == 0.05 and cfg.std_max == 0.12, path
    names = {p.name for p in (ROOT / "config" / "finetune").glob("*.yaml")}
    assert {"can_image.yaml", "can_lowdim.yaml", "lift_lowdim.yaml"} <= names
    result = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "finetune", "--config", str(ROOT / "config/finetune/lift_lowdim.yaml"),
                             "--set", "rollout_stpes=3"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "unknown key rollout_stpes" in result.stderr, result.stderr


def test_tiny_lowdim_finetune_runs_resumes_and_exports_a_deployable_bundle(tmp_path):
    from dm1_ros.finetune.loop import finetune
    from dm1_ros.policy.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
    from dm1_ros.runtime.contract import Observation
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.train.evaluate import EvalArgs, evaluate

    init = lowdim_policy((3, 4, 2, 10), keys=LIFT_KEYS, chunk=4, action_dim=7, hidden=32)
    save_checkpoint(tmp_path / "init.pt", init, init)
    base = dict(init=str(tmp_path / "init.pt"), out_dir=str(tmp_path / "run"), task="lift", num_envs=2, rollout_steps=3,
                max_steps=16, critic_warmup_iters=1, eval_every=2, eval_episodes=2, update_epochs=2, minibatch_size=4,
                threads=1, export="none")
    # subprocess environments (evaluation off here: spawning its environments too would double the start-up time)
    first = finetune(FinetuneConfig(**{**base, "eval_episodes": 0}, iterations=2, asynchronous=True), progress=False)
    assert first["iterations"] == 2 and first["env_steps"] == 2 * 3 * 2 * 4 and "bundle" not in first
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["iteration"] == 2 and payload["noise_state_dict"] and payload["critic_state_dict"]

    # --resume through the command line continues at iteration 2, then exports the bundle
    result = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "finetune", "--config", str(ROOT / "config/finetune/lift_lowdim.yaml"),
                             "--init", str(tmp_path / "init.pt"), "--resume", "--no-progress",
                             *[f"--set={k}={v}" for k, v in {**base, "iterations": 3, "asynchronous": "false", "export": "''"}.items()
                               if k != "init"]], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed" in result.stdout and "at iteration 2" in result.stdout
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["iteration", "1", "2", "3"]
    assert rows[-1].split(",")[COLUMNS.index("eval/episodes")] == "2"  # evaluated at the end
    assert rows[-1].split(",")[1] == str(3 * 3 * 2 * 4)  # env steps carried over the resume
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000

    policy, payload = load_checkpoint(tmp_path / "run" / "last.pt")  # `dm1 export` reads the fine-tuned actor
    assert payload["iteration"] == 3 and policy.config.proprio_keys == LIFT_KEYS
    changed = any(not torch.equal(a, b) for a, b in zip(policy.state_dict().values(), init.state_dict().values()))
    assert changed  # the actor learned something (iterations 2 and 3 update it)

    runtime = OnnxPolicy(tmp_path / "run" / "bundle", threads=1)
    assert runtime.manifest.observation.proprio_keys == LIFT_KEYS and runtime.manifest.observation.proprio_dim == 19
    assert runtime.manifest.execution == "chunk"  # rolled out whole chunks (act_steps = chunk), deployed the same way
    chunk = runtime.predict(Observation(images={}, proprio=np.zeros(19, np.float32)))
    assert chunk.actions.shape == (4, 7) and np.all(np.isfinite(chunk.actions))
    summary = evaluate(EvalArgs(model=str(tmp_path / "run" / "bundle"), task="lift", episodes=1, max_steps=3), progress=False)
    assert summary["episodes"] == 1 and summary["mean_steps"] == 3  # `dm1 eval` feeds it the object state


def test_potential_shaping_telescopes_and_rewards_reaching():
    pytest.importorskip("robosuite")
    from dm1_ros.finetune.envs import EnvSpec, SimGymEnv

    env = SimGymEnv(EnvSpec(task="lift", proprio_keys=LIFT_KEYS, act_steps=2, shaping_weight=2.0))
    try:
        obs, _ = env.reset(seed=0)
        start, total = env._potential, 0.0
        cube = obs["proprio"][9:12]
        for _ in range(6):  # move the open hand straight at the cube: no success, so every reward is shaping
            eef = env.sim.observation().proprio[:3]
            step = np.clip((cube - eef) * 20, -1, 1)
            _, reward, success, _, _ = env.step(np.tile([*step, 0, 0, 0, -1], (2, 1)))
            assert not success
            total += reward
        assert total == pytest.approx(2.0 * (env.sim.shaped_reward() - start), abs=1e-9)  # telescopes
        assert total > 0.05  # closer to the cube: higher potential
    finally:
        env.close()


def test_finetune_under_torchrun_takes_one_step_across_two_ranks(tmp_path):
    """2 CPU ranks (gloo), each with its own environment and rollout buffer: DDP averages the learner's gradients,
    the target-KL stop is agreed, the ranks end with the same actor and critic (hashes compared across ranks), rank 0
    alone writes, and the environment steps of both ranks are counted."""
    import os

    from dm1_ros.policy.checkpoint import read_checkpoint, save_checkpoint

    init = lowdim_policy((3, 4, 2, 10), keys=LIFT_KEYS, chunk=4, action_dim=7, hidden=32)
    save_checkpoint(tmp_path / "init.pt", init, init)
    settings = dict(out_dir=str(tmp_path / "run"), task="lift", num_envs=1, asynchronous="false", rollout_steps=3,
                    max_steps=16, critic_warmup_iters=1, eval_every=0, update_epochs=2, minibatch_size=2, threads=1,
                    iterations=2, target_kl=0.001, export="none")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dm1_ros.cli",
         "finetune", "--config", str(ROOT / "config/finetune/lift_lowdim.yaml"), "--init", str(tmp_path / "init.pt"),
         "--no-progress", *[f"--set={k}={v}" for k, v in settings.items()]],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "2 ranks in step at iteration 2: weights" in result.stdout
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["iteration", "1", "2"]  # one writer
    assert rows[-1].split(",")[1] == str(2 * 2 * 3 * 1 * 4)  # ranks x iterations x decisions x envs x actions
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["iteration"] == 2
    assert any(not torch.equal(a, b) for a, b in zip(payload["state_dict"].values(), init.state_dict().values()))


@pytest.mark.parametrize("task, tag", [("lift", "rerun_v3_"), ("can", "rerun_v1_")])
def test_committed_finetuning_rows_have_their_models(task, tag):
    """Every row of the committed fine-tuning table names a bundle in the repository that loads and is the very graph
    the row measured (the evaluation's model id ends with the ONNX file's digest)."""
    import json

    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    root = Path(__file__).resolve().parents[1] / "results" / "finetune"
    rows = {"start": f"{task}_weak_start", "ppo_bc": f"{task}_{tag}bc_final", "ppo_no_bc": f"{task}_{tag}no_bc_final"}
    confirm = json.loads((root / "committed" / f"{task}_confirm.json").read_text())["rows"]
    for name, result in rows.items():
        bundle = root / "bundles" / f"{task}_{name}"
        policy = OnnxPolicy(bundle, threads=1, warmup=0)  # checks the file's digest against its manifest
        digest = policy.manifest.onnx.sha256[:8]
        assert json.loads((root / "committed" / f"{result}.json").read_text())["model_id"].endswith(digest)
        assert confirm[name]["model"] == f"results/finetune/bundles/{task}_{name}"
        assert policy.predict(policy.dummy_observation()).actions.shape == (4, 7)
