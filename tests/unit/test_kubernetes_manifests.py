"""contrib/kubernetes: every manifest against the Kubernetes API schema, and
the manifests against each other and against what fuxi-csi accepts.

The built-in kinds are checked by kubernetes-validate (the Kubernetes OpenAPI
schemas as JSON Schema, bundled in the package, so nothing is fetched), in its
strict form: a field the API does not know fails.  The kinds it has no schema
for are checked here against their own definitions: VolumeSnapshotClass (a CRD
of the external-snapshotter project) and the kustomization.
"""

import configparser
import re
from pathlib import Path, PurePosixPath

import jsonschema  # (both are kubernetes-validate's own requirements)
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from fuxi_csi import settings as csi_settings
from fuxi_csi.controller import SHARE_PARAMETERS, VOLUME_PARAMETERS
from storage_core.models import MULTIATTACH_MODES

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "contrib" / "kubernetes"
YAML_FILES = sorted(path.name for path in MANIFESTS.glob("*.yaml"))

# The oldest Kubernetes the manifests are meant for, and the newest schema the
# installed kubernetes-validate bundles: every built-in object is checked
# against both.
MIN_KUBERNETES = "1.28"

DRIVER = "fuxi.csi.openstack.org"
NAMESPACE = "kube-system"
TOPOLOGY_KEY = "topology.fuxi.csi.openstack.org/zone"
DRIVER_IMAGE = "fuxi-csi:0.1.0"
SIDECAR_REGISTRY = "registry.k8s.io/sig-storage/"
REGISTRATION_PATH = f"/var/lib/kubelet/plugins/{DRIVER}/csi.sock"
CONFIG_FILE = "/etc/fuxi-csi/fuxi-csi.conf"
CLOUDS_FILE = "/etc/openstack/clouds.yaml"
STATE_DIR = "/var/lib/fuxi-csi"

# Files kustomization.yaml leaves out on purpose, and why.
NOT_KUSTOMIZED = {
    "kustomization.yaml": "the kustomization itself",
    "example-pvc-pod.yaml": "an example workload, applied by hand",
    "secret-clouds-example.yaml": "placeholders; applying them would overwrite the real Secret",
}

# What fuxi-csi itself accepts: its [csi] options and StorageClass parameters.
CSI_OPTIONS = set(csi_settings.OPTIONS)
BACKENDS = {"cinder", "manila"}
FSTYPES = {"ext4", "xfs"}
SHARE_PROTOS = {"NFS", "CEPHFS", "GLUSTERFS"}
STORAGECLASS_PARAMETERS = {"cinder": set(VOLUME_PARAMETERS), "manila": set(SHARE_PARAMETERS)}

# Kinds without a namespace; every other kind of the driver's files lives in kube-system.
CLUSTER_SCOPED = {"CSIDriver", "ClusterRole", "ClusterRoleBinding", "StorageClass",
                  "VolumeSnapshotClass", "Namespace"}

# The sidecars each workload runs (image name under registry.k8s.io/sig-storage),
# and whether it takes --leader-election.
CONTROLLER_SIDECARS = {"csi-provisioner": True, "csi-attacher": True, "csi-snapshotter": True,
                       "csi-resizer": True, "livenessprobe": False}
NODE_SIDECARS = {"csi-node-driver-registrar": False, "livenessprobe": False}


# --------------------------------------------------------------------------
# Loading


