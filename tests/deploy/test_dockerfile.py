"""The Dockerfile and .dockerignore, without a Docker daemon.

hadolint (from the tools venv) lints it; a small parser checks the properties the image
must have (multi-stage, non-root, no compiler in the final stage, health check on
/healthz, entrypoint); the health check command itself is run against a local HTTP
server; and the build context that .dockerignore lets through is enough to build the
project's wheel.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import ClassVar

import pytest

from streams.settings import Settings
from streams.settings import env_names as setting_env_names

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CACHE_ROOT = Path(os.environ.get("HOME", "/root")) / ".cache" / "contentstream"
TOOLS_VENV = Path(os.environ.get("CONTENTSTREAM_TOOLS_VENV", CACHE_ROOT / "tools-venv"))
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (continuations joined, comments dropped)."""
    stages: list[list[Instruction]] = []
    preamble: list[Instruction] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        logical = ""
        if instruction.keyword == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
        else:
            preamble.append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def test_hadolint_finds_nothing() -> None:
    hadolint = TOOLS_VENV / "bin" / "hadolint"
    if not hadolint.is_file():
        pytest.skip(f"{hadolint} missing: run scripts/install_deploy_tools.sh first")
    proc = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_with_a_slim_python_311_base(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    assert [s[0].args for s in stages] == [
        "${PYTHON_IMAGE} AS builder",
        "${PYTHON_IMAGE} AS runtime",
    ]


def test_final_stage_has_no_compiler_and_installs_wheels_offline(
    stages: list[list[Instruction]],
) -> None:
    final = stages[-1]
    runs = " ".join(_all(final, "RUN"))
    for compiler in COMPILERS:
        assert compiler not in runs, f"{compiler.strip()} in the final stage"
    assert "apt-get" not in runs
    assert "--no-index --find-links /wheels" in runs
    assert "from=builder,source=/wheels" in runs
    assert not _all(final, "COPY"), "the final stage gets wheels by bind mount, not COPY"
    builder_runs = " ".join(_all(stages[0], "RUN"))
    assert "pip wheel" in builder_runs and "--wheel-dir /wheels" in builder_runs


def test_runs_as_a_fixed_non_root_user(stages: list[list[Instruction]]) -> None:
    (user,) = _all(stages[-1], "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric uid so runAsNonRoot can verify it"
    assert f"--uid {uid}" in " ".join(_all(stages[-1], "RUN"))


def test_entrypoint_is_the_cli_and_defaults_to_the_worker(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    assert [json.loads(a) for a in _all(final, "ENTRYPOINT")] == [["contentstream"]]
    assert [json.loads(a) for a in _all(final, "CMD")] == [["worker"]]
    assert _all(final, "EXPOSE") == [str(Settings.model_fields["web_port"].default)]


def test_environment_variables_are_settings(stages: list[list[Instruction]]) -> None:
    env_line = " ".join(_all(stages[-1], "ENV"))
    pairs = dict(item.split("=", 1) for item in env_line.split())
    ours = {k for k in pairs if k.startswith(("CONTENTSTREAM_", "KAFKA_", "REDIS_"))}
    assert ours <= setting_env_names()
    assert pairs["CONTENTSTREAM_WEB_HOST"] == "0.0.0.0"


def test_with_ml_build_arg_selects_the_ml_extra(stages: list[list[Instruction]]) -> None:
    builder = stages[0]
    assert "WITH_ML=false" in _all(builder, "ARG")
    run = " ".join(_all(builder, "RUN"))
    assert 'true:cpu) target=".[ml,otel]"' in run
    assert "--extra-index-url" in run and "TORCH_INDEX_URL" in run
    assert any(
        a.startswith("TORCH_INDEX_URL=") and a.endswith("/whl/cpu") for a in _all(builder, "ARG")
    )
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "ml" in extras


def _run_builder_script(
    stages: list[list[Instruction]], tmp_path: Path, **build_args: str
) -> tuple[int, list[str], str]:
    """The builder's `pip wheel` RUN under sh with a fake pip: (status, pip's args, stderr)."""
    (script,) = [run for run in _all(stages[0], "RUN") if "pip wheel" in run]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pip").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/pip-args\n')
    (fake / "pip").chmod(0o755)
    defaults = {
        a.split("=", 1)[0]: a.split("=", 1)[1]
        for stage_arg in _all(stages[0], "ARG")
        for a in [stage_arg]
        if "=" in a
    }
    proc = subprocess.run(
        ["sh", "-c", script.replace("/wheels", str(wheels))],
        env={"PATH": f"{fake}:/usr/bin:/bin", **defaults, **build_args},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    args_file = tmp_path / "pip-args"
    pip_args = args_file.read_text().splitlines() if args_file.exists() else []
    return proc.returncode, pip_args, proc.stderr


@pytest.mark.parametrize(
    ("build_args", "target", "torch_index"),
    [
        # Every image can export traces (the otel extra; off unless OTEL_* asks).
        ({}, ".[otel]", False),
        ({"WITH_ML": "true"}, ".[ml,otel]", True),
        # The GPU image: PyPI's own torch wheels for linux x86_64 are CUDA builds.
        ({"WITH_ML": "true", "TORCH_DEVICE": "cuda"}, ".[ml,otel]", False),
    ],
    ids=["plain", "ml-cpu", "ml-cuda"],
)
def test_torch_device_build_arg_picks_the_torch_wheels(
    stages: list[list[Instruction]],
    tmp_path: Path,
    build_args: dict[str, str],
    target: str,
    torch_index: bool,
) -> None:
    status, pip_args, stderr = _run_builder_script(stages, tmp_path, **build_args)
    assert status == 0, stderr
    assert pip_args[0] == "wheel" and pip_args[-1] == target
    cpu_index = "https://download.pytorch.org/whl/cpu"
    assert (cpu_index in pip_args) is torch_index
    assert not [a for a in pip_args if a.startswith("--index-url")], "PyPI stays the index"
    device = build_args.get("TORCH_DEVICE", "cpu")
    assert (tmp_path / "wheels" / ".torch-device").read_text().strip() == device


@pytest.mark.parametrize(
    "build_args",
    [{"TORCH_DEVICE": "cuda"}, {"WITH_ML": "true", "TORCH_DEVICE": "rocm"}, {"WITH_ML": "yes"}],
)
def test_impossible_build_args_fail_the_build(
    stages: list[list[Instruction]], tmp_path: Path, build_args: dict[str, str]
) -> None:
    status, pip_args, stderr = _run_builder_script(stages, tmp_path, **build_args)
    assert status != 0 and not pip_args
    assert "TORCH_DEVICE" in stderr or "WITH_ML" in stderr


def test_a_cuda_image_is_checked_to_hold_a_cuda_torch(stages: list[list[Instruction]]) -> None:
    runs = " ".join(_all(stages[-1], "RUN"))
    assert "/wheels/.torch-device" in runs and "torch.version.cuda is None" in runs
    assert "TORCH_DEVICE=cpu" in _all(stages[-1], "ARG")
    assert 'io.contentstream.torch-device="${TORCH_DEVICE}"' in " ".join(_all(stages[-1], "LABEL"))


def test_oci_labels(stages: list[list[Instruction]]) -> None:
    labels = " ".join(_all(stages[-1], "LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


# ---------------------------------------------------------------------------- health check


def _healthcheck_command(stages: list[list[Instruction]]) -> list[str]:
    (healthcheck,) = _all(stages[-1], "HEALTHCHECK")
    exec_form = healthcheck.split(" CMD ", 1)[1]
    command: list[str] = json.loads(exec_form)
    return command


class _Handler(http.server.BaseHTTPRequestHandler):
    status_by_path: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        self.send_response(self.status_by_path.get(self.path, 404))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, int]]]:
    statuses: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"status_by_path": statuses})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(command: list[str], port: int) -> int:
    assert command[0] == "python"
    proc = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "CONTENTSTREAM_WEB_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return proc.returncode


def test_healthcheck_probes_healthz_on_the_web_port(
    stages: list[list[Instruction]], health_server: tuple[int, dict[str, int]]
) -> None:
    (healthcheck,) = _all(stages[-1], "HEALTHCHECK")
    assert "--start-period=" in healthcheck
    command = _healthcheck_command(stages)
    port, statuses = health_server
    statuses["/healthz"] = 200
    assert _run_healthcheck(command, port) == 0
    statuses["/healthz"] = 503
    assert _run_healthcheck(command, port) != 0
    statuses.clear()  # only /healthz counts: a 200 elsewhere does not help
    statuses["/"] = 200
    assert _run_healthcheck(command, port) != 0


def test_healthcheck_fails_when_nothing_listens(stages: list[list[Instruction]]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _run_healthcheck(_healthcheck_command(stages), port) != 0


# ---------------------------------------------------------------------------- build context


def _patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes; a path whose parent
    directory is excluded is excluded unless re-included."""
    parts = path.split("/")
    result = False
    for pattern in _patterns():
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch(prefix, body) or (
                body.startswith("**/") and fnmatch(prefix.split("/")[-1], body[3:])
            ):
                result = not negate
                break
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".services/kafka/libs/x.jar",
        ".venv/bin/python",
        ".git/config",
        "tests/streams/test_security.py",
        "bench/analyzers.py",
        "deploy/helm/contentstream/values.yaml",
        "docker-compose.yml",
        "streams/__pycache__/x.cpython-311.pyc",
        "scripts/services.sh",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "streams/security.py", "analyzers/base.py"]
)
def test_dockerignore_lets_in(path: str) -> None:
    assert not ignored(path)


def test_copied_sources_cover_the_packages(stages: list[list[Instruction]]) -> None:
    copied = {
        src.rstrip("/")
        for args in _all(stages[0], "COPY")
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    for source in copied:
        assert not ignored(source), f"COPY {source} but .dockerignore excludes it"
    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in find}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"


def test_build_context_builds_the_wheel(tmp_path: Path, stages: list[list[Instruction]]) -> None:
    """What .dockerignore lets through is enough for the builder's `pip wheel`."""
    if not (REPO_ROOT / "README.md").is_file():
        pytest.skip("README.md missing: pyproject's readme (and the Dockerfile COPY) need it")
    context = tmp_path / "context"
    context.mkdir()
    for args in _all(stages[0], "COPY"):
        *sources, _dest = args.split()
        for source in sources:
            src = REPO_ROOT / source.rstrip("/")
            if src.is_dir():
                shutil.copytree(
                    src, context / source.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(src, context / source)
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--disable-pip-version-check", "-q", "-w", str(tmp_path / "wheels"), str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("contentstream-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "contentstream = streams.commands.cli:main" in archive.read(entry_points).decode()
    assert "streams/security.py" in names
    assert "streams/settings.py" in names
