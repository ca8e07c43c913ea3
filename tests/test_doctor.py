"""`nstcam doctor`: on this machine (offscreen, no camera, no GPU) and with faked failures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nstcam import doctor, qtcheck
from nstcam.doctor import FAIL, OK, WARN, Check, Context

ROOT = Path(__file__).resolve().parent.parent


def _by_name(results: list[Check]) -> dict[str, list[Check]]:
    out: dict[str, list[Check]] = {}
    for c in results:
        out.setdefault(c.name, []).append(c)
    return out


@pytest.mark.slow
def test_doctor_on_this_machine_says_the_app_can_run(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    result = subprocess.run([sys.executable, "-m", "nstcam.doctor"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in ("Qt window", "engine", "GPU / CUDA", "CPU bf16", "styles", "cameras", "virtual camera",
                 "output folders"):
        assert f"  {name}" in result.stdout
    assert "QT_QPA_PLATFORM=offscreen" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("nstcam can run here")


def test_help_explains_the_flags(capsys):
    assert doctor.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "--styles-dir" in text and "--cameras" in text and "Exit status 0" in text


def test_missing_xcb_libraries_fail_the_report(monkeypatch, capsys):
    broken = qtcheck.PluginCheck(plugin=Path("/x/libqxcb.so"), missing=("libxcb-icccm.so.4",))
    monkeypatch.setattr(qtcheck, "check_xcb", lambda: broken)
    assert doctor.main(["--cameras", "0"]) == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "Qt window" in l)
    assert line.lstrip().startswith(FAIL) and "libxcb-icccm.so.4" in line and "install" in line
    assert "nstcam cannot run here" in out


def test_no_engine_backend_fails(monkeypatch):
    real = doctor.has_module
    monkeypatch.setattr(doctor, "has_module", lambda name: False if name in ("torch", "onnxruntime") else real(name))
    (check,) = doctor.check_engines(Context())
    assert check.status == FAIL and "pip install onnxruntime" in check.detail


def test_no_styles_fail_and_broken_files_are_listed(monkeypatch, tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    monkeypatch.setattr(doctor, "style_dirs", lambda extra: [tmp_path, *extra])
    results = doctor.check_styles(Context(styles_dirs=(tmp_path / "missing",)))
    assert results[0].status == FAIL and "no style files" in results[0].detail
    details = " | ".join(c.detail for c in results[1:])
    assert "--styles-dir" in details and "missing" in details and "broken.pt" in details
    assert all(c.status == WARN for c in results[1:])


def test_styles_without_torch_come_from_onnx_exports(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    from nstcam.engines import onnx_export
    from nstcam.registry import bundled_styles_dir

    style = Path(shutil.copy(sorted(bundled_styles_dir().glob("*.pt"))[0], tmp_path))
    onnx_export.ensure_onnx(style)
    style.unlink()  # a lite bundle ships the exports only
    real = doctor.has_module
    monkeypatch.setattr(doctor, "has_module", lambda name: False if name == "torch" else real(name))
    monkeypatch.setattr(doctor, "style_dirs", lambda extra: [tmp_path])
    (check,) = doctor.check_styles(Context())
    assert check.status == OK and check.detail.startswith("1: ")


def test_without_torch_a_broken_export_is_named_once(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    real = doctor.has_module
    monkeypatch.setattr(doctor, "has_module", lambda name: False if name == "torch" else real(name))
    monkeypatch.setattr(doctor, "style_dirs", lambda extra: [tmp_path])
    none_load, broken = doctor.check_styles(Context())
    assert none_load.status == FAIL and broken.status == WARN
    assert broken.detail.startswith(f"{tmp_path / 'broken.onnx'}: not an nstcam style export (unreadable")
    assert broken.detail.count(str(tmp_path / "broken.onnx")) == 1


def test_cameras_found_and_not_found(monkeypatch):
    monkeypatch.setattr(doctor, "probe_cameras", lambda count: [0, 2])
    (found,) = doctor.check_cameras(Context(cameras=5))
    assert found.status == OK and found.detail == "opens at --camera 0, --camera 2"
    monkeypatch.setattr(doctor, "probe_cameras", lambda count: [])
    (none,) = doctor.check_cameras(Context(cameras=5))
    assert none.status == WARN and "--camera demo" in none.detail and "0-4" in none.detail


def test_no_camera_on_this_machine_is_a_warning():
    (check,) = doctor.check_cameras(Context(cameras=5))
    expected = OK if any(Path(f"/dev/video{i}").exists() for i in range(5)) else WARN
    assert check.status == expected


def test_virtual_camera_not_installed_or_no_device(monkeypatch):
    real = doctor.has_module
    monkeypatch.setattr(doctor, "has_module", lambda name: False if name == "pyvirtualcam" else real(name))
    (missing,) = doctor.check_virtual_camera(Context())
    assert missing.status == WARN and "pip install pyvirtualcam" in missing.detail
    monkeypatch.setattr(doctor, "has_module", real)
    from nstcam.live import virtualcam

    def no_device(**kwargs):
        raise virtualcam.VirtualCameraUnavailable("no virtual camera could be opened (no device)")

    monkeypatch.setattr(virtualcam, "open_camera", no_device)
    (absent,) = doctor.check_virtual_camera(Context())
    assert absent.status == WARN and "no device" in absent.detail


def test_gpu_and_bf16_lines_without_torch(monkeypatch, tmp_path):
    real = doctor.has_module
    monkeypatch.setattr(doctor, "has_module", lambda name: False if name == "torch" else real(name))
    monkeypatch.setattr(doctor, "_ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    (gpu,) = doctor.check_gpu(Context())
    assert gpu.status == OK and "onnxruntime-gpu" in gpu.detail
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16 avx512_vnni\n")
    assert doctor.cpu_flags(cpuinfo) >= {"avx512_bf16", "avx512_vnni"}
    monkeypatch.setattr(doctor, "cpu_flags", lambda: set())
    (bf16,) = doctor.check_bf16(Context())
    assert bf16.status == "info" and bf16.detail.startswith("no native bf16") and "ONNX Runtime" in bf16.detail


def test_unwritable_output_folder_is_a_warning(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(doctor, "output_folders", lambda: {"snapshots": blocker / "nstcam",
                                                           "recordings": tmp_path / "new" / "nstcam"})
    (check,) = doctor.check_outputs(Context())
    assert check.status == WARN and "is a file" in check.detail
    assert doctor.writable_folder(tmp_path / "new" / "nstcam") == (True, "")


def test_a_crashing_check_is_a_line_not_a_traceback(capsys):
    def boom(ctx):
        raise RuntimeError("driver exploded\nsecond line")

    results = doctor.run_checks(Context(), [("vital", boom, True), ("optional", boom, False)])
    assert [(c.status, c.name) for c in results] == [(FAIL, "vital"), (WARN, "optional")]
    assert results[0].detail == "the check itself failed (RuntimeError: driver exploded)"
    assert doctor.report(results).splitlines()[-1].startswith("nstcam cannot run here")


@pytest.mark.parametrize("home", ["gone", "unset"])
def test_without_a_home_folder_the_advice_names_it_and_what_fixes_each_folder(monkeypatch, tmp_path, home):
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "APPDATA"):
        monkeypatch.delenv(variable, raising=False)
    if home == "gone":
        monkeypatch.setenv("HOME", str(tmp_path / "gone"))
        why = f"the home folder {tmp_path / 'gone'} does not exist"
    else:  # a service account: no HOME, and no home folder in the user database
        import pwd

        monkeypatch.delenv("HOME")
        monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
        why = "HOME is unset and this user has no home folder"
    results = doctor.run_checks(Context(), [("styles", doctor.check_styles, True),
                                            ("output folders", doctor.check_outputs, False)])
    by_name = _by_name(results)
    assert [c.status for c in by_name["styles"]] == [OK]  # the bundled styles load without a home
    (check,) = by_name["output folders"]
    assert check.status == WARN
    assert check.detail == (f"{why}, so snapshots, recordings, user styles have nowhere to go: set HOME to an "
                            "existing folder, or pass --pictures-dir DIR for snapshots; pass --record FILE for "
                            "recordings; set XDG_DATA_HOME (APPDATA on Windows) for user styles")


def test_an_unwritable_user_styles_folder_is_not_fixed_with_pictures_dir(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(doctor, "output_folders", lambda: {"snapshots": tmp_path / "pictures",
                                                           "user styles": blocker / "styles"})
    (check,) = doctor.check_outputs(Context())
    assert check.detail == (f"{blocker / 'styles'}: {blocker} is a file, not a folder; "
                            "set XDG_DATA_HOME (APPDATA on Windows) to put user styles elsewhere")
