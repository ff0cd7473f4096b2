"""Packaging by role: what each extra holds, what a gate imports, how big a gate install is, and that every
requirement of a gate has a wheel for a 64-bit Raspberry Pi (issue 13, point 1).

The fast tests read the imports of ``protocols/`` and ``gate/`` (with ``ast``) against pyproject.toml. The slow
ones need the package index: they install the built wheel into fresh virtualenvs, and ask pip for aarch64 wheels
of Pi OS bookworm's and trixie's Pythons.
"""

from __future__ import annotations

import ast
import email
import functools
import importlib.metadata
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import scaled
from tests.packaging_helpers import (
    REPO,
    build_wheel,
    copy_checkout,
    distribution_names,
    fresh_venv,
    install,
    installed_distributions,
    requirements,
    run_pip,
    site_packages,
    tree_size,
)

GATE_SIZE_LIMIT = 60 * 1000 * 1000  # bytes of site-packages for `vaora[gate]` (issue 13: at most 60 MB)
# Central's stack: none of it may be installed or imported on a gate.
CENTRAL_ONLY = frozenset({"flask", "peewee", "werkzeug", "jinja2", "flask-babel", "babel", "openpyxl", "fpdf2",
                          "aiosmtpd", "gunicorn", "pillow", "segno", "argon2-cffi", "numpy",
                          "opencv-python-headless", "zxing-cpp", "pyzbar"})
CENTRAL_MODULES = ("central", "flask", "peewee", "werkzeug", "jinja2", "babel", "openpyxl", "fpdf", "aiosmtpd",
                   "gunicorn", "PIL", "segno", "numpy", "cv2", "zxingcpp", "pyzbar", "devtools")