def _load(name):
    with open(MANIFESTS / name, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


@pytest.fixture(scope="module")
def docs_by_file():
    return {name: _load(name) for name in YAML_FILES}


@pytest.fixture(scope="module")
def docs(docs_by_file):
    return [doc for name in YAML_FILES for doc in docs_by_file[name]]


def _of_kind(docs, kind):
    return [doc for doc in docs if doc.get("kind") == kind]


def _one(docs, kind, name):
    found = [doc for doc in _of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def _workload(docs, kind, name):
    return _one(docs, kind, name)["spec"]["template"]["spec"]


def _controller(docs):
    return _workload(docs, "Deployment", "fuxi-csi-controller")


def _node(docs):
    return _workload(docs, "DaemonSet", "fuxi-csi-node")


def _pod_specs(docs):
    """(label, pod spec) of every pod template and pod in the files."""
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]
        elif kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"):
            yield f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def _image_name(image):
    """'registry.k8s.io/sig-storage/csi-attacher:v4.8.1' -> 'csi-attacher'."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def _driver_container(spec):
    found = [c for c in spec["containers"] if c["image"] == DRIVER_IMAGE]
    assert len(found) == 1, f"expected one container of {DRIVER_IMAGE}, found {len(found)}"
    return found[0]


def _sidecars(spec):
    return {_image_name(c["image"]): c for c in spec["containers"] if c["image"] != DRIVER_IMAGE}


def _expand(value, container):
    """Kubernetes' $(VAR) expansion of args, from the container's plain env values."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _flags(container):
    """The container's command line as {flag: [values]}: --a=b, -a=b, --a b and bare --a (True)."""
    argv = [_expand(str(a), container) for a in container.get("command", []) + container.get("args", [])]
    flags = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            i += 1
            continue
        key = arg.lstrip("-")
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value = argv[i + 1]
            i += 1
        else:
            value = True
        flags.setdefault(key, []).append(value)
        i += 1
    return flags


def _flag(container, name):
    values = _flags(container).get(name, [])
    assert len(values) == 1, f"container {container['name']}: expected one --{name}, found {values}"
    return values[0]


def _socket_path(address):
    """A CSI address (unix:///a/b, unix:/a/b or /a/b) as a path."""
    if address.startswith("unix://"):
        address = address[len("unix://"):]
    elif address.startswith("unix:"):
        address = address[len("unix:"):]
    assert address.startswith("/"), f"not an absolute unix socket path: {address!r}"
    return PurePosixPath(address)


def _resolve(spec, container, path):
    """Where the path a container sees lives: ("host", absolute host path) for
    a hostPath volume, else (volume kind, volume name, path inside the volume);
    through the container's deepest mount holding the path."""
    path = PurePosixPath(path)
    best = None
    for mount in container.get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        if (path == mount_path or mount_path in path.parents) and (
                best is None or len(mount_path.parts) > len(PurePosixPath(best["mountPath"]).parts)):
            best = mount
    assert best is not None, f"container {container['name']}: {path} is on no volume"
    rel = path.relative_to(best["mountPath"])
    if best.get("subPath"):
        rel = PurePosixPath(best["subPath"]) / rel
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert best["name"] in volumes, f"container {container['name']} mounts undefined volume {best['name']!r}"
    volume = volumes[best["name"]]
    if "hostPath" in volume:
        return ("host", str(PurePosixPath(volume["hostPath"]["path"]) / rel))
    kind = next(k for k in volume if k != "name")
    return (kind, volume["name"], str(rel))


def _mount_of(spec, container, path):
    """The volume a container sees `path` on, and the path inside it."""
    resolved = _resolve(spec, container, path)
    volumes = {v["name"]: v for v in spec["volumes"]}
    if resolved[0] == "host":
        return None, resolved[1]
    return volumes[resolved[1]], resolved[2]


# --------------------------------------------------------------------------
# Parsing and schemas


def test_the_directory_holds_the_expected_files():
    expected = {"csidriver.yaml", "rbac.yaml", "config.yaml", "controller.yaml", "node.yaml",
                "storageclass-cinder.yaml", "storageclass-manila.yaml", "volumesnapshotclass.yaml",
                "example-pvc-pod.yaml", "kustomization.yaml", "secret-clouds-example.yaml"}
    assert expected <= set(YAML_FILES)
    assert (MANIFESTS / "Dockerfile").is_file()
    assert (MANIFESTS / "README.md").is_file()


@pytest.mark.parametrize("name", YAML_FILES)
def test_every_document_is_an_object(name):
    docs = _load(name)
    assert docs, f"{name} holds no document"
    for doc in docs:
        assert isinstance(doc, dict), f"{name}: a document is a {type(doc).__name__}"
        assert doc.get("apiVersion") and doc.get("kind"), f"{name}: a document lacks apiVersion/kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{name}: a {doc['kind']} has no name"


def _schema_versions():
    bundled = kv_utils.all_versions()
    assert any(v.startswith(MIN_KUBERNETES + ".") for v in bundled), (
        f"kubernetes-validate {kubernetes_validate.__version__} bundles no Kubernetes "
        f"{MIN_KUBERNETES} schema (it has {bundled[0]} to {bundled[-1]})")
    return sorted({MIN_KUBERNETES, kv_utils.major_minor(kv_utils.latest_version())})


def _definitions(version):
    version = [v for v in dict.fromkeys(kv_utils.all_versions()) if kv_utils.major_minor(v) == version][0]
    return kv_utils.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json",
                                    version)


