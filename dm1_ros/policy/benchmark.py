"""`dm1 bench inference`: latency of the default image policy, every variant measured side by side in one run.

Rounds interleave the variants so that a noisy machine slows all of them alike; ratios are what to read. Each
variant's turn is followed by a pause (SETTLE_S): onnxruntime's worker threads keep spinning for about 40 ms after a
call (its default, and the reference's), and on 2 cores that spin would otherwise take a core from whichever variant
runs next. The round's order rotates, so no variant always follows the same one.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dm1_ros.policy.config import MethodConfig, PolicyConfig
from dm1_ros.policy.export import export_bundle
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.onnx_policy import OnnxPolicy

SETTLE_S = 0.15  # longer than onnxruntime's spin after a call (about 40 ms measured here)
CAMERA_HZ = 30.0


def _stats(samples_s: list[float]) -> dict:
    x = np.asarray(samples_s) * 1e3
    p50 = float(np.percentile(x, 50))
    return {"p50_ms": round(p50, 4), "p99_ms": round(float(np.percentile(x, 99)), 4), "hz": round(1e3 / p50, 1), "n": int(x.size)}


def fast_network_config() -> PolicyConfig:
    """The network of config/train/lift_image_fast.yaml (12x12 patches, 512-wide head), read from the recipe."""
    from dm1_ros.configuration import load_yaml
    from dm1_ros.paths import default_config_path
    from dm1_ros.train.pretrain import TrainConfig

    return load_yaml(TrainConfig, default_config_path("train/lift_image_fast.yaml")).policy


def random_policy(method: str = "meanflow", seed: int = 0, fast: bool = False) -> GenerativePolicy:
    torch.manual_seed(seed)
    config = fast_network_config() if fast else PolicyConfig()
    config.method = MethodConfig(name=method)
    config.dispersive = []  # a training-only term; the benchmark times the deployed graph
    policy = GenerativePolicy(config)
    rng = np.random.default_rng(seed)
    policy.action_normalizer.fit(rng.uniform(-1, 1, (256, 7)))
    policy.proprio_normalizer.fit(rng.uniform(-1, 1, (256, 9)))
    return policy.eval()


def plain_session(bundle: Path, threads: int = 2):
    """The reference: the bundle's model.onnx in a plain onnxruntime session (default options, 2 threads), fed
    directly, without the runtime's input checks."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(Path(bundle) / "model.onnx"), options, providers=["CPUExecutionProvider"])
    runtime = OnnxPolicy(bundle, warmup=0)
    obs = runtime.dummy_observation()
    feeds = {name: image[None] for name, image in obs.images.items()}
    feeds.update(proprio=obs.proprio[None], noise=np.zeros((1, *runtime.chunk_shape), np.float32))
    return lambda: session.run(None, feeds)


