"""kflex driven by the official Kubernetes Python client, used as its users use it.

Run by the end-to-end test `python_client` against a running kflex:
    python client_checks.py <kubeconfig> <namespace>
Exits non-zero with the failed check's message; prints one line per passed check.
"""

import sys
import threading
import time

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException


def check(name, condition, detail=""):
    if not condition:
        raise SystemExit(f"FAILED {name}: {detail}")
    print(f"ok {name}")


def expect_api_error(name, status, reason, call):
    try:
        call()
    except ApiException as error:
        body = error.body or ""
        check(name, error.status == status and reason in body,
              f"got {error.status} {body}")
        return
    raise SystemExit(f"FAILED {name}: no error")


def main(kubeconfig, namespace):
    config.load_kube_config(config_file=kubeconfig)
    api_client = client.ApiClient()
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)

    version = client.VersionApi(api_client).get_code()
    check("version", version.major == "1", version)

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    names = [ns.metadata.name for ns in core.list_namespace().items]
    check("namespaces listed", namespace in names and "default" in names, names)

    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}),
        data={"a": "1", "b": "2"},
    )
    created = core.create_namespaced_config_map(namespace, cm)
    check("configmap created", created.metadata.uid and created.metadata.resource_version)

    read = core.read_namespaced_config_map("settings", namespace)
    check("configmap read", read.data == {"a": "1", "b": "2"}, read.data)

    # A dict body: the client sends a strategic merge patch.
    patched = core.patch_namespaced_config_map(
        "settings", namespace, {"data": {"b": None, "c": "3"}})
    check("configmap patched (strategic merge)", patched.data == {"a": "1", "c": "3"},
          patched.data)

    patched.data["d"] = "4"
    replaced = core.replace_namespaced_config_map("settings", namespace, patched)
    check("configmap replaced", replaced.data.get("d") == "4", replaced.data)

    stale = replaced
    stale.metadata.resource_version = created.metadata.resource_version
    expect_api_error("stale replace conflicts", 409, "Conflict",
                     lambda: core.replace_namespaced_config_map("settings", namespace, stale))
    expect_api_error("duplicate create", 409, "AlreadyExists",
                     lambda: core.create_namespaced_config_map(namespace, cm))
    expect_api_error("missing object", 404, "NotFound",
                     lambda: core.read_namespaced_config_map("absent", namespace))

    for i in range(5):
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"page-{i}", labels={"page": "yes"})))
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(
            namespace, label_selector="page=yes", limit=2, _continue=token)
        pages += 1
        seen += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if not token:
            break
    check("paginated list", pages == 3 and len(seen) == 5, (pages, seen))

    # A watch from the list's resourceVersion sees a change made after it started.
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    events = []

    def follow():
        stream = watch.Watch()
        for event in stream.stream(core.list_namespaced_config_map, namespace,
                                   resource_version=start, timeout_seconds=10):
            events.append((event["type"], event["object"].metadata.name))
            if event["object"].metadata.name == "watched":
                stream.stop()

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.5)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="watched")))
    follower.join(15)
    check("watch delivers ADDED", ("ADDED", "watched") in events, events)

    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="web", image="nginx:1.27"),
                ]),
            ),
        ),
    )
    apps.create_namespaced_deployment(namespace, deployment)
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    check("deployment scale read", scale.spec.replicas == 2, scale.spec)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}})
    check("deployment scaled",
          apps.read_namespaced_deployment("web", namespace).spec.replicas == 4)

    dyn = dynamic.DynamicClient(api_client)
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secrets.create(namespace=namespace, body={
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "token"}, "stringData": {"k": "v"},
    })
    fetched = secrets.get(name="token", namespace=namespace)
    check("dynamic client creates and reads", fetched.metadata.name == "token")
    stored = core.read_namespaced_secret("token", namespace)
    check("secret stringData stored as base64 data",
          stored.data == {"k": "dg=="} and stored.string_data is None, stored.data)

    core.delete_namespaced_config_map("settings", namespace)
    expect_api_error("deleted object is gone", 404, "NotFound",
                     lambda: core.read_namespaced_config_map("settings", namespace))
    deleted = core.delete_collection_namespaced_config_map(namespace, label_selector="page=yes")
    check("deletecollection", deleted is not None)
    left = core.list_namespaced_config_map(namespace, label_selector="page=yes").items
    check("collection emptied", left == [], left)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
