"""A conditional 2-D multimodal task small enough to train in seconds: the one-step question in miniature.

Condition c in [-1, 1]; the action is a point drawn from four Gaussian modes on the unit circle whose
arrangement rotates with c (angle 2 pi k / 4 + c pi / 4). A sampler that averages modes lands in the middle,
where there is no data; this is what one-step flow matching does and what one-step MeanFlow must not do.

    policy = train_toy("meanflow", steps=1500)
    sw = evaluate_toy(policy, sampling_steps=1)      # sliced Wasserstein distance to the true distribution
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dm1_ros.policy.config import HeadConfig, LowDimConfig, MethodConfig, PolicyConfig
from dm1_ros.policy.model import GenerativePolicy

MODES = 4
RADIUS = 1.0
MODE_STD = 0.08


def sample_toy(cond: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """cond (N,) in [-1, 1] -> actions (N, 2)."""
    k = rng.integers(0, MODES, size=cond.shape[0])
    angle = 2 * math.pi * k / MODES + cond * math.pi / 4
    centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return (centre + MODE_STD * rng.standard_normal(centre.shape)).astype(np.float32)


def toy_config(method: str, hidden: int = 256) -> PolicyConfig:
    return PolicyConfig(
        image_keys=[],
        proprio_keys=["condition"],
        proprio_dims=[1],
        action_dim=2,
        chunk=1,
        encoder="mlp",
        lowdim=LowDimConfig(hidden=64, layers=2, out_dim=32),
        head=HeadConfig(hidden=hidden, blocks=2),
        # Adaptive weighting (p = 1, the MeanFlow paper's) on both methods: on this task it took 1-step MeanFlow
        # from 0.26 to 0.20 sliced-Wasserstein (1000 steps), level with 10-step flow matching.
        method=MethodConfig(name=method, adaptive_power=1.0),
    )


@dataclass
class ToyTrainArgs:
    method: str = "meanflow"  # meanflow | flow_matching
    steps: int = 1500  # optimizer steps
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0


def train_toy(method: str = "meanflow", steps: int = 1500, batch: int = 256, lr: float = 1e-3, seed: int = 0,
              log_every: int = 0) -> GenerativePolicy:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = GenerativePolicy(toy_config(method))
    fit_cond = rng.uniform(-1, 1, 4096).astype(np.float32)
    policy.proprio_normalizer.fit(fit_cond[:, None])
    policy.action_normalizer.fit(sample_toy(fit_cond, rng))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        cond = rng.uniform(-1, 1, batch).astype(np.float32)
        actions = sample_toy(cond, rng)
        loss, logs = policy.compute_loss(
            {"proprio": torch.from_numpy(cond[:, None]), "actions": torch.from_numpy(actions[:, None, :])}, generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log_every and step % log_every == 0:
            print(f"{method} step {step}: {logs}")
    return policy.eval()


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, projections: int = 128, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between equal-size point sets (N, D)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((x.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    px, py = np.sort(x @ dirs, axis=0), np.sort(y @ dirs, axis=0)
    return float(np.sqrt(np.mean((px - py) ** 2)))


def toy_samples(policy: GenerativePolicy, cond: float, n: int, sampling_steps: int, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    c = torch.full((n, 1), float(cond))
    return policy.select_action({}, c, steps=sampling_steps, generator=generator)[:, 0].numpy()


def evaluate_toy(policy: GenerativePolicy, sampling_steps: int, conditions: int = 8, n: int = 4096, seed: int = 123) -> float:
    """Mean sliced Wasserstein distance to the true conditional distribution over a grid of conditions."""
    rng = np.random.default_rng(seed)
    scores = []
    for i, c in enumerate(np.linspace(-0.9, 0.9, conditions)):
        truth = sample_toy(np.full(n, c, np.float32), rng)
        scores.append(sliced_wasserstein(toy_samples(policy, c, n, sampling_steps, seed + i), truth, seed=seed + i))
    return float(np.mean(scores))


def run_toy_demo(out_png: str | None = "docs/toy_onestep.png", steps: int = 1500, seed: int = 0) -> dict:
    """Train MeanFlow and flow matching on the toy task, compare 1-step and multi-step sampling, plot, and run the
    1-step MeanFlow sampler through the ONNX runtime the robot uses."""
    import tempfile
    import time

    from dm1_ros.policy.export import export_bundle
    from dm1_ros.runtime.onnx_policy import OnnxPolicy

    policies, train_s = {}, {}
    for method in ("meanflow", "flow_matching"):
        start = time.perf_counter()
        policies[method] = train_toy(method, steps=steps, seed=seed)
        train_s[method] = time.perf_counter() - start
        print(f"trained {method}: {steps} steps in {train_s[method]:.1f} s", flush=True)
    rows = [("meanflow", 1), ("meanflow", 2), ("flow_matching", 1), ("flow_matching", 2), ("flow_matching", 10)]
    scores = {f"{m}_{k}step": evaluate_toy(policies[m], k) for m, k in rows}
    rng = np.random.default_rng(seed)
    floor = np.mean([sliced_wasserstein(sample_toy(np.full(4096, c, np.float32), rng), sample_toy(np.full(4096, c, np.float32), rng))
                     for c in np.linspace(-0.9, 0.9, 8)])
    with tempfile.TemporaryDirectory() as tmp:
        export_bundle(policies["meanflow"], f"{tmp}/toy_meanflow")
        runtime = OnnxPolicy(f"{tmp}/toy_meanflow", threads=1, noise_seed=seed)
        onnx_scores = []
        for i, c in enumerate(np.linspace(-0.9, 0.9, 8)):
            pts = runtime.predict_batch({}, np.full((4096, 1), c, np.float32))[:, 0]
            onnx_scores.append(sliced_wasserstein(pts, sample_toy(np.full(4096, c, np.float32), rng), seed=i))
        scores["onnx_meanflow_1step"] = float(np.mean(onnx_scores))
        from dm1_ros.runtime.contract import Observation

        obs = Observation(images={}, proprio=np.zeros(1, np.float32))
        for _ in range(200):
            runtime.predict(obs)
        latency = runtime.latency_summary()
    print("\nsliced Wasserstein distance to the true conditional distribution (lower is better; "
          f"two independent data samples score {floor:.3f}):")
    print("| sampler | network evaluations | SW distance |\n|---|---:|---:|")
    for (m, k) in rows:
        print(f"| {m} | {k} | {scores[f'{m}_{k}step']:.3f} |")
    print(f"| meanflow via onnxruntime | 1 | {scores['onnx_meanflow_1step']:.3f} |")
    print(f"\nonnxruntime 1-step latency: p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms")
    if out_png:
        plot_toy(policies, out_png, seed)
        print(f"plot: {out_png}")
    return {"scores": scores, "floor": float(floor), "train_s": train_s, "latency": latency}


def plot_toy(policies: dict, out_png: str, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path

    panels = [("data", None, None), ("MeanFlow, 1 step", "meanflow", 1), ("flow matching, 1 step", "flow_matching", 1),
              ("flow matching, 10 steps", "flow_matching", 10)]
    conds = (-0.8, 0.0, 0.8)
    colors = ("tab:blue", "tab:orange", "tab:green")
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), sharex=True, sharey=True)
    rng = np.random.default_rng(seed)
    for ax, (title, method, k) in zip(axes, panels):
        for c, color in zip(conds, colors):
            pts = sample_toy(np.full(600, c, np.float32), rng) if method is None else toy_samples(policies[method], c, 600, k, seed)
            ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color=color, label=f"c = {c:+.1f}")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.6, 1.6)
    axes[0].legend(loc="lower left", fontsize=8, markerscale=3)
    fig.suptitle("Conditional 4-mode task: one network evaluation, MeanFlow vs flow matching")
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
