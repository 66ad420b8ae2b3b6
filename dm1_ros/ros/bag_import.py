"""A teleop rosbag2 (MCAP or sqlite3) -> robomimic HDF5 episodes: `dm1 dataset import BAG --from-bag --out FILE`.

    summary = import_bag("data/teleop_bag", "data/teleop_from_bag.hdf5")

Replays the bag's messages in recorded order through the same ObservationAssembler and DemoRecorder as
teleop_node, so the file equals what teleop_node would have written: each command on /dm1/action_trajectory is one
step (the observation its stamp names, the command's first action), rewards from /dm1/sim/success, episodes from
the /dm1/teleop/episode events. A bag without those events (recorded by another tool) gives one episode per run of
commands, a new one wherever commands pause longer than `gap_s`. Messages are read with rosbags; ROS 2's message
packages are needed for the conversions only (no node is started).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from dm1_ros.data.recorder import DemoRecorder
from dm1_ros.errors import Dm1Error
from dm1_ros.ros.assembler import ObservationAssembler
from dm1_ros.ros.conversions import trajectory_to_actions
from dm1_ros.ros.topics import (ACTION_TRAJECTORY, CAMERA_IMAGE, EEF_POSE, FINGER_JOINTS, JOINT_STATES, SIM_SUCCESS,
                                TELEOP_EPISODE)


class BagImportError(Dm1Error, ValueError):
    """A bag that does not hold what an import needs; the message names the bag and what is missing."""


def import_bag(bag: str | Path, out: str | Path, image_topics=(CAMERA_IMAGE,),
               camera_names=("robot0_eye_in_hand_image",), image_size=(96, 96), pos_scale: float = 0.05,
               rot_scale: float = 0.5, finger_joints=FINGER_JOINTS,
               env_args: dict | None = None, gap_s: float = 1.0, valid_fraction: float = 0.1,
               overwrite: bool = False) -> dict:
    """Write the bag's episodes to `out`; returns {episodes, steps, skipped, events} (skipped: commands without an
    observation, by reason). Defaults are teleop_node's."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    bag, out = Path(bag), Path(out)
    if not bag.exists():
        raise BagImportError(f"bag not found: {bag}")
    if len(image_topics) != len(camera_names):
        raise BagImportError(f"image topics {list(image_topics)} and camera names {list(camera_names)} must pair up")
    if out.exists() and not overwrite:
        raise BagImportError(f"{out} exists (--force replaces it)")
    if out.exists():
        out.unlink()
    typestore = get_typestore(Stores.ROS2_HUMBLE)  # what BagRecorder writes; the standard types are the same in Jazzy
    camera_of = dict(zip(image_topics, camera_names))
    # no age limit: a command in the bag is the node's word that its observation was fresh enough when it acted
    assembler = ObservationAssembler(list(camera_names), max_state_age_s=1e9, finger_names=list(finger_joints))
    recorder = DemoRecorder(out, env_args, image_size=tuple(image_size) if image_size and min(image_size) > 0 else None,
                            valid_fraction=valid_fraction)
    skipped: dict[str, int] = {}
    events, steps, last_command = [], 0, None
    try:
        with Reader(bag) as reader:
            topics = {c.topic for c in reader.connections}
            missing = [t for t in (ACTION_TRAJECTORY, *image_topics) if t not in topics]
            if missing:
                raise BagImportError(f"{bag} has no {missing} (it has {sorted(topics)})")
            marked = TELEOP_EPISODE in topics
            for connection, stamp_ns, raw in reader.messages():
                topic, now = connection.topic, stamp_ns * 1e-9
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
                if topic in camera_of:
                    assembler.set_image(camera_of[topic], msg)
                elif topic == JOINT_STATES:
                    assembler.set_joints(msg)
                elif topic == EEF_POSE:
                    assembler.set_pose(msg)
                elif topic == SIM_SUCCESS:
                    recorder.set_success(msg.data)
                elif topic == TELEOP_EPISODE:
                    events.append(msg.data)
                    kind = msg.data.split(" ", 1)[0]
                    if kind == "start" and not recorder.recording:
                        recorder.start(device="bag", source=str(bag))
                    elif kind == "stop" and recorder.recording:
                        recorder.stop(success="success=True" in msg.data)
                    elif kind == "discard" and recorder.recording:
                        recorder.discard()
                elif topic == ACTION_TRAJECTORY:
                    if not marked:  # no events: a pause in the commands ends an episode
                        if recorder.recording and last_command is not None and now - last_command > gap_s:
                            recorder.stop()
                        if not recorder.recording:
                            recorder.start(device="bag", source=str(bag))
                    last_command = now
                    if not recorder.recording:
                        continue
                    actions, command_stamp, _ = trajectory_to_actions(msg, pos_scale, rot_scale)
                    if len(actions) == 0:
                        skipped["hold"] = skipped.get("hold", 0) + 1
                        continue
                    obs, reason = assembler.build(now, reference=command_stamp)  # the images it was planned on
                    if obs is None or abs(obs.stamp - command_stamp) > 1e-6:
                        reason = reason or "no image with the command's stamp"
                        skipped[reason] = skipped.get(reason, 0) + 1
                        continue
                    recorder.step(obs, actions[0])
                    steps += 1
            if recorder.recording:
                if marked:
                    recorder.discard()  # started and never stopped: the bag ended mid-episode, as a crash would
                else:
                    recorder.stop()
    finally:
        path = recorder.close()
        shutil.rmtree(recorder.store.parts, ignore_errors=True)  # the shards were for a recording to resume from
    if recorder.errors:
        raise BagImportError(f"{bag}: " + "; ".join(recorder.errors) + f" (commands skipped: {skipped or 'none'})")
    if path is None:
        raise BagImportError(f"{bag}: no episode with steps in it ({steps} steps; skipped {skipped or 'none'}; "
                             f"episode events {events or 'none'})")
    return {"episodes": len(recorder.saved), "steps": steps, "skipped": skipped, "events": len(events),
            "discarded": recorder.discarded, "out": str(path)}
