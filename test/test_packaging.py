"""The ament_python package is what ROS tooling expects, and the `dm1` command explains itself."""
import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "dm1_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs", "trajectory_msgs", "diagnostic_msgs",
            "launch", "launch_ros"} <= deps
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/dm1_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/dm1_ros"
    assert (ROOT / "resource" / "dm1_ros").is_file()


def test_setup_py_pins_exact_versions_and_declares_extras():
    text = (ROOT / "setup.py").read_text()
    assert '"torch==2.13.0"' in text  # a looser torch pulls a multi-GB CUDA build
    for extra in ('"sim"', '"robot"', '"gpu"', '"test"'):
        assert extra in text
    assert "share/ament_index/resource_index/packages" in text


def test_cli_help_explains_each_subcommand():
    out = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "bench", "export", "toy"):
        assert command in out
    out = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "bench", "--help"], capture_output=True, text=True, check=True).stdout
    assert "onnxruntime 1 step" in out


def test_export_cli_reports_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    result = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "export", str(bad), "--out", str(tmp_path / "b")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "not a readable checkpoint" in result.stderr
    assert not (tmp_path / "b").exists()


def test_export_cli_writes_a_bundle(tiny_policy, tmp_path):
    from dm1_ros.policy.checkpoint import save_checkpoint
    from dm1_ros.runtime.bundle import read_manifest

    ckpt = save_checkpoint(tmp_path / "c.pt", tiny_policy, provenance={"data_hash": "abc"})
    result = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "export", str(ckpt), "--out", str(tmp_path / "b")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "b")
    assert manifest.training["data_hash"] == "abc" and manifest.training["checkpoint"] == str(ckpt)