def _validate_with_definitions(doc, schema, version):
    definitions = Resource.from_contents(_definitions(version))
    registry = definitions @ Registry()
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)


# kubernetes-validate's definitions file has the $id https://kubernetes.io/api/_definitions.json.
OBJECT_META = {"$ref": "https://kubernetes.io/api/_definitions.json"
                       "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

# snapshot.storage.k8s.io/v1 VolumeSnapshotClass, as its CRD (external-snapshotter,
# client/config/crd) defines it.
VOLUME_SNAPSHOT_CLASS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "driver", "deletionPolicy"],
    "properties": {
        "apiVersion": {"const": "snapshot.storage.k8s.io/v1"},
        "kind": {"const": "VolumeSnapshotClass"},
        "metadata": OBJECT_META,
        "driver": {"type": "string", "minLength": 1},
        "deletionPolicy": {"enum": ["Delete", "Retain"]},
        "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

# The kustomize fields these files may use (kustomize.config.k8s.io/v1beta1).
KUSTOMIZATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "resources"],
    "properties": {
        "apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"},
        "kind": {"const": "Kustomization"},
        "metadata": OBJECT_META,
        "namespace": {"type": "string"},
        "resources": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "images": {
            "type": "array",
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {k: {"type": "string"} for k in ("name", "newName", "newTag", "digest")},
            },
        },
        "labels": {"type": "array"},
        "commonAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

HAND_SCHEMAS = {("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): VOLUME_SNAPSHOT_CLASS,
                ("kustomize.config.k8s.io/v1beta1", "Kustomization"): KUSTOMIZATION}


@pytest.mark.parametrize("name", YAML_FILES)
def test_every_document_matches_its_schema_strictly(name):
    versions = _schema_versions()
    failures = []
    for doc in _load(name):
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '-')}"
        hand = HAND_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        for version in versions:
            try:
                if hand is not None:
                    _validate_with_definitions(doc, hand, version)
                    continue
                checked = kubernetes_validate.validate(doc, version, strict=True)
                assert checked == version, f"{label} was checked against {checked}, not {version}"
            except kubernetes_validate.SchemaNotFoundError as exc:
                failures.append(f"{label}: {exc.message}")
            except Exception as exc:  # jsonschema's ValidationError and kubernetes-validate's
                path = ".".join(str(p) for p in getattr(exc, "absolute_path", getattr(exc, "path", [])))
                failures.append(f"{label} (Kubernetes {version}) at {path or '<top>'}: "
                                f"{getattr(exc, 'message', exc)}")
    assert not failures, f"{name}:\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------
# Names, namespaces, references


def test_namespaces(docs_by_file):
    seen = set()
    for name in YAML_FILES:
        for doc in docs_by_file[name]:
            if doc["kind"] == "Kustomization":
                continue
            meta = doc["metadata"]
            key = (doc["kind"], meta.get("namespace"), meta["name"])
            assert key not in seen, f"{key} is defined twice"
            seen.add(key)
            if doc["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in meta, f"{name}: cluster-scoped {doc['kind']} has a namespace"
            elif name == "example-pvc-pod.yaml":
                assert meta.get("namespace") == "default", f"{name}: examples go in default"
            else:
                assert meta.get("namespace") == NAMESPACE, \
                    f"{name}: {doc['kind']}/{meta['name']} is not in {NAMESPACE}"


def test_kustomization_lists_every_file_but_the_examples(docs_by_file):
    kustomization = docs_by_file["kustomization.yaml"][0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == set(YAML_FILES) - set(NOT_KUSTOMIZED), (
        f"missing: {sorted(set(YAML_FILES) - set(NOT_KUSTOMIZED) - set(listed))}, "
        f"extra: {sorted(set(listed) - (set(YAML_FILES) - set(NOT_KUSTOMIZED)))}")
    # Every resource names its namespace itself; a kustomize namespace would
    # also be put on the VolumeSnapshotClass, a kind kustomize does not know.
    assert "namespace" not in kustomization


def test_service_accounts_exist(docs):
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in _of_kind(docs, "ServiceAccount")}
    for label, spec in _pod_specs(docs):
        if label.startswith("Pod/"):
            continue
        account = spec.get("serviceAccountName")
        assert account, f"{label} names no serviceAccountName"
        assert (NAMESPACE, account) in accounts, f"{label}: ServiceAccount {account!r} is not in rbac.yaml"


def test_role_bindings_refer_to_what_exists(docs):
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in _of_kind(docs, "ServiceAccount")}
    cluster_roles = {d["metadata"]["name"] for d in _of_kind(docs, "ClusterRole")}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in _of_kind(docs, "Role")}
    bound = set()
    for binding in _of_kind(docs, "ClusterRoleBinding") + _of_kind(docs, "RoleBinding"):
        ref = binding["roleRef"]
        label = f"{binding['kind']}/{binding['metadata']['name']}"
        if ref["kind"] == "ClusterRole":
            assert ref["name"] in cluster_roles, f"{label}: no ClusterRole {ref['name']!r}"
        else:
            assert binding["kind"] == "RoleBinding", f"{label} binds a Role"
            assert (binding["metadata"]["namespace"], ref["name"]) in roles, f"{label}: no Role {ref['name']!r}"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", f"{label}: subject {subject}"
            assert (subject.get("namespace"), subject["name"]) in accounts, f"{label}: no account {subject}"
        bound.add((ref["kind"], ref["name"]))
    unbound = {("ClusterRole", n) for n in cluster_roles} | {("Role", n) for _, n in roles}
    assert unbound <= bound, f"roles bound to nobody: {sorted(unbound - bound)}"


