"""Scripted demonstrations in robosuite -> robomimic HDF5 (`dm1 collect`).

Seeds are tried in order from `seed`; by default only successful episodes are kept, until `episodes` are in
hand. Each finished episode is written to its own shard at once, so Ctrl-C (or a crash) keeps every finished
episode and the same command resumes; the dataset file is assembled at the end.

With `takeover` (a policy bundle) each episode is a recovery demonstration instead: the policy drives for a while,
then the expert finishes from where it left the scene, and only the expert's part is kept (dm1_ros/sim/takeover.py).
Collected into a copy of the expert's dataset (--out an existing file extends it), this is DAgger's aggregated data.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from dataclasses import dataclass

import numpy as np

from dm1_ros.data.episodes import Episode, EpisodeRecorder, EpisodeStore
from dm1_ros.train.dataset import DatasetError

_WORKER: dict = {}


@dataclass
class CollectArgs:
    task: str = "lift"
    episodes: int = 100
    out: str = "data/lift.hdf5"
    workers: int = 1
    images: bool = True
    image_size: int = 96
    cameras: tuple[str, ...] = ("robot0_eye_in_hand",)
    seed: int = 0
    keep_failures: bool = False
    fast_render: bool = True
    point_cloud: tuple[str, ...] = ()  # depth cameras of a point-cloud observation (obs/point_cloud), none: no cloud
    num_points: int = 512
    crop: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (min xyz, max xyz); None: the task's default
    takeover: str = ""  # a policy bundle that drives each episode before the expert takes over ("": the expert only)
    takeover_ticks: tuple[int, int] = (10, 150)  # the hand-over tick, uniform in this range, drawn from the seed


def _sim_config(args: CollectArgs):
    from dm1_ros.sim.env import SimConfig, default_point_cloud

    cloud = default_point_cloud(args.task, list(args.point_cloud), args.num_points, args.crop) if args.point_cloud else None
    return SimConfig(task=args.task, cameras=list(args.cameras), image_size=[args.image_size] * 2,
                     use_images=args.images, fast_render=args.fast_render, point_cloud=cloud)


def _make_env(args: CollectArgs):
    from dm1_ros.sim.env import SimEnv

    return SimEnv(_sim_config(args))


class Collector:
    """What one process needs to record episodes: the simulator, and with --takeover the robot and policy around it."""

    def __init__(self, args: CollectArgs):
        self.args = args
        if args.takeover:
            from dm1_ros.sim.takeover import takeover_setup

            self.robot, self.policy = takeover_setup(args.task, args.takeover, _sim_config(args))
            self.env = self.robot.env
        else:
            self.robot = self.policy = None
            self.env = _make_env(args)

    def rollout(self, seed: int) -> tuple[bool, Episode | None]:
        if not self.args.takeover:
            return rollout(self.env, self.args.task, seed)
        return takeover_rollout(self.robot, self.policy, self.args, seed)

    def close(self) -> None:
        self.env.close()


def check_resumable(store: EpisodeStore, args: CollectArgs) -> None:
    """Episodes already at --out must be of this task, cameras and image size; a resume never mixes datasets."""
    try:
        found = store.peek()
    except (OSError, KeyError) as exc:
        raise DatasetError(f"{args.out} holds something this command cannot extend: {exc}") from None
    if found is None:
        return
    where, attrs, shapes = found
    task = attrs.get("task")
    task = task.decode() if isinstance(task, bytes) else task
    images = {k: v for k, v in shapes.items() if k.endswith("_image")}
    wanted = {f"{c}_image": (args.image_size, args.image_size, 3) for c in args.cameras} if args.images else {}
    problems = []
    if task != args.task:
        problems.append(f"task {task!r}, not {args.task!r}")
    if images != wanted:
        have = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in sorted(images.items())) or "no images"
        want = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in sorted(wanted.items())) or "no images"
        problems.append(f"cameras {have}, not {want}")
    if problems:
        raise DatasetError(f"{args.out} already holds episodes of another collection ({where}: {'; '.join(problems)}); "
                           "resuming would mix them: choose another --out, or repeat that collection's options")


def _init_worker(args: CollectArgs):
    _WORKER["collector"] = Collector(args)


def _recorder() -> tuple[EpisodeRecorder, object]:
    """A recorder and the on_step that fills it: observation contract + the object state (for low-dim policies) +
    sim state."""
    recorder = EpisodeRecorder()

    def record(obs, action, reward, done, state, raw):
        recorder.add(obs, action, reward, done, state, extra_obs={"object": raw["object-state"]})

    return recorder, record


def rollout(env, task: str, seed: int) -> tuple[bool, Episode]:
    """One expert episode, recorded."""
    from dm1_ros.sim.experts import make_expert, run_expert_episode

    recorder, record = _recorder()
    expert = make_expert(task, seed=seed)
    success, _ = run_expert_episode(env, expert, seed, on_step=record)
    return success, recorder.episode(seed=seed, success=success, task=task, expert=type(expert).__name__)


def takeover_rollout(robot, policy, args: CollectArgs, seed: int) -> tuple[bool, Episode | None]:
    """One recovery episode: the policy drives, the expert finishes; the expert's part recorded (None: the policy
    ended the episode itself, nothing to record)."""
    from dm1_ros.sim.experts import make_expert
    from dm1_ros.sim.takeover import takeover_episode

    recorder, record = _recorder()
    expert = make_expert(args.task, seed=seed)
    success, info = takeover_episode(robot, policy, expert, seed, args.takeover_ticks, on_step=record)
    if not len(recorder):
        return False, None
    return success, recorder.episode(seed=seed, success=success, task=args.task, expert=type(expert).__name__,
                                     takeover_policy=policy.model_id, **info)


def _work(seed: int):
    start = time.perf_counter()
    success, episode = _WORKER["collector"].rollout(seed)
    return seed, success, episode, time.perf_counter() - start


def collect(args: CollectArgs, progress: bool = True) -> dict:
    """Returns a summary: kept episodes, tried seeds, success rate, steps, throughput."""
    from tqdm import tqdm

    store = EpisodeStore(args.out)
    check_resumable(store, args)
    if store.out.is_file() and not store.parts.is_dir():
        with __import__("h5py").File(store.out, "r") as f:
            have = len(f["data"].keys())
        if have >= args.episodes:
            print(f"{store.out} already holds {have} episodes (>= {args.episodes}); nothing to do")
            return {"kept": have, "tried": 0, "new": 0}
        store.explode_existing()
    failed_marker = store.parts / "failed_seeds.txt"
    tried = {int(n.split("_")[1]) for n in store.shard_names() if n.startswith("seed_")}
    failed = {int(s) for s in failed_marker.read_text().split()} if failed_marker.is_file() else set()
    kept = len(store.shard_names())
    resumed = kept
    if resumed:
        print(f"resuming {args.out}: {resumed} episodes already collected")
    stats = {"tried": 0, "succeeded": 0, "steps": 0, "seconds": 0.0}
    next_seed = [args.seed]

    def seeds():
        while True:
            s = next_seed[0]
            next_seed[0] += 1
            if s not in tried and s not in failed:
                return s

    def handle(seed, success, episode, seconds, bar):
        nonlocal kept
        stats["tried"] += 1
        stats["succeeded"] += int(success)
        stats["steps"] += len(episode) if episode is not None else 0
        if (success or args.keep_failures) and episode is not None:  # None: a policy ended it, nothing recorded
            if kept < args.episodes:
                store.add(f"seed_{seed}", episode)
                kept += 1
                bar.update(1)
        else:
            store.parts.mkdir(parents=True, exist_ok=True)
            with open(failed_marker, "a") as f:
                f.write(f"{seed}\n")
        bar.set_postfix(success=f"{stats['succeeded']}/{stats['tried']}")

    start = time.perf_counter()
    bar = tqdm(total=args.episodes, initial=kept, desc=f"collect {args.task}", unit="ep", disable=not progress)
    try:
        if args.workers <= 1:
            collector = Collector(args)
            try:
                while kept < args.episodes:
                    seed = seeds()
                    success, episode = collector.rollout(seed)
                    handle(seed, success, episode, 0.0, bar)
                env_args = collector.env.env_args()
            finally:
                collector.close()
        else:
            ctx = mp.get_context("spawn")  # fresh GL contexts per worker
            with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker, initargs=(args,)) as pool:
                # Episodes are kept in seed order, as with one worker: which seeds make the data set must not depend
                # on which worker finished first (a loaded machine reorders them; the fingerprint would change).
                order: list[int] = []  # submitted seeds not yet handled, ascending
                finished: dict[int, tuple] = {}  # seed -> its result, waiting for the seeds before it
                pending: dict = {}

                def submit():
                    seed = seeds()
                    pending[pool.submit(_work, seed)] = seed
                    order.append(seed)

                for _ in range(args.workers * 2):
                    submit()
                while pending:
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        finished[pending.pop(fut)] = fut.result()
                    while order and order[0] in finished:
                        result = finished.pop(order.pop(0))
                        if kept < args.episodes:
                            handle(*result, bar)
                    while kept + len(order) < args.episodes + args.workers and kept < args.episodes and len(pending) < args.workers * 2:
                        submit()
                    if kept >= args.episodes:
                        for fut in pending:
                            fut.cancel()
                        cf.wait([f for f in pending if not f.cancelled()])  # running episodes end; results dropped
                        pending.clear()
            probe = _make_env(args)
            env_args = probe.env_args()
            probe.close()
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    path = store.assemble(env_args, seed=args.seed)
    summary = {
        "out": str(path), "kept": kept, "new": kept - resumed, "tried": stats["tried"],
        "expert_success_rate": stats["succeeded"] / max(stats["tried"], 1), "steps": stats["steps"],
        "seconds": elapsed, "episodes_per_min": 60 * stats["tried"] / max(elapsed, 1e-9),
        "steps_per_s": stats["steps"] / max(elapsed, 1e-9), "bytes": path.stat().st_size,
    }
    return summary


def record_video(task: str, out: str, seed: int = 0, image_size: int = 96, camera: str = "agentview") -> dict:
    """One expert episode rendered from `camera` beside the policy's eye-in-hand view."""
    from dm1_ros.sim.env import SimConfig, SimEnv
    from dm1_ros.sim.experts import make_expert
    from dm1_ros.sim.video import VideoWriter, side_by_side

    env = SimEnv(SimConfig(task=task, image_size=[image_size] * 2))
    expert = make_expert(task, seed=seed)
    obs = env.reset(seed=seed)
    expert.reset(env)
    done, info, steps = False, {"success": False}, 0
    with VideoWriter(out, fps=env.config.control_rate_hz) as video:
        while not done:
            video.add(side_by_side(env.render(camera, 256, 256), *obs.images.values()))
            obs, _, done, info = env.step(np.clip(expert.act(env), -1, 1))
            steps += 1
        video.add(side_by_side(env.render(camera, 256, 256), *obs.images.values()))
    env.close()
    return {"video": out, "success": info["success"], "steps": steps}
