"""Depth -> point cloud pipeline against synthetic scenes whose geometry is known exactly."""
import numpy as np
import pytest

from dm1_ros.runtime.pointcloud import (CameraModel, PointCloudConfig, PointCloudError, backproject, depth_to_points,
                                        farthest_point_sampling)

K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
TABLE_Z, CUBE = 0.8, {"lo": [-0.05, -0.05], "hi": [0.05, 0.05], "top": 0.85}


def look_down_from(x, y, z, yaw=0.0, tilt=0.0):
    """base_from_camera for a camera at (x, y, z) looking down (camera z = -base z), turned by yaw, tilted about x."""
    c, s = np.cos(yaw), np.sin(yaw)
    down = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], float)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ct, st = np.cos(tilt), np.sin(tilt)
    rx = np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])
    T = np.eye(4)
    T[:3, :3] = rz @ down @ rx
    T[:3, 3] = [x, y, z]
    return T


def render_depth(T, height=240, width=320):
    """Ray-cast a table plane at TABLE_Z with a cube's top face on it: depth along the camera's z axis (metres)."""
    v, u = np.mgrid[0:height, 0:width].astype(float)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z_cam = 1
    rays = rays_cam @ T[:3, :3].T
    origin = T[:3, 3]
    depth = (TABLE_Z - origin[2]) / rays[..., 2]
    t_top = (CUBE["top"] - origin[2]) / rays[..., 2]
    hit = origin[:2] + t_top[..., None] * rays[..., :2]
    on_cube = np.all((hit >= CUBE["lo"]) & (hit <= CUBE["hi"]), -1) & (t_top > 0)
    depth = np.where(on_cube, t_top, depth)
    return np.where(depth > 0, depth, 0).astype(np.float32)


def test_backprojection_inverts_the_pinhole_projection():
    depth = np.zeros((240, 320), np.float32)
    depth[120, 160], depth[0, 0], depth[239, 319] = 1.0, 2.0, 0.5
    pts = backproject(depth, CameraModel.from_matrices(K))
    expected = [(-160 * 2 / 300, -120 * 2 / 300, 2.0), (0.0, 0.0, 1.0), (159 * 0.5 / 300, 119 * 0.5 / 300, 0.5)]
    np.testing.assert_allclose(pts, expected, atol=1e-6)  # row-major pixel order


@pytest.mark.parametrize("yaw, tilt", [(0.0, 0.0), (0.7, 0.0), (0.3, 0.35)])
def test_a_known_scene_comes_back_in_the_base_frame_cropped_and_sampled(yaw, tilt):
    T = look_down_from(0.05, -0.1, 1.5, yaw, tilt)
    config = PointCloudConfig(num_points=512, crop_min=[-0.3, -0.3, 0.79], crop_max=[0.3, 0.3, 1.0])
    pts = depth_to_points(render_depth(T), CameraModel.from_matrices(K, T), config)
    assert pts.shape == (512, 3) and pts.dtype == np.float32
    assert np.all(pts >= np.array(config.crop_min) - 1e-5) and np.all(pts <= np.array(config.crop_max) + 1e-5)
    on_table = np.abs(pts[:, 2] - TABLE_Z) < 1e-3
    on_cube = (np.abs(pts[:, 2] - CUBE["top"]) < 1e-3) & np.all(np.abs(pts[:, :2]) <= 0.05 + 1e-3, axis=1)
    assert np.all(on_table | on_cube)  # every point lies on a surface of the scene, in metres, in the base frame
    assert on_cube.sum() >= 5  # the cube's top (1/36 of the crop's area) is not lost in the sampling
    assert len(np.unique(pts, axis=0)) == 512  # enough depth pixels: no repeats
    # farthest point sampling spreads the points: none closer to another than a fraction of the crop's spacing
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(512)
    assert d.min() > 0.005


def test_the_pipeline_is_deterministic_and_pads_a_sparse_crop():
    T = look_down_from(0.0, 0.0, 1.5)
    camera = CameraModel.from_matrices(K, T)
    config = PointCloudConfig(num_points=256, crop_min=[-0.3, -0.3, 0.79], crop_max=[0.3, 0.3, 1.0])
    depth = render_depth(T)
    np.testing.assert_array_equal(depth_to_points(depth, camera, config), depth_to_points(depth.copy(), camera, config))
    only_cube = PointCloudConfig(num_points=4096, crop_min=[-0.3, -0.3, 0.84], crop_max=[0.3, 0.3, 1.0], stride=4)
    pts = depth_to_points(depth, camera, only_cube)
    unique = np.unique(pts, axis=0)
    assert pts.shape == (4096, 3) and len(unique) < 4096 and np.allclose(pts[:, 2], CUBE["top"], atol=1e-3)
    idx = farthest_point_sampling(np.eye(3, dtype=np.float32), 5)
    assert list(idx) == [0, 1, 2, 0, 1]