def _rules(docs, kind, name):
    return _one(docs, kind, name)["rules"]


def _allows(rules, group, resource, verb):
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r["verbs"]
               for r in rules)


def _bound_rules(docs, account):
    """Every rule granted to kube-system/account, with the namespace it holds in (None: cluster-wide)."""
    granted = []
    for binding in _of_kind(docs, "ClusterRoleBinding") + _of_kind(docs, "RoleBinding"):
        if not any(s["name"] == account and s.get("namespace") == NAMESPACE for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace")
        granted.append((namespace, _rules(docs, ref["kind"], ref["name"])))
    return granted


def test_controller_account_may_do_what_its_sidecars_do(docs):
    account = _controller(docs)["serviceAccountName"]
    granted = _bound_rules(docs, account)
    cluster = [rule for namespace, rules in granted if namespace is None for rule in rules]
    leases = [rule for namespace, rules in granted if namespace == NAMESPACE for rule in rules]
    needed = [
        ("", "persistentvolumes", "create"), ("", "persistentvolumes", "delete"),
        ("", "persistentvolumeclaims", "update"), ("", "events", "create"),
        ("storage.k8s.io", "storageclasses", "get"), ("storage.k8s.io", "csinodes", "get"),
        ("", "nodes", "get"),
        ("snapshot.storage.k8s.io", "volumesnapshots", "get"),  # provisioning from a snapshot
        ("storage.k8s.io", "volumeattachments", "patch"), ("storage.k8s.io", "volumeattachments/status", "patch"),
        ("snapshot.storage.k8s.io", "volumesnapshotclasses", "list"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents", "update"),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update"),
        ("", "persistentvolumeclaims/status", "patch"), ("", "pods", "list"),
    ]
    for group, resource, verb in needed:
        assert _allows(cluster, group, resource, verb), f"{account} may not {verb} {resource}"
    for verb in ("get", "create", "update"):
        assert _allows(leases, "coordination.k8s.io", "leases", verb), f"{account} may not {verb} leases"


def test_config_map_and_secret_volumes_exist(docs):
    config_maps = {d["metadata"]["name"]: d for d in _of_kind(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"]: d for d in _of_kind(docs, "Secret")}
    for label, spec in _pod_specs(docs):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                assert name in config_maps, f"{label}: ConfigMap {name!r} is defined nowhere"
                keys = set(config_maps[name].get("data", {}))
            elif "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in secrets, f"{label}: Secret {name!r} is defined nowhere (not even as an example)"
                keys = set(secrets[name].get("stringData", {})) | set(secrets[name].get("data", {}))
            else:
                continue
            for item in (volume.get("configMap") or volume.get("secret")).get("items", []):
                assert item["key"] in keys, f"{label}: {name} has no key {item['key']!r}"
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["name"] in config_maps, f"{label}: {env['name']}"
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] in secrets, f"{label}: {env['name']}"


def test_the_example_secret_is_a_placeholder(docs_by_file):
    (secret,) = docs_by_file["secret-clouds-example.yaml"]
    clouds = yaml.safe_load(secret["stringData"]["clouds.yaml"])
    for cloud in clouds["clouds"].values():
        assert cloud["auth"]["password"] == "REPLACE-ME"
        assert ".invalid" in cloud["auth"]["auth_url"]


def test_pod_volumes_are_defined_and_used(docs):
    for label, spec in _pod_specs(docs):
        names = [v["name"] for v in spec.get("volumes", [])]
        assert len(names) == len(set(names)), f"{label}: a volume name is used twice"
        used = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert used <= set(names), f"{label}: mounts of undefined volumes {sorted(used - set(names))}"
        assert set(names) <= used, f"{label}: unused volumes {sorted(set(names) - used)}"


# --------------------------------------------------------------------------
# The driver's name, sockets and command line


def test_the_driver_name_is_the_same_everywhere(docs):
    (csidriver,) = _of_kind(docs, "CSIDriver")
    assert csidriver["metadata"]["name"] == DRIVER
    classes = _of_kind(docs, "StorageClass")
    assert classes
    for sc in classes:
        assert sc["provisioner"] == DRIVER, f"StorageClass {sc['metadata']['name']}: {sc['provisioner']}"
    snapshot_classes = _of_kind(docs, "VolumeSnapshotClass")
    assert snapshot_classes
    for vsc in snapshot_classes:
        assert vsc["driver"] == DRIVER, f"VolumeSnapshotClass {vsc['metadata']['name']}: {vsc['driver']}"


def test_csidriver_spec(docs):
    (csidriver,) = _of_kind(docs, "CSIDriver")
    assert csidriver["spec"] == {"attachRequired": True, "podInfoOnMount": False,
                                 "volumeLifecycleModes": ["Persistent"], "fsGroupPolicy": "File"}


@pytest.mark.parametrize("workload", ["controller", "node"])
def test_driver_command_line(docs, workload):
    spec = _controller(docs) if workload == "controller" else _node(docs)
    driver = _driver_container(spec)
    flags = _flags(driver)
    assert set(flags) == {"endpoint", "config-file", "services"}, f"unexpected flags {sorted(flags)}"
    assert _flag(driver, "services") == workload
    assert _flag(driver, "config-file") == CONFIG_FILE
    assert str(_socket_path(_flag(driver, "endpoint"))) == "/csi/csi.sock"
    assert driver.get("imagePullPolicy") == "IfNotPresent"
    assert {"name": "OS_CLIENT_CONFIG_FILE", "value": CLOUDS_FILE} in driver["env"]


@pytest.mark.parametrize("workload", ["controller", "node"])
def test_sidecars_talk_to_the_drivers_socket(docs, workload):
    spec = _controller(docs) if workload == "controller" else _node(docs)
    driver = _driver_container(spec)
    endpoint = _resolve(spec, driver, _socket_path(_flag(driver, "endpoint")))
    sidecars = _sidecars(spec)
    expected = CONTROLLER_SIDECARS if workload == "controller" else NODE_SIDECARS
    assert set(sidecars) == set(expected)
    for name, container in sidecars.items():
        address = _resolve(spec, container, _socket_path(_flag(container, "csi-address")))
        assert address == endpoint, f"{name} talks to {address}, the driver listens on {endpoint}"
    if workload == "controller":
        assert endpoint[0] == "emptyDir", "the controller's socket is not on an emptyDir"
    else:
        assert endpoint == ("host", REGISTRATION_PATH)


def test_registrar_registers_the_drivers_host_socket(docs):
    spec = _node(docs)
    driver = _driver_container(spec)
    registrar = _sidecars(spec)["csi-node-driver-registrar"]
    path = _flag(registrar, "kubelet-registration-path")
    assert path == REGISTRATION_PATH
    # The path kubelet is given is where the driver's socket is on the host.
    assert _resolve(spec, driver, _socket_path(_flag(driver, "endpoint"))) == ("host", path)
    # kubelet's plugin registration directory, seen where the registrar looks.
    assert _resolve(spec, registrar, "/registration") == ("host", "/var/lib/kubelet/plugins_registry")


@pytest.mark.parametrize("workload", ["controller", "node"])
def test_liveness_probe_port(docs, workload):
    spec = _controller(docs) if workload == "controller" else _node(docs)
    driver = _driver_container(spec)
    ports = {p["name"]: p["containerPort"] for p in driver["ports"]}
    probe = driver["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    port = ports[probe["port"]] if isinstance(probe["port"], str) else probe["port"]
    assert str(port) == _flag(_sidecars(spec)["livenessprobe"], "health-port")


def test_sidecar_images_and_flags(docs):
    for workload, spec, expected in (("controller", _controller(docs), CONTROLLER_SIDECARS),
                                     ("node", _node(docs), NODE_SIDECARS)):
        for name, container in _sidecars(spec).items():
            assert container["image"].startswith(SIDECAR_REGISTRY), f"{workload}/{name}: {container['image']}"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", container["image"].rsplit(":", 1)[1]), \
                f"{workload}/{name}: not a release tag"
            leader = "leader-election" in _flags(container)
            assert leader == expected[name], f"{workload}/{name}: --leader-election {leader}"
    provisioner = _sidecars(_controller(docs))["csi-provisioner"]
    assert _flag(provisioner, "feature-gates") == "Topology=true"
    assert _flag(provisioner, "extra-create-metadata") is True
    assert _flag(provisioner, "default-fstype") == "ext4"
    majors = {_image_name(c["image"]): int(c["image"].rsplit(":v", 1)[1].split(".")[0])
              for spec in (_controller(docs), _node(docs)) for c in _sidecars(spec).values()}
    assert majors == {"csi-provisioner": 5, "csi-attacher": 4, "csi-snapshotter": 8, "csi-resizer": 1,
                      "csi-node-driver-registrar": 2, "livenessprobe": 2}


def test_controller_is_one_replica(docs):
    assert _one(docs, "Deployment", "fuxi-csi-controller")["spec"]["replicas"] == 1


def test_node_plugin_host_access(docs):
    spec = _node(docs)
    driver = _driver_container(spec)
    assert driver["securityContext"]["privileged"] is True
    assert not spec.get("hostPID")
    mounts = {m["mountPath"]: m for m in driver["volumeMounts"]}
    assert mounts["/var/lib/kubelet"].get("mountPropagation") == "Bidirectional"
    # Volumes are mounted under the state dir, then bound at the staging paths:
    # those mounts must be the host's, or a restarted pod loses them.
    assert mounts[STATE_DIR].get("mountPropagation") == "Bidirectional"
    assert mounts["/run/udev"].get("readOnly") is True
    for path in ("/var/lib/kubelet", "/dev", "/sys", "/run/udev", STATE_DIR):
        assert _resolve(spec, driver, path) == ("host", path), f"{path} is not the host's"
    # Only the driver container propagates mounts (Bidirectional needs privileged).
    for container in spec["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount.get("mountPropagation") == "Bidirectional":
                assert container is driver and container["securityContext"]["privileged"] is True


# --------------------------------------------------------------------------
# Configuration


def _conf(docs):
    config_map = _one(docs, "ConfigMap", "fuxi-csi-config")
    parser = configparser.ConfigParser()
    parser.read_string(config_map["data"]["fuxi-csi.conf"])
    return parser


def test_config_file_has_only_known_csi_options(docs):
    conf = _conf(docs)
    assert conf.sections() == ["csi"]
    csi = conf["csi"]
    assert set(csi) <= CSI_OPTIONS, f"unknown options {sorted(set(csi) - CSI_OPTIONS)}"
    assert csi["attach_mode"] in {"auto", "nova", "baremetal"}
    backends = {b.strip() for b in csi["backends"].split(",")}
    assert backends <= BACKENDS
    assert csi["default_backend"] in backends
    assert csi["default_fstype"] in FSTYPES
    assert csi["default_share_proto"] in SHARE_PROTOS
    assert csi.getint("max_size_gb") > 0
    assert csi["state_dir"] == STATE_DIR


def test_fuxi_csi_loads_the_config_map(docs, tmp_path):
    conf = tmp_path / "fuxi-csi.conf"
    conf.write_text(_one(docs, "ConfigMap", "fuxi-csi-config")["data"]["fuxi-csi.conf"])
    loaded = csi_settings.load(str(conf))
    assert loaded.storage.state_dir == STATE_DIR


@pytest.mark.parametrize("workload", ["controller", "node"])
def test_config_and_clouds_yaml_are_mounted_where_the_driver_reads_them(docs, workload):
    spec = _controller(docs) if workload == "controller" else _node(docs)
    driver = _driver_container(spec)
    volume, key = _mount_of(spec, driver, _flag(driver, "config-file"))
    assert volume is not None and "configMap" in volume, "the config file is not on a ConfigMap volume"
    config_map = _one(docs, "ConfigMap", volume["configMap"]["name"])
    assert key in config_map["data"], f"ConfigMap has no key {key!r}"

    volume, key = _mount_of(spec, driver, CLOUDS_FILE)
    assert volume is not None and "secret" in volume, "clouds.yaml is not on a Secret volume"
    secret = _one(docs, "Secret", volume["secret"]["secretName"])
    assert key in secret["stringData"], f"Secret has no key {key!r}"
    clouds = yaml.safe_load(secret["stringData"][key])["clouds"]
    assert _conf(docs)["csi"]["cloud"] in clouds, "fuxi-csi.conf's cloud is not an entry of clouds.yaml"


def test_state_dir_survives_node_pod_restarts(docs):
    state_dir = _conf(docs)["csi"]["state_dir"]
    assert _resolve(_node(docs), _driver_container(_node(docs)), state_dir) == ("host", state_dir)
    assert _resolve(_controller(docs), _driver_container(_controller(docs)), state_dir)[0] == "emptyDir"


# --------------------------------------------------------------------------
# Classes and the example


def test_storage_class_parameters(docs):
    classes = _of_kind(docs, "StorageClass")
    for sc in classes:
        label = sc["metadata"]["name"]
        params = sc.get("parameters", {})
        assert params.get("backend") in BACKENDS, f"StorageClass {label}: backend {params.get('backend')!r}"
        known = STORAGECLASS_PARAMETERS[params["backend"]]
        unknown = {k for k in params if k not in known and not k.startswith("csi.storage.k8s.io/")}
        assert not unknown, f"StorageClass {label}: unknown parameters {sorted(unknown)}"
        for key in ("fstype", "csi.storage.k8s.io/fstype"):
            if key in params:
                assert params[key] in FSTYPES, f"StorageClass {label}: {key} {params[key]!r}"
        if "proto" in params:
            assert params["backend"] == "manila" and params["proto"] in SHARE_PROTOS, label
        if params["backend"] == "cinder":
            assert not {"proto", "share_type", "share_network"} & set(params), label
            assert sc.get("volumeBindingMode") == "WaitForFirstConsumer", label
        if "multiattach" in params:
            assert params["multiattach"] in MULTIATTACH_MODES, label
        for term in sc.get("allowedTopologies", []):
            for expression in term["matchLabelExpressions"]:
                assert expression["key"] == TOPOLOGY_KEY, f"StorageClass {label}: {expression['key']}"
    by_name = {sc["metadata"]["name"]: sc for sc in classes}
    assert {"fuxi-cinder-ext4", "fuxi-cinder-xfs", "fuxi-manila-cephfs"} <= set(by_name)
    xfs = by_name["fuxi-cinder-xfs"]
    assert {"type", "availability_zone"} <= set(xfs["parameters"]) and xfs["allowVolumeExpansion"] is True
    assert by_name["fuxi-manila-cephfs"]["parameters"]["proto"] == "CEPHFS"


def test_example_pod_uses_the_example_claim(docs_by_file, docs):
    example = docs_by_file["example-pvc-pod.yaml"]
    claims = {d["metadata"]["name"]: d for d in _of_kind(example, "PersistentVolumeClaim")}
    (pod,) = _of_kind(example, "Pod")
    classes = {d["metadata"]["name"] for d in _of_kind(docs, "StorageClass")}
    used = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert used and set(used) <= set(claims), f"the pod uses claims {used}, defined: {sorted(claims)}"
    for claim in claims.values():
        assert claim["metadata"]["namespace"] == pod["metadata"]["namespace"]
        assert claim["spec"]["storageClassName"] in classes


# --------------------------------------------------------------------------
# The image


def test_dockerfile_builds_the_image_the_manifests_run():
    text = (MANIFESTS / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim"), lines[0]
    installs = " ".join(line for line in lines if "apt-get install" in line).split()
    for package in ("e2fsprogs", "xfsprogs", "util-linux", "mount", "udev", "ceph-fuse", "glusterfs-client"):
        assert package in installs, f"the image lacks {package}"
    assert any(line.startswith("COPY ") and ".whl" in line for line in lines)
    assert any(line.startswith("RUN pip install") and ".whl" in line for line in lines)
    assert lines[-1] == 'ENTRYPOINT ["fuxi-csi"]'
    assert f"ARG FUXI_VERSION={DRIVER_IMAGE.split(':')[1]}" in lines
    readme = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    assert f"-t {DRIVER_IMAGE}" in readme
