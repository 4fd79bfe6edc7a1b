"""Deployment files: the Dockerfile, docker-compose.yml and deploy/k8s agree with the code."""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support import free_port

from daw_popular import config
from daw_popular.config import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
ENV_VARS = {config.ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    stage: str
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(item) for item in value]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their stage name; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    instructions = []
    stage = ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
        instructions.append(Instruction(stage, keyword, args.strip()))
    return instructions


DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text())
STAGES = list(dict.fromkeys(i.stage for i in DOCKERFILE if i.keyword == "FROM"))
BUILD_STAGE, RUNTIME_STAGE = STAGES[0], STAGES[-1]


def instructions(keyword: str, stage: str | None = None) -> list[Instruction]:
    return [i for i in DOCKERFILE if i.keyword == keyword and stage in (None, i.stage)]


def last(keyword: str, stage: str = RUNTIME_STAGE) -> Instruction:
    found = instructions(keyword, stage)
    assert found, f"no {keyword} in stage {stage}"
    return found[-1]


def copies(stage: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY instructions from the build context."""
    result = []
    for copy in instructions("COPY", stage):
        if "--from=" in copy.args:
            continue
        *sources, dest = shlex.split(copy.args)
        result.append((sources, dest))
    return result


def healthcheck_command() -> list[str]:
    check = last("HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    assert command, "HEALTHCHECK has no CMD"
    assert "--timeout=" in options and "--interval=" in options
    return Instruction(check.stage, "CMD", command).exec_form()


def dockerfile_env(stage: str = RUNTIME_STAGE) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions("ENV", stage):
        for word in shlex.split(instruction.args):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    bases = [i.args.split()[0] for i in instructions("FROM")]
    args = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in instructions("ARG")}
    resolved = [args.get(b.strip("${}"), b) for b in bases]
    assert len(STAGES) >= 2
    assert all(base == "python:3.11-slim" for base in resolved), resolved
    venv_copy = [c.args for c in instructions("COPY", RUNTIME_STAGE) if "--from=" in c.args]
    assert venv_copy == [f"--from={BUILD_STAGE} /opt/venv /opt/venv"]
    assert dockerfile_env()["PATH"].startswith("/opt/venv/bin:")
    assert not copies(RUNTIME_STAGE), "the runtime stage takes files only from the build stage"


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    user = last("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert gid.isdigit() and int(gid) != 0, user
    creation = " ".join(i.args for i in instructions("RUN", RUNTIME_STAGE))
    assert f"--uid {uid}" in creation and f"--gid {gid}" in creation


def test_dockerfile_command_line_is_the_cli_serving_on_all_interfaces() -> None:
    entrypoint = last("ENTRYPOINT").exec_form()
    command = last("CMD").exec_form()
    assert entrypoint == ["daw-popular"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    assert command == ["serve", "--host", "0.0.0.0"]
    assert last("EXPOSE").args == str(Settings().port)


def test_dockerfile_copies_what_the_wheel_is_built_from() -> None:
    copied = {Path(source).as_posix() for sources, _ in copies(BUILD_STAGE) for source in sources}
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in packages}
    assert needed <= copied, needed - copied
    for source in copied:
        assert (ROOT / source).exists(), source


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [source for sources, _ in copies(BUILD_STAGE) for source in sources]
    assert not any(p.startswith("!") for p in patterns)
    for source in copied:
        assert source not in patterns and f"/{source}" not in patterns, source
    for heavy in (".git", ".venv", "tests", "bench"):
        assert heavy in patterns, heavy


def test_dockerfile_installs_extras_the_package_defines() -> None:
    install = " ".join(i.args for i in instructions("RUN", BUILD_STAGE))
    match = re.search(r'"daw-popular\[([a-z,]+)\]"', install)
    assert match is not None, install
    extras = set(match.group(1).split(","))
    assert extras == {"redis", "metrics"}
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_up(port: int, process: subprocess.Popen[bytes], deadline: float = 10.0) -> None:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        try:
            get(port, "/healthz")
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answered on port {port}")


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's build steps, from the files its COPY lines name, into a fresh venv."""
    work = tmp_path_factory.mktemp("image")
    source = work / "src"
    for sources, dest in copies(BUILD_STAGE):
        for item in sources:
            target = source / dest / Path(item).name if dest.endswith("/") else source / dest
            if (ROOT / item).is_dir():
                shutil.copytree(
                    ROOT / item,
                    target,
                    # What .dockerignore keeps out, the extensions `make compile` built here.
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"),
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / item, target)
    wheels, venv = work / "wheels", work / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # The build stage's environment: DAW_POPULAR_COMPILE=1, so mypyc compiles the wheel.
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)],
        check=True,
        cwd=work,
        env={**os.environ, **dockerfile_env(BUILD_STAGE)},
        timeout=600,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The image's pip only differs in where it runs from; `--python` installs into the venv.
    subprocess.run(
        [
            *pip,
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--find-links",
            str(wheels),
            "daw-popular[redis,metrics]",
        ],
        check=True,
        cwd=work,
        timeout=120,
    )
    return venv


