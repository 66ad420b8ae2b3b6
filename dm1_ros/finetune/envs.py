"""robosuite tasks as gymnasium environments for PPO rollouts, vectorized in subprocesses.

One environment step executes the first `act_steps` actions of an action chunk (robot units, (act_steps, 7)) and
returns the summed sparse reward: 1 on the step the task succeeds, which also terminates the episode; an episode
longer than the task's step limit is truncated. Observations: {"proprio": (P,) float32, <camera>_image: (H, W, 3)
uint8}, with the policy's proprio layout (optionally including the object state, see SimConfig.proprio_keys).

    envs = make_vector_env(EnvSpec(task="lift", proprio_keys=[...]), num_envs=2, asynchronous=True, seed=0)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from dm1_ros.runtime.contract import PROPRIO_KEYS


@dataclass
class EnvSpec:
    """What the policy needs from the simulator; picklable, so subprocesses build their own environments."""

    task: str = "lift"
    cameras: list[str] = field(default_factory=list)  # [] for low-dimensional policies
    image_size: list[int] = field(default_factory=lambda: [96, 96])
    proprio_keys: list[str] = field(default_factory=lambda: list(PROPRIO_KEYS))
    act_steps: int = 4  # actions of each chunk executed open loop per decision
    max_steps: int = 0  # 0: the task's default episode limit (simulator steps)
    # Potential-based shaping (Ng et al. 1999): reward += weight * (phi(s') - phi(s)) with phi = robosuite's staged
    # dense reward (reach, grasp, lift). It telescopes over an episode, so it leaves the best policy unchanged while
    # giving every step a signal; 0 keeps the sparse success reward alone.
    shaping_weight: float = 0.0


class SimGymEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, spec: EnvSpec):
        from dm1_ros.sim.env import SimConfig, SimEnv

        self.spec_ = spec
        self.sim = SimEnv(SimConfig(task=spec.task, cameras=list(spec.cameras) or ["robot0_eye_in_hand"], image_size=list(spec.image_size),
                                    use_images=bool(spec.cameras), max_steps=spec.max_steps, proprio_keys=list(spec.proprio_keys),
                                    reward_shaping=spec.shaping_weight > 0))
        self._potential = 0.0
        obs_spec = self.sim.observation_spec
        spaces = {"proprio": gym.spaces.Box(-np.inf, np.inf, (obs_spec.proprio_dim,), np.float32)}
        for image in obs_spec.images:
            spaces[image.name] = gym.spaces.Box(0, 255, image.shape, np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.act_steps, 7), np.float32)

    def _obs(self, observation) -> dict:
        return {"proprio": observation.proprio.astype(np.float32), **observation.images}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**31 - 1))  # reproducible from the vector env's seed
        observation = self.sim.reset(seed=episode_seed)
        self._potential = self.sim.shaped_reward() if self.spec_.shaping_weight > 0 else 0.0
        return self._obs(observation), {"episode_seed": episode_seed, "env_steps": 0, "success": False}

    def step(self, action):
        action = np.asarray(action, np.float64).reshape(self.spec_.act_steps, 7)
        reward, success, executed = 0.0, False, 0
        for a in action:
            observation, sim_reward, done, info = self.sim.step(a)
            executed += 1
            success = bool(info["success"])
            if success:
                reward += 1.0
            if done:
                break
        if self.spec_.shaping_weight > 0:
            potential = sim_reward  # with reward_shaping on, step() already returns the staged reward of the new state
            reward += self.spec_.shaping_weight * (potential - self._potential)
            self._potential = potential
        truncated = (not success) and self.sim.steps >= self.sim.config.max_steps
        return self._obs(observation), reward, success, truncated, {"env_steps": executed, "success": success}

    def close(self):
        self.sim.close()


def _factory(spec: EnvSpec):
    return lambda: SimGymEnv(spec)


def make_vector_env(spec: EnvSpec, num_envs: int, asynchronous: bool = True, context: str = "spawn"):
    """gymnasium vector env with same-step autoreset (a finished episode's last observation is in
    info["final_obs"], the returned observation is the next episode's first). asynchronous: one subprocess each."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    fns = [_factory(spec) for _ in range(num_envs)]
    if asynchronous:
        return AsyncVectorEnv(fns, context=context, autoreset_mode=AutoresetMode.SAME_STEP, shared_memory=False)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