def bench_inference(model: str | None = None, iters: int = 300, rounds: int = 5, train_iters: int = 8, train_batch: int = 64,
                    reference: str | None = None, cadence_iters: int = 100, others: dict[str, str] | None = None) -> dict:
    """Returns {'inference': {name: stats}, 'ratios': {...}, 'training': {...}, 'machine': {...}}.

    model: also time this bundle through the runtime (OnnxPolicy.predict, input checks included) on one thread (the
    runtime's default) and on two with each way onnxruntime's pool can wait (OnnxPolicy's `spinning`), and the CPU
    each costs at 30 Hz; reference: a bundle
    timed in a plain onnxruntime session, and the model's speed-up over it. `at_30hz`: the model's ways of waiting
    and the reference again, one call per camera frame (cadence_iters calls each). others: {label: bundle} timed
    through the runtime with its defaults beside the model (e.g. the float bundle an int8 one was made from)."""
    torch.set_num_threads(2)
    policy = random_policy()
    work = Path(tempfile.mkdtemp(prefix="dm1-bench-"))
    bundles = {}
    if model:
        bundles["onnx_bundle"] = Path(model)
    bundles.update({label: Path(path) for label, path in (others or {}).items()})
    bundles["onnx_meanflow_1step_fast_network"] = work / "fast"
    export_bundle(random_policy(fast=True), bundles["onnx_meanflow_1step_fast_network"], steps=1)
    for steps in (1, 5, 10):
        bundles[f"onnx_meanflow_{steps}step"] = work / f"mf{steps}"
        export_bundle(policy, bundles[f"onnx_meanflow_{steps}step"], steps=steps)
    fm = random_policy("flow_matching")
    bundles["onnx_flow_matching_10step"] = work / "fm10"
    export_bundle(fm, bundles["onnx_flow_matching_10step"], steps=10)

    runners = {}
    as_deployed = {"onnx_bundle", *(others or {})}  # with the runtime's defaults (one thread); random networks on two
    for name, path in bundles.items():
        threads = [None] if name in as_deployed else [1, 2] if name == "onnx_meanflow_1step" else [2]
        for th in threads:
            label = f"{name}_{th}thread" if name == "onnx_meanflow_1step" else name
            kwargs = {} if th is None else {"threads": th}
            p = OnnxPolicy(path, providers=["CPUExecutionProvider"], warmup=20, **kwargs)
            obs = p.dummy_observation()
            runners[label] = (lambda p=p, obs=obs: p.predict(obs))
    waiting = {}
    if model:  # onnx_bundle above runs on one thread (the runtime's default); on two, the ways its pool can wait
        for label, mode in (("onnx_bundle_2thread_in_run", "in_run"), ("onnx_bundle_2thread_parked", "never"),
                            ("onnx_bundle_2thread_spinning", "always")):
            waiting[label] = OnnxPolicy(model, providers=["CPUExecutionProvider"], threads=2, warmup=20, spinning=mode)
            runners[label] = (lambda p=waiting[label], obs=waiting[label].dummy_observation(): p.predict(obs))
    if reference:
        runners["reference_plain_onnxruntime"] = plain_session(Path(reference))
    spec = bundles["onnx_meanflow_1step"]
    obs_np: Observation = OnnxPolicy(spec, warmup=0).dummy_observation()
    images = {k: torch.from_numpy(v[None]) for k, v in obs_np.images.items()}
    proprio = torch.from_numpy(obs_np.proprio[None])
    noise = torch.randn(1, 4, 7)
    for steps in (1, 10):
        def eager(steps=steps):
            with torch.inference_mode():
                policy(images, proprio, noise, steps)
        runners[f"torch_eager_meanflow_{steps}step"] = eager
    for run in runners.values():
        for _ in range(10):
            run()
    inference = {name: _stats(s) for name, s in interleaved(runners, iters, rounds).items()}
    one = inference["onnx_meanflow_1step_2thread"]["p50_ms"]
    ratios = {
        "onnx_1step_vs_10step_speedup": round(inference["onnx_meanflow_10step"]["p50_ms"] / one, 2),
        "onnx_1step_vs_5step_speedup": round(inference["onnx_meanflow_5step"]["p50_ms"] / one, 2),
        "onnx_1step_vs_flow_matching_10step_speedup": round(inference["onnx_flow_matching_10step"]["p50_ms"] / one, 2),
        "onnx_vs_torch_eager_1step_speedup": round(inference["torch_eager_meanflow_1step"]["p50_ms"] / one, 2),
        "onnx_2thread_vs_1thread_speedup": round(inference["onnx_meanflow_1step_1thread"]["p50_ms"] / one, 2),
        "fast_network_vs_dmpo_network_speedup": round(one / inference["onnx_meanflow_1step_fast_network"]["p50_ms"], 2),
    }
    for label in (others or {}) if model else {}:
        ratios[f"bundle_vs_{label}_speedup"] = round(inference[label]["p50_ms"] / inference["onnx_bundle"]["p50_ms"], 2)
    if reference:
        plain = inference["reference_plain_onnxruntime"]["p50_ms"]
        ratios["onnx_1step_runtime_vs_reference_plain_speedup"] = round(plain / one, 2)
        if model:
            ratios["bundle_runtime_vs_reference_plain_speedup"] = round(plain / inference["onnx_bundle"]["p50_ms"], 2)
            for label in waiting:
                ratios[f"bundle_runtime_{label.removeprefix('onnx_bundle_')}_vs_reference_plain_speedup"] = round(
                    plain / inference[label]["p50_ms"], 2)
    cpu, cadence = {}, {}
    if model:  # what each way of waiting costs the robot PC between camera frames, and the latency it sees then
        cpu["onnx_bundle"] = cpu_at_rate(runners["onnx_bundle"])
        cpu.update({label: cpu_at_rate(runners[label]) for label in waiting})
        at_rate = {name: runners[name] for name in ("onnx_bundle", *waiting, "reference_plain_onnxruntime") if name in runners}
        cadence = {name: _stats(s) for name, s in interleaved(at_rate, cadence_iters, rounds, period_s=1.0 / CAMERA_HZ).items()}
        if reference:
            ratios["bundle_runtime_vs_reference_plain_at_30hz_speedup"] = round(
                cadence["reference_plain_onnxruntime"]["p50_ms"] / cadence["onnx_bundle"]["p50_ms"], 2)
    training = bench_training(train_iters, train_batch)
    return {"inference": inference, "ratios": ratios, "cpu_percent_of_a_core_at_30hz": cpu, "at_30hz": cadence,
            "training": training, "parameters": policy.parameter_breakdown()["total"], "machine": machine()}