def image_env(venv: Path, **extra: str) -> dict[str, str]:
    """The runtime stage's environment, with its venv at `venv`, and nothing of ours."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv.parent), "LANG": "C.UTF-8"}
    for name, value in dockerfile_env().items():
        if name != "PATH":
            env[name] = value
    env.update(extra)
    return env


def test_installed_package_comes_from_the_clean_venv(clean_venv: Path) -> None:
    """The help screens work from the wheel alone, not from this checkout."""
    where = subprocess.run(
        [
            str(clean_venv / "bin" / "python"),
            "-c",
            "import daw_popular; print(daw_popular.__file__, daw_popular.compiled())",
        ],
        env=image_env(clean_venv),
        cwd=clean_venv.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path, compiled = where.split()
    assert Path(path).is_relative_to(clean_venv)
    assert compiled == "True", "the image's wheel is built by mypyc (DAW_POPULAR_COMPILE=1)"
    script = clean_venv / "bin" / last("ENTRYPOINT").exec_form()[0]
    screens = {}
    for command in ("", "serve", "sim"):
        screens[command] = subprocess.run(
            [str(script), *command.split(), "--help"],
            env=image_env(clean_venv, COLUMNS="200"),
            cwd=clean_venv.parent,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert screens[command].startswith("usage: daw-popular"), command
    assert all(var in screens["serve"] for var in ENV_VARS)


@pytest.fixture(scope="module")
def image_process(clean_venv: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """ENTRYPOINT + CMD of the image, run from the clean venv, as the container would."""
    port = free_port()
    env = image_env(clean_venv, DAW_POPULAR_PORT=str(port))
    argv = [str(clean_venv / "bin" / last("ENTRYPOINT").exec_form()[0]), *last("CMD").exec_form()]
    process = subprocess.Popen(
        argv, env=env, cwd=clean_venv.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until_up(port, process)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=15)


def run_healthcheck(venv: Path, port: int) -> int:
    command = healthcheck_command()
    assert command[0] == "python"
    env = image_env(venv, DAW_POPULAR_PORT=str(port))
    return subprocess.run(
        [str(venv / "bin" / "python"), *command[1:]],
        env=env,
        cwd=venv.parent,
        capture_output=True,
        timeout=10,
    ).returncode


def test_healthcheck_passes_against_the_image_command(
    clean_venv: Path, image_process: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, _ = image_process
    assert run_healthcheck(clean_venv, port) == 0


def test_healthcheck_fails_when_nothing_listens(clean_venv: Path) -> None:
    assert run_healthcheck(clean_venv, free_port()) != 0


def test_kubernetes_probe_paths_answer_200(
    image_process: tuple[int, subprocess.Popen[bytes]],
) -> None:
    """Liveness and readiness of deployment.yaml are routes the service really has."""
    port, _ = image_process
    container = api_container()
    paths = {container[probe]["httpGet"]["path"] for probe in PROBES}
    assert paths == {"/healthz", "/readyz"}
    for path in sorted(paths):
        assert get(port, path) == 200, path


# --- environment values are valid settings ----------------------------------------------------


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """What `daw-popular serve` would run with, given only this environment."""
    unknown = set(env) - ENV_VARS
    assert not unknown, f"not settings of daw_popular.config: {sorted(unknown)}"
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, env=env)
    return config.from_args(parser.parse_args([]))


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# --- docker-compose.yml -----------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}` and `${VAR:-default}` substitution, over a whole parsed document."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    services: dict[str, Any] = interpolate(document, env or {})["services"]
    return services


def test_compose_has_both_designs_together() -> None:
    """nginx in front of several replicas (design 1) that share one Redis (design 2)."""
    services = compose()
    assert set(services) == {"nginx", "app", "redis", "sim"}
    assert services["app"]["deploy"]["replicas"] >= 2
    settings = settings_from_env(services["app"]["environment"])
    redis = urlsplit(settings.redis_url)
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    upstreams = services["nginx"]["environment"]["NGINX_UPSTREAM_SERVERS"]
    assert re.fullmatch(rf"server app:{settings.port}( [a-z_]+=\w+)*;", upstreams), upstreams


def test_compose_upstream_is_the_simulator_unless_overridden() -> None:
    services = compose()
    sim_command = services["sim"]["command"]
    assert sim_command[0] == "sim"
    settings = settings_from_env(services["app"]["environment"])
    assert settings.upstream == f"http://sim:{flag_value(sim_command, '--port')}"
    other = compose({"UPSTREAM": "https://daw.example.net:9443/base"})
    assert settings_from_env(other["app"]["environment"]).upstream == (
        "https://daw.example.net:9443/base"
    )


def test_compose_waits_for_healthy_dependencies() -> None:
    services = compose()
    assert services["app"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "sim": {"condition": "service_healthy"},
    }
    assert services["nginx"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    for name in ("sim", "redis", "nginx"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    # app keeps the image's HEALTHCHECK command and only tunes its timing.
    assert "test" not in services["app"]["healthcheck"]
    assert services["app"]["build"] == "."
    sim_check = " ".join(services["sim"]["healthcheck"]["test"])
    assert f":{flag_value(services['sim']['command'], '--port')}/api/users" in sim_check


def test_compose_nginx_renders_the_shipped_template() -> None:
    """Every placeholder of deploy/nginx.conf gets a value, and the result replaces nginx.conf."""
    nginx = compose()["nginx"]
    env = nginx["environment"]
    (volume,) = nginx["volumes"]
    source, target, mode = volume.split(":")
    assert (ROOT / source).resolve() == ROOT / "deploy" / "nginx.conf"
    assert mode == "ro"
    template = Path(target)
    assert template.parent == Path("/etc/nginx/templates") and template.suffix == ".template"
    assert Path(env["NGINX_ENVSUBST_OUTPUT_DIR"]) / template.stem == Path("/etc/nginx/nginx.conf")
    placeholders = set(re.findall(r"\$\{(\w+)\}", (ROOT / "deploy" / "nginx.conf").read_text()))
    assert placeholders <= set(env), placeholders - set(env)
    assert all(re.search(env["NGINX_ENVSUBST_FILTER"], name) for name in placeholders)
    published = {port.split(":")[1] for port in nginx["ports"]}
    assert published == {env["NGINX_LISTEN"], env["NGINX_H2C_LISTEN"]}


# --- deploy/k8s -------------------------------------------------------------------------------

KNOWN_KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
}
PROBES = ("livenessProbe", "readinessProbe")


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return documents


def manifest(kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def api_container() -> dict[str, Any]:
    containers: list[dict[str, Any]]
    containers = manifest("Deployment", "daw-popular")["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def configmap_settings() -> Settings:
    return settings_from_env(manifest("ConfigMap", "daw-popular")["data"])


def test_every_manifest_is_a_known_kind_listed_in_the_kustomization() -> None:
    for document in manifests():
        assert (document["apiVersion"], document["kind"]) in KNOWN_KINDS
        assert document["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests()}
    assert {
        ("Deployment", "daw-popular"),
        ("Service", "daw-popular"),
        ("HorizontalPodAutoscaler", "daw-popular"),
        ("PodDisruptionBudget", "daw-popular"),
        ("ConfigMap", "daw-popular"),
        ("Deployment", "daw-redis"),
        ("Service", "daw-redis"),
        ("Deployment", "daw-sim"),
        ("Service", "daw-sim"),
    } <= kinds


def container_ports(deployment: dict[str, Any]) -> dict[str, int]:
    ports = {}
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for port in container.get("ports", []):
            ports[port["name"]] = port["containerPort"]
    return ports


def test_services_and_selectors_reach_their_pods() -> None:
    """Each Service, PDB and Deployment selector matches pods, and ports resolve."""
    deployments = [m for m in manifests() if m["kind"] == "Deployment"]
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for service in (m for m in manifests() if m["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        (target,) = [
            d
            for d in deployments
            if selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        ports = container_ports(target)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports or port["targetPort"] in ports.values()
    budget = manifest("PodDisruptionBudget", "daw-popular")
    labels = manifest("Deployment", "daw-popular")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_api_pods_listen_where_the_settings_say_and_probe_the_health_routes() -> None:
    container = api_container()
    settings = configmap_settings()
    assert container_ports(manifest("Deployment", "daw-popular")) == {"http": settings.port}
    assert settings.host == "0.0.0.0"
    assert container["envFrom"] == [{"configMapRef": {"name": "daw-popular"}}]
    assert container["args"][0] == last("CMD").exec_form()[0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = manifest("Deployment", "daw-popular")["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/port"] == str(settings.port)


def test_configmap_points_at_the_simulator_and_redis_services() -> None:
    settings = configmap_settings()
    upstream, redis = urlsplit(settings.upstream), urlsplit(settings.redis_url)
    for url, service in ((upstream, "daw-sim"), (redis, "daw-redis")):
        assert url.hostname == service
        assert url.port == manifest("Service", service)["spec"]["ports"][0]["port"]
    (sim,) = manifest("Deployment", "daw-sim")["spec"]["template"]["spec"]["containers"]
    assert flag_value(sim["args"], "--port") == str(sim["ports"][0]["containerPort"])
    assert sim["image"] == api_container()["image"]


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    uid = int(last("USER").args.partition(":")[0])
    for deployment in (m for m in manifests() if m["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
            assert container["resources"]["requests"]["cpu"]
    api_pod = manifest("Deployment", "daw-popular")["spec"]["template"]["spec"]
    assert api_pod["securityContext"]["runAsUser"] == uid


def test_shutdown_fits_in_the_termination_grace_period() -> None:
    pod = manifest("Deployment", "daw-popular")["spec"]["template"]["spec"]
    command = api_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert pause + configmap_settings().shutdown_grace < pod["terminationGracePeriodSeconds"]


def test_cache_fits_in_the_memory_limit() -> None:
    limit = config.parse_size(api_container()["resources"]["limits"]["memory"])
    assert configmap_settings().cache_bytes <= limit // 2


def test_autoscaler_and_disruption_budget_fit_the_deployment() -> None:
    deployment = manifest("Deployment", "daw-popular")
    hpa = manifest("HorizontalPodAutoscaler", "daw-popular")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": "daw-popular",
    }
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    budget = manifest("PodDisruptionBudget", "daw-popular")["spec"]
    assert budget["maxUnavailable"] < hpa["minReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in api_container()["resources"]["requests"]


def test_environment_names_are_checked_against_settings() -> None:
    """The consistency checks above reject a misspelt or invalid setting."""
    with pytest.raises(AssertionError, match="DAW_POPULAR_UPSTREEM"):
        settings_from_env({"DAW_POPULAR_UPSTREEM": "http://x:1"})
    with pytest.raises(SystemExit):
        settings_from_env({"DAW_POPULAR_PORT": "eighty"})