# Modules that come from Raspberry Pi OS's apt packages, never from pip (README "Installing a gate").
APT_ONLY = {"picamera2": "python3-picamera2", "libcamera": "python3-libcamera"}
# gate/camera/synthetic.py and hard_frames.py draw codes for tests and benchmarks; a running gate never imports them.
TEST_TOOLING = {"gate/camera/synthetic.py", "gate/camera/hard_frames.py"}
# Requirements with no aarch64 wheel on the index that build from source on a Pi (README "Installing a gate":
# gcc, python3-dev and linux-libc-dev from apt).
SOURCE_BUILDS = {"evdev"}
GATE_SIDE_EXTRAS = ("gate", "camera", "webcam", "zbar")
# Pi OS bookworm has glibc 2.36 (trixie 2.41): any manylinux tag up to 2.36 installs on both.
AARCH64_PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37))]
FIRST_PARTY = {"gate", "protocols", "central", "devtools", "tests"}


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(top-level module, lazy) for every run-time import of a file; lazy = inside a function. Also
    ``importlib.import_module("name")`` calls. ``if TYPE_CHECKING:`` blocks are not run and are skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def visit(node: ast.AST, lazy: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (item for orelse in child.orelse for item in visit(orelse, lazy))
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                yield from ((alias.name.split(".")[0], lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0], lazy
            elif (isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module")
                  and child.args and isinstance(child.args[0], ast.Constant)):
                yield str(child.args[0].value).split(".")[0], lazy
            yield from visit(child, inner)

    yield from visit(tree, False)


@functools.cache
def _providers() -> dict[str, list[str]]:
    """{top-level module: [distribution]} of this environment (scanning it takes a while: once)."""
    return dict(importlib.metadata.packages_distributions())


def _distribution_of(module: str) -> str | None:
    """The distribution that provides ``module`` in this (dev) environment; None for the standard library and
    the project's own packages."""
    if module in sys.stdlib_module_names or module in FIRST_PARTY:
        return None
    providers = _providers().get(module)
    if not providers:
        raise AssertionError(f"no installed distribution provides {module!r}")
    return canonicalize_name(providers[0])


def _third_party(folder: str) -> dict[str, list[tuple[str, str | None, bool]]]:
    """{file: [(module, distribution, lazy)]} for the third-party imports under ``folder``."""
    found: dict[str, list[tuple[str, str | None, bool]]] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for module, lazy in _imports(path):
            if module in sys.stdlib_module_names or module in FIRST_PARTY:
                continue
            distribution = None if module in APT_ONLY else _distribution_of(module)
            found.setdefault(rel, []).append((module, distribution, lazy))
    return found


def test_the_base_install_is_what_protocols_imports() -> None:
    """The base install holds only what every role imports: ``protocols/``, the contract, and nothing else."""
    imported = {d for entries in _third_party("protocols").values() for _, d, _ in entries if d}
    assert imported == distribution_names()


def test_gate_modules_import_only_the_gate_side_extras() -> None:
    """At module level a gate module imports only base + ``gate`` (camera modules: + ``camera``); lazily, only
    the camera extras' libraries or Pi OS's apt modules. Never central's stack."""
    eager_allowed = distribution_names("gate")
    camera_allowed = distribution_names("camera")
    lazy_allowed = distribution_names(*GATE_SIDE_EXTRAS)
    problems = []
    for rel, entries in _third_party("gate").items():
        if rel in TEST_TOOLING:
            continue
        for module, distribution, lazy in entries:
            if distribution is None:
                if not lazy:
                    problems.append(f"{rel}: {module} (apt-only) imported at module level")
                continue
            allowed = lazy_allowed if lazy else camera_allowed if rel.startswith("gate/camera/") else eager_allowed
            if distribution not in allowed or distribution in CENTRAL_ONLY - lazy_allowed:
                problems.append(f"{rel}: {module} ({distribution}) {'lazily' if lazy else 'at module level'}")
    assert problems == []


def test_central_imports_only_its_extras() -> None:
    """Every library central imports is in base + ``central`` (``pg`` and ``redis`` for their engines), so a
    ``vaora[central]`` install runs without the dev extra that the test venv adds."""
    allowed = distribution_names("central", "pg", "redis")
    problems = sorted({f"{rel}: {module} ({distribution})" for rel, entries in _third_party("central").items()
                       for module, distribution, _ in entries if distribution not in allowed})
    assert problems == []


def test_the_checker_sees_lazy_guarded_and_dynamic_imports(tmp_path: Path) -> None:
    """The import reader itself: module level vs inside a function, TYPE_CHECKING skipped, import_module."""
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flask\n"
                      "def f():\n    import cv2\n    importlib.import_module('picamera2')\nimport numpy.linalg\n")
    assert list(_imports(source)) == [("os", False), ("typing", False), ("cv2", True), ("picamera2", True),
                                      ("numpy", False)]


def test_extras_keep_central_off_a_gate() -> None:
    """No gate-side extra pulls central's stack; the HID scanner's evdev is the source package, not
    evdev-binary (x86-64 wheels only)."""
    assert distribution_names("gate") & CENTRAL_ONLY == set()
    assert distribution_names("camera") & CENTRAL_ONLY == {"numpy", "zxing-cpp"}
    assert "evdev" in distribution_names("gate")
    assert "evdev-binary" not in distribution_names(*GATE_SIDE_EXTRAS, "central", "dev")
    assert "opencv-python-headless" not in distribution_names("camera")


def test_the_camera_denoise_is_opencvs_3x3_gaussian() -> None:
    """The numpy denoise that lets a Pi camera gate run without OpenCV equals ``cv2.GaussianBlur(g, (3, 3), 0)``
    pixel for pixel, borders included."""
    import cv2

    from gate.camera.decoders import denoise_frame

    rng = np.random.default_rng(13)
    for shape in [(480, 640), (1, 7), (7, 1), (2, 2), (17, 33)]:
        gray = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(denoise_frame(gray), cv2.GaussianBlur(gray, (3, 3), 0)), shape


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the checkout."""
    source = copy_checkout(tmp_path_factory.mktemp("checkout"))
    return build_wheel(source, tmp_path_factory.mktemp("wheel"))


IMPORT_EVERY_GATE_MODULE = """
import json, pkgutil, importlib, sys
import gate, protocols
names = []
for package in (gate, protocols):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.startswith("gate.camera") or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
from gate.cli import main
from gate.scanners.hid import HidScanner
import evdev
print(json.dumps({"imported": names, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow
@pytest.mark.timeout(scaled(600))  # a cold pip cache downloads and builds
def test_a_fresh_gate_venv_is_small_and_holds_nothing_of_centrals(wheel: Path, tmp_path: Path) -> None:
    """``pip install vaora[gate]`` into a fresh venv: at most 60 MB of site-packages, no distribution of central's
    stack, and importing every gate and protocols module loads none of central's modules."""
    python = fresh_venv(tmp_path / "gate-venv")
    install(python, f"vaora[gate] @ {wheel.as_uri()}")
    size = tree_size(site_packages(python))
    print(f"vaora[gate] site-packages: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB)")
    assert size <= GATE_SIZE_LIMIT
    installed = installed_distributions(python)
    assert installed & CENTRAL_ONLY == set()
    assert {"vaora", "evdev", "gpiozero", "pyserial", "paho-mqtt", "cryptography", "pydantic"} <= installed
    done = subprocess.run([str(python), "-c", IMPORT_EVERY_GATE_MODULE], capture_output=True, text=True,
                          cwd=tmp_path, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert "gate.app" in report["imported"] and "protocols.mqtt" in report["imported"]
    leaked = [m for m in report["modules"] if m.split(".")[0] in CENTRAL_MODULES]
    assert leaked == []
    gate_cli = python.parent / "vaora-gate"
    plain = subprocess.run([str(gate_cli), "check-config", str(REPO / "firmware_config" / "plain-gpio.toml")],
                           capture_output=True, text=True, check=False, timeout=60)
    assert plain.returncode == 0, plain.stderr
    # A camera configuration on a gate-only install: check-config (the unit's ExecStartPre) names the extra.
    camera = subprocess.run([str(gate_cli), "check-config", str(REPO / "firmware_config" / "camera.toml")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert camera.returncode == 2
    assert camera.stderr.splitlines()[1:] == [
        "scanner.type: needs numpy, which is not installed (pip install 'vaora[camera]')",
        "scanner.decoder: needs zxing-cpp, which is not installed (pip install 'vaora[camera]')",
    ]


DECODE_A_PICAMERA2_FRAME = """
import json, sys
import numpy as np
from gate.camera import Picamera2Source, ZxingDecoder

luma = np.load(sys.argv[1])

class Camera:
    # picamera2's Picamera2 as the gate drives it: a YUV420 buffer whose first rows are the Y plane
    def __init__(self, number): pass
    def create_video_configuration(self, **kwargs): return kwargs
    def configure(self, config): pass
    def start(self): pass
    def capture_array(self, stream): return np.vstack([luma, np.zeros((luma.shape[0] // 2, luma.shape[1]), np.uint8)])
    def stop(self): pass
    def close(self): pass

class Module:
    Picamera2 = Camera

source = Picamera2Source(0, width=luma.shape[1], height=luma.shape[0], module=Module)
source.open()
texts = ZxingDecoder().decode(source.read())
source.close()
print(json.dumps({"texts": texts, "cv2": "cv2" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.timeout(scaled(600))  # a cold pip cache downloads and builds
def test_a_fresh_camera_venv_reads_a_pi_camera_frame_without_opencv(wheel: Path, tmp_path: Path) -> None:
    """``vaora[camera]`` brings numpy and zxing-cpp, not OpenCV; a picamera2 frame (the Y plane) decodes there."""
    import segno

    python = fresh_venv(tmp_path / "camera-venv")
    install(python, f"vaora[camera] @ {wheel.as_uri()}")
    installed = installed_distributions(python)
    assert {"numpy", "zxing-cpp"} <= installed
    assert installed & {"opencv-python-headless", "opencv-python", "pyzbar", "flask", "peewee"} == set()
    matrix = np.array([[0 if dark else 255 for dark in row] for row in segno.make_qr("VAORA-13").matrix],
                      dtype=np.uint8)
    luma = np.pad(np.kron(matrix, np.ones((8, 8), dtype=np.uint8)), 32, constant_values=255)
    frame = tmp_path / "luma.npy"
    np.save(frame, luma)
    done = subprocess.run([str(python), "-c", DECODE_A_PICAMERA2_FRAME, str(frame)], capture_output=True,
                          text=True, cwd=tmp_path, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"texts": ["VAORA-13"], "cv2": False}


def _target(python_version: str, platforms: list[str]) -> dict[str, str]:
    """Marker environment of a Linux CPython ``python_version`` on ``platforms``' machine."""
    return {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "platform_machine": platforms[0].rsplit("_", 1)[-1],
            "python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def _missing_wheels(python_version: str, platforms: list[str], names: set[str], dest: Path) -> set[str]:
    """The distributions, among the gate-side requirements called ``names`` and their dependencies, that have no
    wheel for ``platforms`` and ``python_version``: empty when pip downloads all of them as wheels. A requirement
    whose own wheel exists but whose dependencies do not resolve is followed into its dependencies."""
    environment = _target(python_version, platforms)
    base_args = ["download", "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
                 "--dest", str(dest)]
    for platform in platforms:
        base_args += ["--platform", platform]
    wanted = [r for r in requirements(*GATE_SIDE_EXTRAS)
              if (r.marker is None or r.marker.evaluate(environment)) and canonicalize_name(r.name) in names]
    if run_pip([*base_args, *map(str, wanted)]).returncode == 0:
        return set()
    checked: dict[str, set[str]] = {}

    def missing(requirement: Requirement) -> set[str]:
        name = canonicalize_name(requirement.name)
        if name in checked:
            return checked[name]
        checked[name] = set()
        if run_pip([*base_args, str(requirement)]).returncode == 0:
            return checked[name]
        alone = dest / f"{name}-alone"
        if run_pip([*base_args, "--no-deps", "--dest", str(alone), str(requirement)]).returncode != 0:
            checked[name] = {name}
            return checked[name]
        (wheel,) = alone.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            metadata = email.message_from_bytes(archive.read(metadata_name))
        for text in metadata.get_all("Requires-Dist") or []:
            dependency = Requirement(text)
            if dependency.marker is None or dependency.marker.evaluate(environment):
                checked[name] |= missing(dependency)
        return checked[name]

    return set().union(*(missing(r) for r in wanted))


@pytest.mark.slow
@pytest.mark.timeout(scaled(600))  # a cold pip cache downloads and builds
@pytest.mark.parametrize("python_version", ["3.11", "3.13"], ids=["bookworm-3.11", "trixie-3.13"])
def test_every_gate_requirement_has_an_aarch64_wheel(python_version: str, tmp_path: Path) -> None:
    """`pip download --only-binary=:all: --platform manylinux2014_aarch64 ...` for every requirement of the gate
    and camera extras (their dependencies included) finds a wheel; evdev, the listed source build, has an
    sdist that pip can read."""
    names = distribution_names(*GATE_SIDE_EXTRAS) - SOURCE_BUILDS
    assert _missing_wheels(python_version, AARCH64_PLATFORMS, names, tmp_path / "wheels") == set()
    for name in SOURCE_BUILDS:
        (requirement,) = [str(r) for r in requirements(*GATE_SIDE_EXTRAS) if canonicalize_name(r.name) == name]
        done = run_pip(["download", "--no-deps", "--no-binary=:all:", "--dest", str(tmp_path / "sdists"),
                        requirement])
        assert done.returncode == 0, done.stderr
        assert list((tmp_path / "sdists").glob(f"{name}-*.tar.gz")), done.stdout


# 32-bit Raspberry Pi OS (armhf; pip on a Pi 2/3/4 reports armv7l): these gate-side distributions have no wheel on
# the index and would build from source on the board (README "Installing a gate": not supported). cryptography
# has armv7 wheels, but its cffi has none.
ARMV7_PLATFORMS = ["linux_armv7l", "manylinux2014_armv7l", *(f"manylinux_2_{minor}_armv7l" for minor in range(17, 37))]
ARMV7_WITHOUT_WHEELS = {"cffi", "coincurve", "numpy", "zxing-cpp", "opencv-python-headless"}
ARMV7_NEEDS_THEM = {"cryptography"}


@pytest.mark.slow
@pytest.mark.timeout(scaled(600))  # a cold pip cache downloads
def test_32_bit_boards_lack_the_wheels_the_readme_names(tmp_path: Path) -> None:
    """On armv7 the distributions the README names have no wheel, and everything else (with its dependencies)
    has one, so that the README's statement stays true."""
    args = ["download", "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
            "--dest", str(tmp_path)]
    for platform in ARMV7_PLATFORMS:
        args += ["--platform", platform]
    for name in sorted(ARMV7_WITHOUT_WHEELS):
        assert run_pip([*args, "--no-deps", name]).returncode != 0, f"{name} now has an armv7 wheel"
    for name in sorted(ARMV7_NEEDS_THEM):
        assert run_pip([*args, "--no-deps", name]).returncode == 0, f"{name} has no armv7 wheel"
    environment = _target("3.11", ARMV7_PLATFORMS)
    others = [str(r) for r in requirements(*GATE_SIDE_EXTRAS)
              if (r.marker is None or r.marker.evaluate(environment))
              and canonicalize_name(r.name) not in ARMV7_WITHOUT_WHEELS | ARMV7_NEEDS_THEM | SOURCE_BUILDS]
    done = run_pip([*args, *others])
    assert done.returncode == 0, done.stderr
