#!/usr/bin/env python3
"""Checks the deployment files under deploy/, which cannot run here (no Docker engine,
no Kubernetes, no Apache Kafka): they are parsed and checked against what they promise.

* every YAML file under deploy/ parses (the Kubernetes files as multi-document streams),
  and every Kubernetes object has apiVersion, kind and a name;
* the compose file runs three Apache Kafka brokers in KRaft mode (broker and controller,
  one quorum of the three), replication factor 3, min.insync.replicas 2, no automatic
  topic creation; the topics are created with those settings (kpr-events: 16
  partitions, kept forever; kpr-events.projection: compacted), in compose and in the
  Kubernetes Job alike;
* every kpr command (compose services, Kubernetes containers, the Dockerfile's CMD) is
  one of `serve | ingest | project | statistics`, and every flag it passes exists in
  `kpr <role> --help` of the real binary (KPR_BIN, default target/debug/kpr). A role
  whose --help fails is a FAILURE, not a skip; only a missing binary skips this check;
* the ingest nodes' partition ownership is disjoint and covers 0-15, with one --owners
  map that names each range's own node: in compose literally, and in Kubernetes by
  running the StatefulSet's entrypoint for every ordinal with a stand-in `kpr`;
* the Kubernetes statistics Service does not expose the admin port, and the admin
  listener is bound to loopback everywhere;
* no file under deploy/ holds anything that looks like a key (64 hex digits, a PEM
  private key).

Run with the stdlib runner only:  python tests/python/test_deploy_files.py
(scripts/python-client-test.sh sets up the virtualenv with PyYAML and does that.)
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from urllib.parse import urlparse

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
K8S_DIR = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"

ROLES = ("serve", "ingest", "project", "statistics")
TOPIC = "kpr-events"
PROJECTION_TOPIC = "kpr-events.projection"
PARTITIONS = 16
ADMIN_PORT = 8081

HEX_KEY = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


# ---------------------------------------------------------------------------------------
# Loading


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


@functools.lru_cache(maxsize=None)
def compose() -> dict:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def k8s_objects() -> tuple[tuple[str, dict], ...]:
    """(file name, object) for every document of every YAML file under deploy/k8s/."""
    out = []
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        with path.open(encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    out.append((path.name, doc))
    return tuple(out)


def k8s(kind: str, name: str | None = None) -> list[dict]:
    return [
        o for _, o in k8s_objects()
        if o.get("kind") == kind and (name is None or o.get("metadata", {}).get("name") == name)
    ]


def k8s_one(kind: str, name: str) -> dict:
    found = k8s(kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name} under deploy/k8s, found {len(found)}")
    return found[0]


def config_map() -> dict:
    return k8s_one("ConfigMap", "kpr-config").get("data", {})


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def is_kpr_image(image: str) -> bool:
    return image.rsplit("/", 1)[-1].split(":", 1)[0] == "kpr"


def is_kpr_service(service: dict) -> bool:
    build = service.get("build")
    if isinstance(build, dict) and build.get("dockerfile", "").endswith("deploy/docker/Dockerfile"):
        return True
    return is_kpr_image(str(service.get("image", "")))


def kpr_services() -> dict[str, dict]:
    return {n: s for n, s in compose()["services"].items() if is_kpr_service(s)}


def kafka_brokers() -> dict[str, dict]:
    return {
        n: s for n, s in compose()["services"].items()
        if str(s.get("image", "")).startswith("apache/kafka") and "KAFKA_PROCESS_ROLES" in env_of(s)
    }


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


# ---------------------------------------------------------------------------------------
# Shell scripts and command lines


def join_continuations(script: str) -> str:
    return re.sub(r"\\\n\s*", " ", script)


def topic_creations(script: str) -> dict[str, dict]:
    """topic -> {partitions, replication, config{}} for every `kafka-topics.sh --create`."""
    out = {}
    for line in join_continuations(script).splitlines():
        if "kafka-topics.sh" not in line or "--create" not in line:
            continue
        tokens = shlex.split(line, comments=True)
        topic, spec = None, {"partitions": None, "replication": None, "config": {}}
        i = 0
        while i < len(tokens):
            token, value = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else None
            if token == "--topic":
                topic = value
            elif token == "--partitions":
                spec["partitions"] = int(value)
            elif token == "--replication-factor":
                spec["replication"] = int(value)
            elif token == "--config":
                key, _, val = value.partition("=")
                spec["config"][key] = val
            else:
                i += 1
                continue
            i += 2
        if topic is None:
            raise AssertionError(f"a kafka-topics.sh --create without --topic: {line.strip()}")
        out[topic] = spec
    return out


def kpr_command_in_script(script: str) -> list[str] | None:
    """The argument list of the `kpr ROLE ...` invocation in a shell script, if any."""
    for line in join_continuations(script).splitlines():
        m = re.search(r"(?:^|[\s;&|])(?:exec\s+)?kpr\s+(.*)$", line)
        if m:
            return shlex.split(m.group(1), comments=True)
    return None


def flags_of(arguments: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in arguments if a.startswith("--")]


def flag_value(arguments: list[str], flag: str) -> str | None:
    for i, a in enumerate(arguments):
        if a == flag and i + 1 < len(arguments):
            return arguments[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def parse_ranges(text: str) -> list[int]:
    """`0-7`, `0-3,8-11` or `5` -> the partitions, in order, duplicates kept."""
    out = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise AssertionError(f"not a partition range: {part!r} (in {text!r})")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise AssertionError(f"empty partition range {part!r}")
        out.extend(range(lo, hi + 1))
    return out


def parse_owners(text: str) -> dict[str, str]:
    """`0-7=http://a:1;8-15=http://b:1` -> {"0-7": "http://a:1", ...}."""
    out = {}
    for entry in text.split(";"):
        ranges, sep, url = entry.partition("=")
        if not sep or not url:
            raise AssertionError(f"not an owners entry: {entry!r} (in {text!r})")
        out[ranges.strip()] = url.strip()
    return out


def is_loopback_addr(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "localhost")


def k8s_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command and args: $(VAR) for defined VAR, $$ -> $."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def container_env(container: dict, pod_name: str, namespace: str) -> dict[str, str]:
    data = config_map()
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            if ref["name"] != "kpr-config" or ref["key"] not in data:
                raise AssertionError(f"env {item['name']}: no key {ref['key']} in ConfigMap {ref['name']}")
            env[item["name"]] = str(data[ref["key"]])
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
        else:
            raise AssertionError(f"env {item['name']}: unsupported source {source}")
    return env


# ---------------------------------------------------------------------------------------
# The real binary


def kpr_binary() -> Path:
    return Path(os.environ.get("KPR_BIN") or REPO_ROOT / "target" / "debug" / "kpr")


@functools.lru_cache(maxsize=None)
def kpr_help(role: str) -> tuple[int, str]:
    """(exit code, stdout+stderr) of `kpr ROLE --help`."""
    try:
        run = subprocess.run(
            [str(kpr_binary()), role, "--help"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except OSError as e:
        return 127, str(e)
    return run.returncode, run.stdout + run.stderr


def kpr_invocations() -> list[tuple[str, list[str]]]:
    """(where, [role, args...]) for every kpr command line in deploy/."""
    out = []
    for name, service in kpr_services().items():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if not command:
            raise AssertionError(f"compose service {name}: a kpr service must give its role in `command`")
        out.append((f"compose service {name}", [str(c).replace("$$", "$") for c in command]))
    for file_name, obj in k8s_objects():
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if not is_kpr_image(str(c.get("image", ""))):
                continue
            where = f"k8s {file_name} {obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            command, args = c.get("command"), c.get("args")
            if command and Path(command[0]).name in ("bash", "sh"):
                script = (command + (args or []))[-1]
                found = kpr_command_in_script(script)
                if found is None:
                    raise AssertionError(f"{where}: no `kpr ROLE ...` line in the entrypoint script")
                out.append((where, found))
            elif command:
                if Path(command[0]).name != "kpr":
                    raise AssertionError(f"{where}: command {command[0]!r} is neither kpr nor a shell")
                out.append((where, list(command[1:]) + list(args or [])))
            elif args:
                out.append((where, list(args)))
            else:
                raise AssertionError(f"{where}: no role given (the image's CMD would run `serve`)")
    cmd = dockerfile_instruction("CMD")
    if cmd:
        out.append(("Dockerfile CMD", json.loads(cmd[-1])))
    return out


def dockerfile_lines() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def dockerfile_instruction(name: str) -> list[str]:
    return [l.split(None, 1)[1] for l in dockerfile_lines() if l.split(None, 1)[0].upper() == name]


# ---------------------------------------------------------------------------------------
# Checks shared by compose and Kubernetes


def check_topics(test: unittest.TestCase, creations: dict[str, dict], where: str) -> None:
    test.assertIn(TOPIC, creations, f"{where}: {TOPIC} is not created")
    test.assertIn(PROJECTION_TOPIC, creations, f"{where}: {PROJECTION_TOPIC} is not created")
    log, projection = creations[TOPIC], creations[PROJECTION_TOPIC]
    test.assertEqual(log["partitions"], PARTITIONS, f"{where}: {TOPIC} partitions")
    for topic, spec in ((TOPIC, log), (PROJECTION_TOPIC, projection)):
        test.assertEqual(spec["replication"], 3, f"{where}: {topic} replication factor")
        test.assertEqual(spec["config"].get("min.insync.replicas"), "2", f"{where}: {topic} min.insync.replicas")
        test.assertNotEqual(spec["config"].get("unclean.leader.election.enable"), "true", f"{where}: {topic}")
    test.assertEqual(log["config"].get("retention.ms"), "-1", f"{where}: {TOPIC} must be kept forever")
    test.assertNotIn("compact", log["config"].get("cleanup.policy", "delete"), f"{where}: {TOPIC} must not be compacted")
    test.assertEqual(projection["config"].get("cleanup.policy"), "compact", f"{where}: {PROJECTION_TOPIC} cleanup.policy")


def check_kafka_role(test: unittest.TestCase, args: list[str], where: str) -> None:
    """A Kafka role names the topic, and would create a missing topic safely (kpr's own
    defaults are replication 1)."""
    test.assertEqual(flag_value(args, "--topic"), TOPIC, f"{where}: --topic")
    test.assertEqual(flag_value(args, "--replication"), "3", f"{where}: --replication 3 (the default is 1)")
    test.assertEqual(flag_value(args, "--partitions"), str(PARTITIONS), f"{where}: --partitions")
    test.assertTrue(flag_value(args, "--kafka-brokers"), f"{where}: --kafka-brokers")


def check_ownership(test: unittest.TestCase, nodes: dict[str, list[str]], host_of: dict[str, str], where: str) -> None:
    """nodes: node -> kpr ingest args; host_of: node -> the host name its owner URL must use."""
    test.assertGreaterEqual(len(nodes), 2, f"{where}: expected at least two ingest nodes")
    owned: dict[int, str] = {}
    owners_maps = {}
    for node, args in nodes.items():
        text = flag_value(args, "--partitions-owned")
        test.assertIsNotNone(text, f"{where} {node}: no --partitions-owned")
        partitions = parse_ranges(text)
        for p in partitions:
            test.assertLess(p, PARTITIONS, f"{where} {node}: partition {p} does not exist")
            test.assertNotIn(p, owned, f"{where}: partition {p} owned by both {owned.get(p)} and {node}")
            owned[p] = node
        owners = flag_value(args, "--owners")
        test.assertIsNotNone(owners, f"{where} {node}: no --owners")
        owners_maps[node] = owners
    test.assertEqual(sorted(owned), list(range(PARTITIONS)), f"{where}: ownership does not cover 0-{PARTITIONS - 1}")
    test.assertEqual(len(set(owners_maps.values())), 1, f"{where}: the nodes disagree on --owners: {owners_maps}")
    owners = parse_owners(next(iter(owners_maps.values())))
    covered = []
    for ranges, url in owners.items():
        partitions = parse_ranges(ranges)
        covered.extend(partitions)
        nodes_here = {owned.get(p) for p in partitions}
        test.assertEqual(len(nodes_here), 1, f"{where}: owners entry {ranges} spans nodes {nodes_here}")
        node = nodes_here.pop()
        test.assertEqual(urlparse(url).hostname, host_of[node], f"{where}: owners entry {ranges}={url} is not {node}")
        own = flag_value(nodes[node], "--partitions-owned")
        test.assertEqual(sorted(parse_ranges(own)), sorted(partitions), f"{where}: {node} owns {own}, owners says {ranges}")
        addr = flag_value(nodes[node], "--addr")
        if addr:
            test.assertEqual(urlparse(url).port, int(addr.rsplit(":", 1)[1]), f"{where}: owner port of {node}")
    test.assertEqual(sorted(covered), list(range(PARTITIONS)), f"{where}: --owners does not cover each partition once")


# ---------------------------------------------------------------------------------------
# Tests


class YamlFilesTest(unittest.TestCase):
    def test_every_yaml_file_parses(self):
        files = yaml_files()
        self.assertIn(COMPOSE_FILE, files)
        self.assertGreaterEqual(len([f for f in files if f.parent == K8S_DIR]), 5, "Kubernetes manifests missing")
        for path in files:
            with self.subTest(file=str(path.relative_to(REPO_ROOT))):
                with path.open(encoding="utf-8") as f:
                    docs = [d for d in yaml.safe_load_all(f) if d is not None]
                self.assertTrue(docs, "no YAML document")
                for doc in docs:
                    self.assertIsInstance(doc, dict)
                    if path.parent == K8S_DIR:
                        self.assertIn("apiVersion", doc)
                        self.assertIn("kind", doc)
                        if doc["kind"] != "Kustomization":
                            self.assertTrue(doc.get("metadata", {}).get("name"), f"{doc['kind']} without a name")

    def test_no_key_material(self):
        found = []
        for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if HEX_KEY.search(line) or "PRIVATE KEY-----" in line:
                    found.append(f"{path.relative_to(REPO_ROOT)}:{number}")
        self.assertEqual(found, [], "something that looks like a key (64 hex digits or a PEM private key)")


class ComposeTest(unittest.TestCase):
    def test_three_kraft_brokers(self):
        brokers = kafka_brokers()
        self.assertEqual(len(brokers), 3, f"expected three Kafka brokers, found {sorted(brokers)}")
        ids, voters, clusters = {}, set(), set()
        for name, service in brokers.items():
            env = env_of(service)
            roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
            self.assertEqual(roles, {"broker", "controller"}, f"{name}: KAFKA_PROCESS_ROLES")
            ids[name] = env.get("KAFKA_NODE_ID")
            voters.add(env.get("KAFKA_CONTROLLER_QUORUM_VOTERS"))
            clusters.add(env.get("CLUSTER_ID"))
            self.assertTrue(env.get("KAFKA_CONTROLLER_LISTENER_NAMES"), f"{name}: KAFKA_CONTROLLER_LISTENER_NAMES")
            self.assertIn("CONTROLLER", env.get("KAFKA_LISTENERS", ""), f"{name}: no controller listener")
            self.assertTrue(service.get("volumes"), f"{name}: no data volume")
            self.assertIn("healthcheck", service, f"{name}: no healthcheck")
        self.assertEqual(len(set(ids.values())), 3, f"node ids must differ: {ids}")
        self.assertEqual(len(voters), 1, "the brokers disagree on KAFKA_CONTROLLER_QUORUM_VOTERS")
        self.assertEqual(len(clusters), 1, "the brokers disagree on CLUSTER_ID")
        self.assertTrue(next(iter(clusters)), "no CLUSTER_ID")
        quorum = {}
        for voter in next(iter(voters)).split(","):
            node_id, _, address = voter.partition("@")
            quorum[node_id] = address.rsplit(":", 1)[0]
        expected = {ids[n]: brokers[n].get("hostname", n) for n in brokers}
        self.assertEqual(quorum, expected, "the controller quorum must be exactly the three brokers")

    def test_broker_replication_defaults(self):
        for name, service in kafka_brokers().items():
            env = env_of(service)
            with self.subTest(broker=name):
                self.assertEqual(env.get("KAFKA_DEFAULT_REPLICATION_FACTOR"), "3")
                self.assertEqual(env.get("KAFKA_MIN_INSYNC_REPLICAS"), "2")
                self.assertEqual(env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE"), "false")
                self.assertEqual(env.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), "3")
                self.assertNotEqual(env.get("KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"), "true")

    def test_topics_created_with_replication(self):
        scripts = []
        for service in compose()["services"].values():
            command = service.get("command") or []
            text = command if isinstance(command, str) else "\n".join(map(str, command))
            if "kafka-topics.sh" in text:
                scripts.append(text.replace("$$", "$"))
        self.assertEqual(len(scripts), 1, "expected one service creating the topics")
        check_topics(self, topic_creations(scripts[0]), "compose")

    def test_kpr_services_wait_for_topics(self):
        init = [n for n, s in compose()["services"].items() if "kafka-topics.sh" in json.dumps(s.get("command"))]
        for name, service in kpr_services().items():
            with self.subTest(service=name):
                depends = service.get("depends_on") or {}
                self.assertIn(init[0], depends, f"{name} must start after {init[0]}")
                self.assertEqual(depends[init[0]].get("condition"), "service_completed_successfully")

    def test_kpr_services_roles(self):
        roles = {}
        for name, service in kpr_services().items():
            command = service["command"]
            self.assertIn(command[0], ROLES, f"{name}: unknown role {command[0]!r}")
            roles.setdefault(command[0], []).append(name)
            if command[0] != "serve":
                check_kafka_role(self, command, f"compose {name}")
                brokers = (flag_value(command, "--kafka-brokers") or "").split(",")
                hosts = {b.rsplit(":", 1)[0] for b in brokers}
                self.assertEqual(hosts, {s.get("hostname", n) for n, s in kafka_brokers().items()}, f"{name}: --kafka-brokers")
        self.assertGreaterEqual(len(roles.get("ingest", [])), 2, "two ingest services expected")
        self.assertEqual(len(roles.get("project", [])), 1, "one projector service expected")
        self.assertEqual(len(roles.get("statistics", [])), 1, "one statistics service expected")

    def test_ingest_ownership_disjoint_and_complete(self):
        nodes, hosts = {}, {}
        for name, service in kpr_services().items():
            if service["command"][0] == "ingest":
                nodes[name] = service["command"]
                hosts[name] = service.get("hostname", name)
                key = flag_value(service["command"], "--pseudonym-key-file")
                self.assertTrue(key, f"{name}: no --pseudonym-key-file")
                self.assertTrue(service.get("secrets"), f"{name}: the key must come from a secret")
        check_ownership(self, nodes, hosts, "compose")

    def test_kpr_data_directories_are_volumes(self):
        for name, service in kpr_services().items():
            data = flag_value(service["command"], "--data")
            if data is None:
                continue
            with self.subTest(service=name):
                targets = [str(v).split(":")[1] for v in service.get("volumes", []) if ":" in str(v)]
                self.assertIn(data, targets, f"{name}: --data {data} is not on a volume")

    def test_statistics_admin_listener_stays_private(self):
        for name, service in kpr_services().items():
            command = service["command"]
            if command[0] not in ("statistics", "serve"):
                continue
            with self.subTest(service=name):
                admin = flag_value(command, "--admin-addr")
                self.assertIsNotNone(admin, f"{name}: give --admin-addr explicitly (loopback)")
                self.assertTrue(is_loopback_addr(admin), f"{name}: admin listener on {admin}")
                admin_port = admin.rsplit(":", 1)[1]
                for port in service.get("ports", []):
                    container_port = str(port).rsplit(":", 1)[-1].split("/")[0]
                    self.assertNotEqual(container_port, admin_port, f"{name}: the admin port is published")

    def test_healthchecks(self):
        for name, service in compose()["services"].items():
            command = service.get("command") or []
            role = command[0] if is_kpr_service(service) else None
            if name in kafka_brokers() or role in ("ingest", "statistics", "serve"):
                with self.subTest(service=name):
                    self.assertIn("test", service.get("healthcheck", {}), f"{name}: no healthcheck")


class DockerfileTest(unittest.TestCase):
    def test_multi_stage_release_build_non_root(self):
        froms = dockerfile_instruction("FROM")
        self.assertGreaterEqual(len(froms), 2, "multi-stage build expected")
        self.assertTrue(froms[0].startswith("rust:1.95"), f"builder is {froms[0]}")
        self.assertTrue(froms[-1].startswith("debian:bookworm-slim"), f"runtime is {froms[-1]}")
        runs = " ".join(dockerfile_instruction("RUN"))
        self.assertRegex(runs, r"cargo build --release\b.*-p kpr\b")
        self.assertTrue(any("--from=" in c for c in dockerfile_instruction("COPY")), "no COPY --from the builder")
        users = dockerfile_instruction("USER")
        self.assertTrue(users, "no USER: the image would run as root")
        self.assertNotIn(users[-1].split(":")[0], ("root", "0"), "the runtime user is root")
        self.assertEqual(json.loads(dockerfile_instruction("ENTRYPOINT")[-1]), ["kpr"])

    def test_context_ignores_target(self):
        ignore = DOCKERFILE.with_name("Dockerfile.dockerignore")
        self.assertTrue(ignore.is_file(), "deploy/docker/Dockerfile.dockerignore keeps target/ out of the context")
        self.assertIn("target/", ignore.read_text(encoding="utf-8").split())


class KubernetesTest(unittest.TestCase):
    def test_objects_present(self):
        k8s_one("Namespace", "kpr")
        k8s_one("ConfigMap", "kpr-config")
        k8s_one("Secret", "kpr-pseudonym-key")
        k8s_one("StatefulSet", "kpr-ingest")
        k8s_one("StatefulSet", "kpr-projector")
        k8s_one("Deployment", "kpr-statistics")
        k8s_one("Service", "kpr-statistics")
        self.assertEqual(len(k8s("Job")), 1, "one Job creating the topics")

    def test_namespaced_objects_in_namespace(self):
        for file_name, obj in k8s_objects():
            if obj["kind"] in ("Namespace", "Kustomization"):
                continue
            with self.subTest(object=f"{file_name} {obj['kind']}/{obj['metadata']['name']}"):
                self.assertEqual(obj["metadata"].get("namespace"), "kpr")

    def test_kustomization_leaves_out_the_secret_placeholder(self):
        kustomization = k8s("Kustomization")
        self.assertEqual(len(kustomization), 1)
        resources = set(kustomization[0]["resources"])
        files = {p.name for p in K8S_DIR.glob("*.y*ml")} - {"kustomization.yaml"}
        secret_files = {f for f, o in k8s_objects() if o["kind"] == "Secret"}
        self.assertEqual(resources, files - secret_files, "kustomization resources")
        self.assertTrue(secret_files, "the Secret placeholder file is missing")

    def test_secret_is_a_placeholder(self):
        secret = k8s_one("Secret", "kpr-pseudonym-key")
        values = list((secret.get("stringData") or {}).values()) + list((secret.get("data") or {}).values())
        self.assertTrue(values, "the placeholder must show the key's file name")
        for value in values:
            self.assertFalse(re.fullmatch(r"\s*[0-9A-Fa-f]{64}\s*", str(value)), "a real-looking key in the Secret")

    def test_topics_job(self):
        job = k8s("Job")[0]
        script = "\n".join(map(str, containers({"spec": job["spec"]})[0]["command"]))
        creations = topic_creations(script)
        check_topics(self, creations, "k8s Job")
        self.assertEqual(str(creations[TOPIC]["partitions"]), config_map()["topic-partitions"],
                         "ConfigMap topic-partitions differs from the Job's partition count")
        self.assertEqual(config_map()["topic"], TOPIC)

    def test_ingest_ownership_from_ordinals(self):
        bash = shutil.which("bash")
        if bash is None:
            self.skipTest("no bash to run the ingest entrypoint")
        sts = k8s_one("StatefulSet", "kpr-ingest")
        replicas = sts["spec"]["replicas"]
        self.assertEqual(replicas, 2)
        self.assertEqual(sts["spec"].get("updateStrategy", {}).get("type"), "OnDelete",
                         "a rolling update would briefly run two owners of a partition")
        container = containers(sts)[0]
        service = sts["spec"]["serviceName"]
        namespace = sts["metadata"]["namespace"]
        domain = config_map()["cluster-domain"]
        nodes, hosts = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            fake = Path(tmp) / "kpr"
            fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done\n', encoding="utf-8")
            fake.chmod(0o755)

            def run(ordinal: int) -> subprocess.CompletedProcess:
                pod = f"{sts['metadata']['name']}-{ordinal}"
                env = container_env(container, pod, namespace)
                command = [k8s_expand(c, env) for c in container["command"] + container.get("args", [])]
                self.assertEqual(Path(command[0]).name, "bash")
                env["PATH"] = f"{tmp}:/usr/bin:/bin"
                return subprocess.run([bash] + command[1:], env=env, capture_output=True, timeout=30, check=False)

            for ordinal in range(replicas):
                done = run(ordinal)
                self.assertEqual(done.returncode, 0, f"ordinal {ordinal}: {done.stderr.decode()}")
                args = done.stdout.decode().split("\0")[:-1]
                self.assertEqual(args[0], "ingest", f"ordinal {ordinal} runs {args[:1]}")
                node = f"{sts['metadata']['name']}-{ordinal}"
                nodes[node] = args
                hosts[node] = f"{node}.{service}.{namespace}.svc.{domain}"
                check_kafka_role(self, args, f"k8s {node}")
            # A pod beyond INGEST_REPLICAS (scaled without re-splitting) must refuse to start.
            self.assertNotEqual(run(replicas).returncode, 0, "a pod beyond INGEST_REPLICAS started")
        check_ownership(self, nodes, hosts, "k8s kpr-ingest")
        key = flag_value(nodes[f"{sts['metadata']['name']}-0"], "--pseudonym-key-file")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        secret_volumes = [v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]
                          if v.get("secret", {}).get("secretName") == "kpr-pseudonym-key"]
        self.assertEqual(len(secret_volumes), 1, "the pseudonymisation key Secret is not mounted")
        self.assertTrue(key.startswith(mounts[secret_volumes[0]] + "/"), f"--pseudonym-key-file {key} is not in the Secret")

    def test_kafka_roles_create_topics_safely(self):
        for kind, name in (("StatefulSet", "kpr-projector"), ("Deployment", "kpr-statistics")):
            obj = k8s_one(kind, name)
            container = containers(obj)[0]
            env = container_env(container, f"{name}-0", obj["metadata"]["namespace"])
            args = [k8s_expand(a, env) for a in container.get("args", [])]
            with self.subTest(object=f"{kind}/{name}"):
                self.assertNotIn("command", container, "the image's entrypoint (kpr) runs the args")
                check_kafka_role(self, args, f"k8s {name}")

    def test_projector_has_a_persistent_volume(self):
        sts = k8s_one("StatefulSet", "kpr-projector")
        claims = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])]
        self.assertTrue(claims, "the projector's store needs a PersistentVolumeClaim")
        container = containers(sts)[0]
        data = flag_value(container.get("args", []), "--data")
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        self.assertIn(data, mounts, f"--data {data} is not mounted")
        self.assertIn(mounts[data], claims, f"--data {data} is not on the claim")

    def test_statistics_service_hides_admin_port(self):
        service = k8s_one("Service", "kpr-statistics")
        deployment = k8s_one("Deployment", "kpr-statistics")
        self.assertIn(service["spec"].get("type", "ClusterIP"), ("ClusterIP",))
        container = containers(deployment)[0]
        admin = flag_value(container["args"], "--admin-addr")
        self.assertIsNotNone(admin, "give --admin-addr explicitly (loopback)")
        self.assertTrue(is_loopback_addr(admin), f"admin listener on {admin}")
        admin_port = int(admin.rsplit(":", 1)[1])
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        self.assertNotIn(admin_port, named.values(), "the admin port is a containerPort")
        public_ports = {int(flag_value(container["args"], "--stats-addr").rsplit(":", 1)[1])}
        grpc = flag_value(container["args"], "--addr")
        if grpc:
            public_ports.add(int(grpc.rsplit(":", 1)[1]))
        self.assertNotIn(admin_port, public_ports)
        self.assertTrue(service["spec"]["ports"], "the Service has no ports")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            target = named.get(target, target)
            self.assertNotEqual(port["port"], admin_port, "the Service exposes the admin port")
            self.assertNotEqual(target, admin_port, "the Service targets the admin port")
            self.assertNotIn("admin", str(port.get("name", "")))
            self.assertIn(target, public_ports, "the Service must target the public HTTP or gRPC port")

    def test_probes_and_resources(self):
        for file_name, obj in k8s_objects():
            if obj["kind"] not in ("StatefulSet", "Deployment", "Job"):
                continue
            for c in containers(obj):
                where = f"{obj['kind']}/{obj['metadata']['name']} {c['name']}"
                with self.subTest(container=where):
                    resources = c.get("resources", {})
                    for part in ("requests", "limits"):
                        self.assertTrue({"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part}")
        ingest = containers(k8s_one("StatefulSet", "kpr-ingest"))[0]
        # Kubernetes' gRPC probe has no TLS: the probe is `kpr health` against the TLS port.
        probe = ingest["readinessProbe"]["exec"]["command"]
        self.assertEqual(probe[:2], ["kpr", "health"], "ingest readiness: kpr health")
        self.assertIn("https://127.0.0.1:50051", probe)
        self.assertEqual(probe[probe.index("--service") + 1], "kpr.v1.IngestService")
        stats = containers(k8s_one("Deployment", "kpr-statistics"))[0]
        self.assertEqual(stats["readinessProbe"]["httpGet"]["path"], "/health/ready", "statistics readiness")
        self.assertEqual(stats["livenessProbe"]["httpGet"]["path"], "/health/live",
                         "statistics liveness apart from readiness: a node filling up is alive")
        self.assertEqual(stats["readinessProbe"]["httpGet"]["scheme"], "HTTPS", "statistics readiness over TLS")

    def test_pods_run_as_non_root(self):
        for file_name, obj in k8s_objects():
            if obj["kind"] not in ("StatefulSet", "Deployment", "Job"):
                continue
            with self.subTest(object=f"{obj['kind']}/{obj['metadata']['name']}"):
                security = obj["spec"]["template"]["spec"].get("securityContext", {})
                self.assertTrue(security.get("runAsNonRoot"), "runAsNonRoot")
                self.assertNotEqual(security.get("runAsUser"), 0)


class KprFlagsTest(unittest.TestCase):
    """Runs the real binary: every role and flag used in deploy/ must exist."""

    def test_roles_and_flags_exist(self):
        binary = kpr_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            self.skipTest(f"no kpr binary at {binary} (cargo build -p kpr, or set KPR_BIN)")
        invocations = kpr_invocations()
        self.assertTrue(invocations)
        for where, command in invocations:
            with self.subTest(where=where):
                role = command[0]
                self.assertIn(role, ROLES, f"{where}: {role!r} is not one of {', '.join(ROLES)}")
                code, text = kpr_help(role)
                if code != 0:
                    first = text.strip().splitlines()[0] if text.strip() else ""
                    self.fail(f"{where}: `{binary} {role} --help` failed (exit {code}: {first}); "
                              f"the role {role!r} does not exist in this binary")
                known = set(FLAG.findall(text))
                unknown = [f for f in flags_of(command[1:]) if f not in known]
                self.assertEqual(unknown, [], f"{where}: flags not in `kpr {role} --help`")

    def test_probe_commands_exist(self):
        binary = kpr_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            self.skipTest(f"no kpr binary at {binary} (cargo build -p kpr, or set KPR_BIN)")
        ingest = containers(k8s_one("StatefulSet", "kpr-ingest"))[0]
        probes = [ingest[p]["exec"]["command"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        code, text = kpr_help("health")
        self.assertEqual(code, 0, text)
        known = set(FLAG.findall(text))
        for probe in probes:
            self.assertEqual(probe[:2], ["kpr", "health"])
            self.assertEqual([f for f in flags_of(probe[2:]) if f not in known], [], probe)


def main() -> int:
    program = unittest.main(module=__name__, exit=False, verbosity=2)
    result = program.result
    ok = result.wasSuccessful() and result.testsRun > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