def interleaved(runners: dict, iters: int, rounds: int, period_s: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each runner: `rounds` rounds, each giving every runner a turn of iters // rounds calls,
    in an order that rotates by one each round, with SETTLE_S of quiet after every turn. period_s > 0: one call per
    period (a camera's cadence: caches cold, threads parked between calls) instead of back to back."""
    names = list(runners)
    samples = {name: [] for name in names}
    per_turn = max(1, iters // rounds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            run = runners[name]
            for _ in range(per_turn):
                if period_s:
                    time.sleep(period_s)
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
            time.sleep(SETTLE_S)
    return samples


def cpu_at_rate(call, rate_hz: float = 30.0, seconds: float = 3.0) -> float:
    """Process CPU time per wall second, in % of one core, while `call` runs at `rate_hz` (a camera's frame rate)."""
    cpu, start = time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        time.sleep(1.0 / rate_hz)
    return round((time.process_time() - cpu) / (time.perf_counter() - start) * 100, 1)


def bench_training(iters: int, batch: int) -> dict:
    """Seconds per optimizer step (forward + backward + AdamW), MeanFlow vs flow matching, interleaved."""
    g = torch.Generator().manual_seed(0)
    data = {
        "images": {"robot0_eye_in_hand_image": torch.randint(0, 256, (batch, 96, 96, 3), dtype=torch.uint8, generator=g)},
        "proprio": torch.rand(batch, 9, generator=g) * 2 - 1,
        "actions": torch.rand(batch, 4, 7, generator=g) * 2 - 1,
    }
    setups = {}
    for method in ("meanflow", "flow_matching"):
        policy = random_policy(method).train()
        setups[method] = (policy, torch.optim.AdamW(policy.parameters(), lr=1e-4))
    times = {m: [] for m in setups}
    for i in range(iters + 1):
        for method, (policy, opt) in setups.items():
            start = time.perf_counter()
            loss, _ = policy.compute_loss(data)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i > 0:  # first step warms up the allocator
                times[method].append(time.perf_counter() - start)
    out = {f"{m}_step_ms": round(float(np.median(t)) * 1e3, 1) for m, t in times.items()}
    out["batch"] = batch
    out["meanflow_vs_flow_matching_ratio"] = round(out["meanflow_step_ms"] / out["flow_matching_step_ms"], 3)
    return out


def machine() -> dict:
    import os

    import onnxruntime

    from dm1_ros.runtime.cpu import cpu_description

    return {"cpu": cpu_description(), "cores": os.cpu_count(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}


def format_table(result: dict) -> str:
    lines = ["| variant | p50 ms | p99 ms | Hz |", "|---|---:|---:|---:|"]
    for name, s in result["inference"].items():
        lines.append(f"| {name} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['hz']:.0f} |")
    lines.append("")
    lines += [f"- {k}: {v}x" for k, v in result["ratios"].items()]
    lines += [f"- CPU at 30 Hz, {k}: {v} % of a core" for k, v in result.get("cpu_percent_of_a_core_at_30hz", {}).items()]
    lines += [f"- latency at 30 Hz, {k}: p50 {v['p50_ms']:.3f} ms, p99 {v['p99_ms']:.3f} ms"
              for k, v in result.get("at_30hz", {}).items()]
    t = result["training"]
    lines.append(
        f"- training step (batch {t['batch']}): MeanFlow {t['meanflow_step_ms']} ms, flow matching "
        f"{t['flow_matching_step_ms']} ms, ratio {t['meanflow_vs_flow_matching_ratio']}"
    )
    return "\n".join(lines)
