"""Is the camera encoder's reading of the object's pose good enough to act on? A probe, not a deployable policy.

`--drive state`: a state-only policy (a bundle whose proprio ends with robosuite's `object` state) controls the robot
in robosuite, and at every observation its `object` input is replaced by what a camera policy trained with
policy.state_prediction predicts from the camera images (its checkpoint's EMA weights, in torch). With
`--object true` the same loop feeds the simulator's own state: the state policy's own success rate on these seeds.
`--drive camera`: the camera policy itself controls the robot (its exported graph, as `dm1 eval` runs it), and its
pose prediction is only logged. Either way the pose error along the closed-loop trajectory is logged (rotation
error in degrees, position error in mm; per episode, over all ticks and over the approach, the first 30 ticks), so
one sees whether the reading holds on the states the loop visits. `--expert-after T`: the scripted expert takes
over after T ticks (success is then the expert's): can it still finish from the states the policy leaves, so that
it could label them?

    python bench/pose_cascade.py --camera runs/square_image_fast_state/last.pt \
        --state results/square_lowdim/square_lowdim_1000_distill --episodes 20 --out results/square_image_fast/pose_cascade.json

Quaternion signs: each predicted rotation becomes the quaternion whose sign agrees with the simulator's (q and -q
are one rotation; the state policy was trained on robosuite's signs, and which sign it is told carries no
information about the scene). `--object derived` uses no simulator value at all: only the nut's pose is read, its
quaternion gets the sign robosuite's placement sampler gives (z >= 0), and the pose relative to the hand is computed
from it and the robot's hand pose as robosuite computes it: what the graph `dm1 export --actor` writes computes
(dm1_ros/policy/cascade.py).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.sim.takeover import PolicyTicks  # noqa: E402

_WORKER: dict = {}
APPROACH_TICKS = 30  # the scripted expert is above the handle, aligned, after about 15-30 ticks


class CascadePolicy:
    """The driving bundle's OnnxPolicy, which logs the camera model's pose prediction at every observation. A state
    policy driving is given that prediction as its `object` input (or the simulator's, use_true); a camera policy
    driving is given the images and the robot's proprio. Everything else (manifest, timing, noise) is the driver's."""

    def __init__(self, driver, camera_policy, object_slice: slice, robot_dims: int, use_true: bool,
                 derive: bool = False):
        self.inner, self.camera, self.object_slice, self.robot_dims = driver, camera_policy, object_slice, robot_dims
        self.use_true, self.derive = use_true, derive
        # per prediction (each tick when re-planning, each chunk when not): the observation's stamp (s), then the
        # rotation error relative to the hand (deg), the nut's rotation error (deg), position error relative to the hand
        # (mm), the nut's position error (mm)
        self.errors: list[tuple[float, float, float, float, float]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name == "rng":  # the evaluator seeds the sampling noise per episode
            setattr(self.inner, name, value)
        else:
            super().__setattr__(name, value)

    def predicted_object(self, obs) -> np.ndarray:
        import torch

        from dm1_ros.train.rotations import rotation_angle_deg, rotation_columns, rotation_from_columns
        from robosuite.utils.transform_utils import mat2quat

        true = obs.proprio[self.object_slice].astype(np.float64)
        images = {k: torch.from_numpy(v[None]) for k, v in obs.images.items()}
        proprio = torch.from_numpy(obs.proprio[None, :self.robot_dims].astype(np.float32))
        with torch.no_grad():
            _, features = self.camera.encode(images, proprio)
            pred = self.camera.state_normalizer.unnormalize(self.camera.predict_state(features))[0].numpy()
        # robosuite's object-state: the pose relative to the hand (position 3, xyzw 4), then the nut's own in the world
        # (position 3, xyzw 4); predicted with each quaternion as rotation columns 6
        out = np.empty(14)
        out[0:3], out[7:10] = pred[0:3], pred[9:12]
        for q_at, cols in ((3, pred[3:9]), (10, pred[12:18])):
            q = mat2quat(rotation_from_columns(cols.astype(np.float64)))
            out[q_at:q_at + 4] = q if np.dot(q, true[q_at:q_at + 4]) >= 0 else -q
        if self.derive:  # from the reading of the nut alone, no simulator value: what the deployed graph computes
            from dm1_ros.policy.cascade import matrix_from_columns, nut_object_state

            hand = torch.from_numpy(obs.proprio[None, 0:7].astype(np.float64))
            out = nut_object_state(torch.from_numpy(pred[None, 9:12].astype(np.float64)),
                                   matrix_from_columns(torch.from_numpy(pred[None, 12:18].astype(np.float64))),
                                   hand[:, 0:3], hand[:, 3:7])[0].numpy()
        rot_err = []
        for q_at in (3, 10):
            q_true = true[q_at:q_at + 4]
            if np.linalg.norm(q_true) > 1e-6:  # zeros at the reset: robosuite fills the relative pose from step 1
                rot_err.append(float(rotation_angle_deg(rotation_from_columns(rotation_columns(out[q_at:q_at + 4])),
                                                        rotation_from_columns(rotation_columns(q_true)))))
            else:
                rot_err.append(float("nan"))
        self.errors.append((obs.stamp, *rot_err, 1e3 * float(np.linalg.norm(out[0:3] - true[0:3])),
                            1e3 * float(np.linalg.norm(out[7:10] - true[7:10]))))
        return out

    def predict(self, obs, noise=None):
        from dm1_ros.runtime.contract import Observation

        proprio = obs.proprio.copy()
        predicted = self.predicted_object(obs)
        if self.inner.manifest.observation.images:  # the camera policy drives: it reads the robot's proprio only
            seen = Observation(images=obs.images, proprio=proprio[:self.robot_dims], stamp=obs.stamp)
        else:
            if not self.use_true:
                proprio[self.object_slice] = predicted
            seen = Observation(images={}, proprio=proprio.astype(np.float32), stamp=obs.stamp)
        return self.inner.predict(seen) if noise is None else self.inner.predict(seen, noise)


class RobotView(PolicyTicks):
    """The simulated robot as the driving policy sees it: the observation layout it reads (a camera policy: the
    robot's proprio without `object`, which only this probe's logging uses), and an episode that ends for the policy
    after `policy_ticks` (0: at the task's end), when the scripted expert takes over. Everything else is the robot's."""

    def __init__(self, robot, spec, policy_ticks: int = 0):
        super().__init__(robot, policy_ticks)
        self.observation_spec = spec


def expert_finishes(robot, seed: int) -> tuple[bool, int]:
    """The scripted expert, started afresh (its first phase: above the handle, aligned) from wherever the policy
    left the scene, drives to the episode's end as `dm1 collect` does -> (success, its ticks)."""
    from dm1_ros.sim.experts import finish_episode, make_expert

    expert = make_expert("square", seed)
    expert.reset(robot.env)
    return finish_episode(robot.env, expert, done=robot.done, obs=robot.observe())


def setup(args):
    import torch

    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    torch.set_num_threads(1)
    camera, _ = load_checkpoint(args.camera)
    predict = camera.config.state_prediction
    if predict.keys != ["object"] or predict.dims != [14] or sorted(predict.quaternions) != [3, 10]:
        sys.exit(f"{args.camera}: its recipe does not predict square's 14-d object state with quaternions at 3 and 10 "
                 f"(policy.state_prediction: keys {predict.keys}, dims {predict.dims}, quaternions {predict.quaternions})")
    robot_keys = list(camera.config.proprio_keys)
    if args.drive == "camera":
        driver = OnnxPolicy(args.camera_bundle, threads=1, noise_seed=args.seed_base)
    else:
        driver = OnnxPolicy(args.state, threads=1, noise_seed=args.seed_base)
        spec = driver.manifest.observation
        if spec.images or spec.proprio_keys[-1] != "object":
            sys.exit(f"{args.state}: not a state-only policy whose proprio ends with `object` ({spec.proprio_keys})")
        if list(spec.proprio_keys[:-1]) != robot_keys:
            sys.exit(f"the two policies read different robot proprio: {robot_keys} vs {spec.proprio_keys[:-1]}")
    robot = SimRobot(SimConfig(task="square", cameras=[k[: -len("_image")] for k in camera.config.image_keys],
                               image_size=list(camera.config.image_size), proprio_keys=[*robot_keys, "object"],
                               max_steps=args.max_steps))
    robot = RobotView(robot, driver.manifest.observation if args.drive == "camera" else robot.observation_spec,
                      args.expert_after)
    robot_dims = sum(camera.config.proprio_dims)
    if args.object == "derived" and robot_keys[:2] != ["robot0_eef_pos", "robot0_eef_quat"]:
        sys.exit(f"--object derived needs the hand's pose first in the robot proprio, got {robot_keys}")
    policy = CascadePolicy(driver, camera, slice(robot_dims, robot_dims + 14), robot_dims, args.object == "true",
                           derive=args.object == "derived")
    return robot, policy


def init(args):
    _WORKER["robot"], _WORKER["policy"] = setup(args)
    _WORKER["args"] = args


def work(seed):
    from dm1_ros.train.evaluate import EvalArgs, run_episode

    policy = _WORKER["policy"]
    policy.errors.clear()
    args = _WORKER["args"]
    r = run_episode(_WORKER["robot"], policy, seed, EvalArgs(task="square", execute=args.execute,
                                                            lookahead_ms=args.lookahead_ms))
    stamps, errors = np.array(policy.errors)[:, 0], np.array(policy.errors)[:, 1:]
    names = ("relative_rotation_deg", "rotation_deg", "relative_position_mm", "position_mm")  # as errors are logged
    r["pose_error"] = {name: [float(np.nanpercentile(errors[:, i], 50)), float(np.nanpercentile(errors[:, i], 90))]
                       for i, name in enumerate(names)}
    # the approach, before the hand reaches the nut: where a misreading starts, before the nut is pushed around
    approach = stamps - stamps[0] < (APPROACH_TICKS - 0.5) / _WORKER["robot"].rate_hz
    r["pose_error_approach"] = {name: float(np.nanmedian(errors[approach, i])) for i, name in enumerate(names)}
    if args.expert_after:
        r["policy_success"] = r["success"]
        r["success"], r["expert_ticks"] = expert_finishes(_WORKER["robot"].robot, seed)
    return r


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camera", required=True, help="checkpoint of a camera policy with state_prediction")
    parser.add_argument("--drive", choices=["state", "camera"], default="state",
                        help="which policy controls the robot (see above)")
    parser.add_argument("--state", help="bundle of a state-only square policy (--drive state)")
    parser.add_argument("--object", choices=["predicted", "derived", "true"], default="predicted",
                        help="--drive state: the object state the state policy is given: the camera model's reading "
                             "(quaternion signs taken from the simulator's), derived (the nut's pose read, its "
                             "quaternion sign as robosuite's sampler gives it, the hand-relative pose computed from it "
                             "and the robot's hand pose: nothing from the simulator), or the simulator's own")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed-base", type=int, default=100_000)
    parser.add_argument("--execute", default="", choices=["", "first", "chunk"], help="'': the driving bundle's own")
    parser.add_argument("--lookahead-ms", type=float, default=None, help="default: the driving bundle's own")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=0, help="ticks per episode (0: the task's default)")
    parser.add_argument("--expert-after", type=int, default=0,
                        help="the scripted expert takes over after this many policy ticks (0: never): can it still "
                             "finish from the states the policy leaves?")
    parser.add_argument("--out", help="JSON file to add this run to (keyed by what drives and --execute)")
    args = parser.parse_args()
    if args.drive == "state" and not args.state:
        parser.error("--drive state needs --state BUNDLE")

    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.runtime.bundle import read_manifest
    from dm1_ros.train.evaluate import execute_of, wilson_interval

    seeds = [args.seed_base + i for i in range(args.episodes)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dm1-cascade-") as tmp:
        if args.drive == "camera":  # run as dm1 eval runs a checkpoint: exported, through the runtime
            args.camera_bundle = str(Path(tmp) / "camera")
            export_bundle(load_checkpoint(args.camera)[0], args.camera_bundle, training={"command": "pose_cascade"})
        args.execute = args.execute or execute_of(read_manifest(args.state if args.drive == "state" else args.camera_bundle))
        with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=init,
                                    initargs=(args,)) as pool:
            results = list(pool.map(work, seeds))
    ok = sum(r["success"] for r in results)
    lo, hi = wilson_interval(ok, len(results))
    errors = {name: float(np.median([r["pose_error"][name][0] for r in results])) for name in results[0]["pose_error"]}
    approach = {name: float(np.median([r["pose_error_approach"][name] for r in results]))
                for name in results[0]["pose_error_approach"]}
    source = "camera policy drives" if args.drive == "camera" else f"{args.object} object state"
    if args.expert_after:
        source += f", the expert from tick {args.expert_after}"
    entry = {"camera": args.camera, "drive": args.drive, "state": args.state, "object": args.object,
             "execute": args.execute, "lookahead_ms": args.lookahead_ms,
             "seeds": [seeds[0], seeds[-1]], "successes": ok, "episodes": len(results), "ci95": [lo, hi],
             "median_pose_error": errors, "median_pose_error_approach": approach, "approach_ticks": APPROACH_TICKS,
             "seconds": time.perf_counter() - start,
             "expert_after": args.expert_after,
             "per_episode": [{k: r[k] for k in ("seed", "success", "steps", "pose_error", "pose_error_approach",
                                                "policy_success", "expert_ticks") if k in r} for r in results]}
    print(f"{source}, {args.execute}: {ok}/{len(results)} ({lo:.0%}-{hi:.0%}); median per-episode "
          f"pose error: " + ", ".join(f"{k} {v:.1f}" for k, v in errors.items()) + f"; first {APPROACH_TICKS} ticks: "
          + ", ".join(f"{k} {v:.1f}" for k, v in approach.items()))
    if args.out:
        out = Path(args.out)
        doc = json.loads(out.read_text()) if out.is_file() else {}
        key = "camera_drives_" + args.execute if args.drive == "camera" else f"{args.object}_{args.execute}"
        doc[key + (f"_expert_after_{args.expert_after}" if args.expert_after else "")] = entry
        out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