def test_compiled_kernels_pick_exactly_what_numpy_picks(monkeypatch):
    """The numba kernels (farthest point sampling, transform + crop) against the numpy functions they replace: the
    same indices and the same points, bit for bit, on clouds with many exact ties and on a rendered scene."""
    pytest.importorskip("numba")
    from dm1_ros.runtime import pointcloud

    rng = np.random.default_rng(0)
    clouds = [rng.standard_normal((1500, 3)), rng.integers(0, 5, (1500, 3)) * 0.1, rng.uniform(-0.5, 0.5, (3000, 3))]
    T = look_down_from(0.1, -0.2, 1.4, yaw=0.3, tilt=0.2)
    for start, points in enumerate(clouds):
        points = points.astype(np.float32)
        x, y, z = (np.ascontiguousarray(points[:, k]) for k in range(3))
        compiled = pointcloud._compiled("farthest_point_sampling")(x, y, z, 256, start)
        np.testing.assert_array_equal(compiled, pointcloud._sample_numpy(x, y, z, 256, start))
        lo, hi = [-0.3, -0.4, 0.9], [0.4, 0.3, 1.6]
        np.testing.assert_array_equal(pointcloud.transform_crop(points, T, lo, hi),
                                      pointcloud.crop(pointcloud.transform(points, T), lo, hi))
    camera = CameraModel.from_matrices(K, look_down_from(0.0, 0.0, 1.5, tilt=0.3))
    config = PointCloudConfig(num_points=256, crop_min=[-0.3, -0.3, 0.79], crop_max=[0.3, 0.3, 1.0])
    depth = render_depth(camera.base_from_camera)
    fast = depth_to_points(depth, camera, config)
    monkeypatch.setattr(pointcloud, "_COMPILED", {name: None for name in pointcloud._KERNELS})  # as without numba
    np.testing.assert_array_equal(fast, depth_to_points(depth, camera, config))


def test_bad_input_is_named():
    camera = CameraModel.from_matrices(K)
    config = PointCloudConfig(num_points=8, crop_min=[-1, -1, 5.0], crop_max=[1, 1, 6.0])
    with pytest.raises(PointCloudError, match="no depth point inside the crop box"):
        depth_to_points(np.ones((10, 10), np.float32), camera, config)
    with pytest.raises(PointCloudError, match=r"\(H, W\) image"):
        backproject(np.ones((2, 3, 4)), camera)
    with pytest.raises(PointCloudError, match="3 x 3"):
        CameraModel.from_matrices(np.eye(4))
    with pytest.raises(PointCloudError, match="homogeneous"):
        CameraModel.from_matrices(K, np.full((4, 4), np.nan))
    with pytest.raises(PointCloudError, match="empty"):
        PointCloudConfig(crop_min=[0, 0, 1], crop_max=[1, 1, 1])
    nan_depth = np.full((10, 10), np.nan, np.float32)
    assert backproject(nan_depth, camera).shape == (0, 3)  # invalid pixels are dropped, not passed on
    with pytest.raises(PointCloudError, match="finite"):
        farthest_point_sampling(np.array([[0, 0, 0], [np.nan, 0, 0], [1, 1, 1]], np.float32), 2)


def test_point_cloud_policy_end_to_end_collect_train_export_evaluate(tmp_path):
    """dm1 collect --point-cloud -> a DP3-encoder MeanFlow policy trained on it -> ONNX bundle naming the cloud ->
    evaluated in robosuite through the runtime, which builds the cloud the manifest describes."""
    pytest.importorskip("robosuite")
    from dm1_ros.configuration import ConfigError
    from dm1_ros.policy.config import HeadConfig, PointNetConfig, PolicyConfig
    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.runtime.bundle import read_manifest
    from dm1_ros.sim.collect import CollectArgs, collect
    from dm1_ros.sim.env import default_point_cloud
    from dm1_ros.train.evaluate import EvalArgs, evaluate
    from dm1_ros.train.pretrain import TrainConfig, train

    data = tmp_path / "lift_pc.hdf5"
    collect(CollectArgs(task="lift", episodes=1, out=str(data), images=False, point_cloud=("agentview",), num_points=64),
            progress=False)
    cloud = default_point_cloud("lift", ["agentview"], 64)
    policy = PolicyConfig(image_keys=[], encoder="pointnet", point_clouds=[cloud],
                          pointnet=PointNetConfig(hidden=[16, 32], out_dim=16), head=HeadConfig(hidden=32))
    recipe = dict(data=str(data), out_dir=str(tmp_path / "run"), policy=policy, steps=3, batch_size=8, warmup_steps=1,
                  validate_every=3, log_every=3, threads=1)
    last = train(TrainConfig(**recipe), progress=False)
    trained, _ = load_checkpoint(last)
    manifest = export_bundle(trained, tmp_path / "bundle")
    assert manifest.onnx.inputs == ["point_cloud", "proprio", "noise"]
    assert read_manifest(tmp_path / "bundle").observation.point_clouds == [cloud]
    summary = evaluate(EvalArgs(model=str(tmp_path / "bundle"), task="lift", episodes=1, max_steps=3), progress=False)
    assert summary["episodes"] == 1 and summary["mean_steps"] == 3
    other = default_point_cloud("lift", ["agentview"], 64, crop=([-0.2, -0.2, 0.81], [0.2, 0.2, 1.0]))
    policy.point_clouds = [other]
    with pytest.raises(ConfigError, match="crop_min .* differ from how"):
        train(TrainConfig(**{**recipe, "out_dir": str(tmp_path / "run2")}), progress=False)


def test_committed_point_cloud_recipe_matches_what_collect_records():
    """config/train/lift_pointcloud.yaml trains on exactly the cloud `dm1 collect --point-cloud agentview` records
    for lift (else training refuses the data)."""
    from pathlib import Path

    from dm1_ros.configuration import load_yaml
    from dm1_ros.sim.env import default_point_cloud
    from dm1_ros.train.pretrain import TrainConfig

    recipe = load_yaml(TrainConfig, Path(__file__).resolve().parents[1] / "config" / "train" / "lift_pointcloud.yaml")
    assert recipe.policy.encoder == "pointnet" and recipe.policy.point_clouds == [default_point_cloud("lift", ["agentview"])]
