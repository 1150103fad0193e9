//! Service cluster IPs and node ports, as kube-apiserver's service REST storage allocates
//! them: from a per-control-plane service range (upstream's default `10.96.0.0/12`) and node
//! port range (30000–32767), each taken address or port being a key of the control plane's
//! own store under [`ALLOCATIONS`], written with `create` so that two concurrent writes
//! never take the same one, and released with a compare-and-swap delete by its owner.

use crate::registry::ResourceDef;
use crate::status::{ApiError, Cause};
use kflex_storage_backends::{Store, StoreError};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;

/// Where the taken cluster IPs and node ports live in a control plane's store.
pub const ALLOCATIONS: &str = "/registry/kflex/allocations/";
/// The service range: upstream's default `--service-cluster-ip-range`.
const SERVICE_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);
const SERVICE_PREFIX: u32 = 12;
/// The node port range: upstream's default `--service-node-port-range`.
const NODE_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;
/// Random picks before a full scan of the taken values.
const RANDOM_ATTEMPTS: usize = 16;

/// What kind of value an allocation key holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pool {
    ServiceIp,
    NodePort,
}

impl Pool {
    fn prefix(self) -> String {
        match self {
            Pool::ServiceIp => format!("{ALLOCATIONS}serviceips/"),
            Pool::NodePort => format!("{ALLOCATIONS}servicenodeports/"),
        }
    }

    /// The values a dynamic allocation draws from, as offsets: upstream leaves the lower
    /// band of the service range (here its first 256 addresses) to requested IPs and skips
    /// the network and broadcast addresses.
    fn dynamic(self) -> std::ops::Range<u32> {
        match self {
            Pool::ServiceIp => {
                let size = 1u32 << (32 - SERVICE_PREFIX);
                let band = (size / 16).clamp(16, 256);
                band..size - 1
            }
            Pool::NodePort => *NODE_PORTS.start()..*NODE_PORTS.end() + 1,
        }
    }

    fn show(self, value: u32) -> String {
        match self {
            Pool::ServiceIp => Ipv4Addr::from(u32::from(SERVICE_NETWORK) + value).to_string(),
            Pool::NodePort => value.to_string(),
        }
    }
}

/// One allocation key.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Taken {
    pool: Pool,
    value: u32,
}

impl Taken {
    fn key(&self) -> String {
        format!("{}{}", self.pool.prefix(), self.pool.show(self.value))
    }
}

/// The outcome of [`allocate`]: what the write took and what it gives up. Call
/// [`Allocation::settle`] once the object's write succeeded or failed.
#[derive(Default, Debug)]
#[must_use]
pub struct Allocation {
    owner: String,
    taken: Vec<Taken>,
    released: Vec<Taken>,
}

impl Allocation {
    /// After a successful write, frees what the Service no longer holds; after a failed
    /// one, frees what this write took.
    pub async fn settle(self, store: &dyn Store, written: bool) {
        let free = if written { self.released } else { self.taken };
        for taken in free {
            release_key(store, &taken.key(), &self.owner).await;
        }
    }
}

/// Whether `def` is the core group's Services.
fn is_service(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "services" && !def.custom
}

/// [`allocate`] for a write of `def`'s objects: nothing for other kinds.
pub async fn on_write(
    store: &dyn Store,
    def: &ResourceDef,
    old: Option<&Value>,
    object: &mut Value,
    dry_run: bool,
) -> Result<Allocation, ApiError> {
    if !is_service(def) {
        return Ok(Allocation::default());
    }
    allocate(store, old, object, dry_run).await
}

/// Frees a deleted Service's cluster IP and node ports (nothing for other kinds).
pub async fn on_delete(store: &dyn Store, def: &ResourceDef, service: &Value) {
    if !is_service(def) {
        return;
    }
    let owner = owner(service);
    for taken in held(service) {
        release_key(store, &taken.key(), &owner).await;
    }
}

/// Deletes `key` if `owner` holds it (a compare-and-swap, so a value someone else took
/// meanwhile stays theirs). A failure leaves the value taken: a leak, never a double use.
async fn release_key(store: &dyn Store, key: &str, owner: &str) {
    if let Ok((Some(kv), _)) = store.get(key.as_bytes(), None).await {
        if kv.value.as_ref() == owner.as_bytes() {
            let _ = store.delete(key.as_bytes(), Some(kv.mod_revision)).await;
        }
    }
}

/// Who holds an allocation: the Service's uid.
fn owner(service: &Value) -> String {
    crate::object::meta_str(service, "uid")
        .unwrap_or("")
        .to_owned()
}

fn spec(service: &Value) -> Option<&Map<String, Value>> {
    service.get("spec")?.as_object()
}

fn service_type(service: &Value) -> &str {
    spec(service)
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// The cluster IP and node ports a stored Service holds.
fn held(service: &Value) -> Vec<Taken> {
    let mut taken = Vec::new();
    if let Some(value) = cluster_ip(service).and_then(|ip| ip_offset(&ip)) {
        taken.push(Taken {
            pool: Pool::ServiceIp,
            value,
        });
    }
    for port in node_ports(service) {
        let taken_port = Taken {
            pool: Pool::NodePort,
            value: port,
        };
        if !taken.contains(&taken_port) {
            taken.push(taken_port);
        }
    }
    taken
}

/// The Service's cluster IP as sent or stored: `clusterIP`, else `clusterIPs[0]`.
fn cluster_ip(service: &Value) -> Option<String> {
    let spec = spec(service)?;
    let ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    if !ip.is_empty() {
        return Some(ip.to_owned());
    }
    spec.get("clusterIPs")?
        .get(0)?
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned)
}

/// The offset of an IPv4 address inside the service range.
fn ip_offset(ip: &str) -> Option<u32> {
    let ip: Ipv4Addr = ip.parse().ok()?;
    let mask = u32::MAX << (32 - SERVICE_PREFIX);
    (u32::from(ip) & mask == u32::from(SERVICE_NETWORK)).then(|| u32::from(ip) & !mask)
}

fn port_number(port: &Value, key: &str) -> u32 {
    port.get(key)
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

/// The node ports of a Service (and its health check node port).
fn node_ports(service: &Value) -> Vec<u32> {
    let Some(spec) = spec(service) else {
        return Vec::new();
    };
    let mut ports: Vec<u32> = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| port_number(p, "nodePort"))
        .filter(|p| *p != 0)
        .collect();
    if let Some(p) = spec.get("healthCheckNodePort").and_then(Value::as_u64) {
        if p != 0 {
            ports.push(p as u32);
        }
    }
    ports
}

/// Whether a Service of this type holds node ports.
fn wants_node_ports(service: &Value) -> bool {
    match service_type(service) {
        "NodePort" => true,
        "LoadBalancer" => {
            spec(service)
                .and_then(|s| s.get("allocateLoadBalancerNodePorts"))
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

/// A 422 about one field of the Service.
fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// Allocates what a Service being created (`old` is `None`) or updated needs, and fills in
/// the fields upstream's service storage sets: `clusterIP`/`clusterIPs`, `ipFamilies`,
/// `ipFamilyPolicy`, node ports; an update keeps the values it leaves out and may not
/// change the cluster IP. Values are only checked, not taken, on a dry run.
pub async fn allocate(
    store: &dyn Store,
    old: Option<&Value>,
    service: &mut Value,
    dry_run: bool,
) -> Result<Allocation, ApiError> {
    let name = crate::object::meta_str(service, "name")
        .unwrap_or("")
        .to_owned();
    let mut allocation = Allocation {
        owner: owner(service),
        ..Default::default()
    };
    if !service.get("spec").is_some_and(Value::is_object) {
        return Ok(allocation);
    }
    let result = allocate_into(store, old, service, &name, dry_run, &mut allocation).await;
    match result {
        Ok(()) => Ok(allocation),
        Err(e) => {
            allocation.settle(store, false).await;
            Err(e)
        }
    }
}

async fn allocate_into(
    store: &dyn Store,
    old: Option<&Value>,
    service: &mut Value,
    name: &str,
    dry_run: bool,
    allocation: &mut Allocation,
) -> Result<(), ApiError> {
    let external_name = service_type(service) == "ExternalName";
    let old_external = old.is_some_and(|o| service_type(o) == "ExternalName");
    if let Some(old) = old.filter(|_| !old_external && !external_name) {
        keep_cluster_ip(old, service, name)?;
    }
    if external_name {
        if let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) {
            for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(field);
            }
        }
    } else {
        let had_ip = old.is_some_and(|o| !old_external && cluster_ip(o).is_some());
        if !had_ip {
            assign_cluster_ip(store, service, name, dry_run, allocation).await?;
        }
        families(service, name)?;
    }
    if wants_node_ports(service) {
        if let Some(old) = old {
            keep_node_ports(old, service);
        }
        assign_node_ports(store, old, service, name, dry_run, allocation).await?;
    } else if old.is_some_and(wants_node_ports) {
        if let Some(ports) = service
            .get_mut("spec")
            .and_then(|s| s.get_mut("ports"))
            .and_then(Value::as_array_mut)
        {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
    }
    assign_health_check(store, old, service, name, dry_run, allocation).await?;
    if let Some(old) = old {
        drop_traffic_policies(old, service);
        let now = held(service);
        allocation.released = held(old).into_iter().filter(|t| !now.contains(t)).collect();
    }
    Ok(())
}

/// Upstream's `dropTypeDependentFields` for traffic policies: a type that no longer uses
/// them loses the ones the old type had.
fn drop_traffic_policies(old: &Value, service: &mut Value) {
    let externally_accessible = |s: &Value| {
        let external_ips = spec(s)
            .and_then(|s| s.get("externalIPs"))
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
        match service_type(s) {
            "NodePort" | "LoadBalancer" => true,
            "ClusterIP" => external_ips,
            _ => false,
        }
    };
    let internal = |s: &Value| service_type(s) != "ExternalName";
    let mut drop = Vec::new();
    if externally_accessible(old) && !externally_accessible(service) {
        drop.push("externalTrafficPolicy");
    }
    if internal(old) && !internal(service) {
        drop.push("internalTrafficPolicy");
    }
    let old_spec = spec_of(old);
    if let Some(spec) = service["spec"].as_object_mut() {
        for field in drop {
            if spec.get(field) == old_spec.get(field) {
                spec.remove(field);
            }
        }
    }
}

/// Upstream's `patchAllocatedValues` and `validateUpgradeDowngradeClusterIPs`: an update
/// that leaves the cluster IP out keeps it; one that changes it is refused.
fn keep_cluster_ip(old: &Value, service: &mut Value, name: &str) -> Result<(), ApiError> {
    let Some(old_ip) = cluster_ip(old) else {
        return Ok(());
    };
    let Some(spec) = service["spec"].as_object_mut() else {
        return Ok(());
    };
    let sent_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let sent_ips = spec.get("clusterIPs").and_then(Value::as_array);
    let first = sent_ips
        .and_then(|ips| ips.first())
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_ip = if !sent_ip.is_empty() && sent_ip != old_ip {
        sent_ip
    } else if !first.is_empty() {
        first
    } else {
        sent_ip
    };
    if new_ip.is_empty() {
        let old_spec = spec_of(old);
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if let Some(value) = old_spec.get(field) {
                if spec.get(field).is_none_or(|v| v.is_null() || v == "") {
                    spec.insert(field.into(), value.clone());
                }
            }
        }
        return Ok(());
    }
    if new_ip != old_ip {
        let ips = json!([new_ip]);
        return Err(invalid(
            name,
            "spec.clusterIPs[0]",
            format!("Invalid value: {ips}: may not change once set"),
        ));
    }
    Ok(())
}

fn spec_of(service: &Value) -> Map<String, Value> {
    spec(service).cloned().unwrap_or_default()
}

/// A new cluster IP: the requested one (or `None`, headless), else a free one.
async fn assign_cluster_ip(
    store: &dyn Store,
    service: &mut Value,
    name: &str,
    dry_run: bool,
    allocation: &mut Allocation,
) -> Result<(), ApiError> {
    let requested = cluster_ip(service);
    let ip = match requested.as_deref() {
        Some("None") => "None".to_owned(),
        Some(ip) => {
            let sent = json!([ip]);
            let fail = |why: String| {
                invalid(
                    name,
                    "spec.clusterIPs",
                    format!("Invalid value: {sent}: failed to allocate IP {ip}: {why}"),
                )
            };
            let parsed: Result<std::net::IpAddr, _> = ip.parse();
            match parsed {
                Err(_) => {
                    return Err(invalid(
                        name,
                        "spec.clusterIPs[0]",
                        format!(
                            "Invalid value: {:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                            ip
                        ),
                    ))
                }
                Ok(std::net::IpAddr::V6(_)) => {
                    return Err(invalid(
                        name,
                        "spec.ipFamilies[0]",
                        "Invalid value: \"IPv6\": not configured on this cluster".into(),
                    ))
                }
                Ok(std::net::IpAddr::V4(_)) => {}
            }
            let range = format!("{SERVICE_NETWORK}/{SERVICE_PREFIX}");
            let offset = ip_offset(ip)
                .filter(|o| *o != 0 && *o != (1 << (32 - SERVICE_PREFIX)) - 1)
                .ok_or_else(|| {
                    fail(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}"
                    ))
                })?;
            let taken = Taken {
                pool: Pool::ServiceIp,
                value: offset,
            };
            if !take(store, &taken, &allocation.owner, dry_run).await? {
                return Err(fail("provided IP is already allocated".into()));
            }
            allocation.taken.push(taken);
            ip.to_owned()
        }
        None => {
            let taken = take_any(store, Pool::ServiceIp, &allocation.owner, dry_run).await?;
            let ip = Pool::ServiceIp.show(taken.value);
            allocation.taken.push(taken);
            ip
        }
    };
    let Some(spec) = service["spec"].as_object_mut() else {
        return Ok(());
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    Ok(())
}

/// Upstream's IP family defaults for a single-stack IPv4 cluster: one IPv4 family and
/// `SingleStack`, except that a headless Service without a selector asks for both
/// families; dual-stack requests for a cluster IP are refused.
fn families(service: &mut Value, name: &str) -> Result<(), ApiError> {
    let Some(spec) = service["spec"].as_object_mut() else {
        return Ok(());
    };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty());
    let policy = if headless && !selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    super::or_set(spec, "ipFamilyPolicy", json!(policy));
    let policy = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if policy == "RequireDualStack" && !headless {
        return Err(invalid(
            name,
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".into(),
        ));
    }
    let families = if policy == "SingleStack" {
        json!(["IPv4"])
    } else {
        json!(["IPv4", "IPv6"])
    };
    let empty = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty {
        spec.insert("ipFamilies".into(), families);
    }
    Ok(())
}

/// Upstream's `patchAllocatedValues` for node ports: a port sent without a node port keeps
/// the one the same-named port had.
fn keep_node_ports(old: &Value, service: &mut Value) {
    if !wants_node_ports(old) {
        return;
    }
    let old_ports: Vec<(String, u32)> = spec_of(old)
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            (name.to_owned(), port_number(p, "nodePort"))
        })
        .collect();
    if let Some(ports) = service["spec"]
        .get_mut("ports")
        .and_then(Value::as_array_mut)
    {
        for port in ports {
            if port_number(port, "nodePort") != 0 {
                continue;
            }
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some((_, node_port)) = old_ports.iter().find(|(n, p)| n == name && *p != 0) {
                port["nodePort"] = json!(node_port);
            }
        }
    }
}

/// Takes the node ports the Service's ports ask for (or free ones) that it does not hold
/// yet; ports of one Service may share a node port.
async fn assign_node_ports(
    store: &dyn Store,
    old: Option<&Value>,
    service: &mut Value,
    name: &str,
    dry_run: bool,
    allocation: &mut Allocation,
) -> Result<(), ApiError> {
    let held_before = old.map(node_ports).unwrap_or_default();
    let count = service["spec"]
        .get("ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for index in 0..count {
        let requested = port_number(&service["spec"]["ports"][index], "nodePort");
        let field = format!("spec.ports[{index}].nodePort");
        let port = take_node_port(
            store,
            &held_before,
            requested,
            name,
            &field,
            dry_run,
            allocation,
        )
        .await?;
        service["spec"]["ports"][index]["nodePort"] = json!(port);
    }
    Ok(())
}

/// Whether a Service needs a health check node port: a `LoadBalancer` with the `Local`
/// external traffic policy.
fn wants_health_check(service: &Value) -> bool {
    service_type(service) == "LoadBalancer"
        && spec(service)
            .and_then(|s| s.get("externalTrafficPolicy"))
            .and_then(Value::as_str)
            == Some("Local")
}

/// Upstream's health check node port: kept on update, taken when first needed (the
/// requested one or a free one), dropped when no longer needed.
async fn assign_health_check(
    store: &dyn Store,
    old: Option<&Value>,
    service: &mut Value,
    name: &str,
    dry_run: bool,
    allocation: &mut Allocation,
) -> Result<(), ApiError> {
    let old_port = old
        .and_then(|o| spec(o)?.get("healthCheckNodePort")?.as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let Some(spec) = service["spec"].as_object_mut() else {
        return Ok(());
    };
    let requested = spec
        .get("healthCheckNodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    if !wants_health_check(service) {
        if requested == old_port {
            if let Some(spec) = service["spec"].as_object_mut() {
                spec.remove("healthCheckNodePort");
            }
        }
        return Ok(());
    }
    let requested = if requested == 0 { old_port } else { requested };
    let held_before = old.map(node_ports).unwrap_or_default();
    let port = take_node_port(
        store,
        &held_before,
        requested,
        name,
        "spec.healthCheckNodePort",
        dry_run,
        allocation,
    )
    .await?;
    service["spec"]["healthCheckNodePort"] = json!(port);
    Ok(())
}

/// A node port for `field`: `requested` (kept when the Service holds it already, else
/// taken if in range and free) or, for 0, a free one.
async fn take_node_port(
    store: &dyn Store,
    held_before: &[u32],
    requested: u32,
    name: &str,
    field: &str,
    dry_run: bool,
    allocation: &mut Allocation,
) -> Result<u32, ApiError> {
    if requested == 0 {
        let taken = take_any(store, Pool::NodePort, &allocation.owner, dry_run).await?;
        let port = taken.value;
        allocation.taken.push(taken);
        return Ok(port);
    }
    let taken = Taken {
        pool: Pool::NodePort,
        value: requested,
    };
    if held_before.contains(&requested) || allocation.taken.contains(&taken) {
        return Ok(requested);
    }
    if !NODE_PORTS.contains(&requested) {
        return Err(invalid(
            name,
            field,
            format!(
                "Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ),
        ));
    }
    if !take(store, &taken, &allocation.owner, dry_run).await? {
        return Err(invalid(
            name,
            field,
            format!("Invalid value: {requested}: provided port is already allocated"),
        ));
    }
    allocation.taken.push(taken);
    Ok(requested)
}

/// Takes one value for `owner` (on a dry run, only checks it is free). `false` when it is
/// taken already.
async fn take(
    store: &dyn Store,
    taken: &Taken,
    owner: &str,
    dry_run: bool,
) -> Result<bool, ApiError> {
    let key = taken.key();
    if dry_run {
        let (kv, _) = store
            .get(key.as_bytes(), None)
            .await
            .map_err(ApiError::internal)?;
        return Ok(kv.is_none());
    }
    match store
        .create(key.as_bytes(), owner.as_bytes().to_vec().into(), None)
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Takes a free value of `pool`: random picks first, then the first value a scan of the
/// taken ones shows free; upstream's 500 when the range is full.
async fn take_any(
    store: &dyn Store,
    pool: Pool,
    owner: &str,
    dry_run: bool,
) -> Result<Taken, ApiError> {
    let range = pool.dynamic();
    for _ in 0..RANDOM_ATTEMPTS {
        let value = rand::rng().random_range(range.clone());
        let taken = Taken { pool, value };
        if take(store, &taken, owner, dry_run).await? {
            return Ok(taken);
        }
    }
    let page = store
        .range(kflex_storage_backends::RangeRequest {
            prefix: pool.prefix().into_bytes(),
            ..Default::default()
        })
        .await
        .map_err(ApiError::internal)?;
    let used: std::collections::HashSet<Vec<u8>> = page.kvs.into_iter().map(|kv| kv.key).collect();
    for value in range {
        let taken = Taken { pool, value };
        if !used.contains(taken.key().as_bytes()) && take(store, &taken, owner, dry_run).await? {
            return Ok(taken);
        }
    }
    let what = match pool {
        Pool::ServiceIp => "failed to allocate a serviceIP: range is full",
        Pool::NodePort => "failed to allocate a nodePort: range is full",
    };
    Err(ApiError::internal(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kflex_storage_backends::sqlite::{SqliteOptions, SqliteStore};

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("db"), SqliteOptions::default())
            .await
            .unwrap();
        (dir, store)
    }

    fn service(uid: &str, spec: Value) -> Value {
        json!({"metadata": {"name": format!("s-{uid}"), "uid": uid}, "spec": spec})
    }

    #[tokio::test]
    async fn cluster_ips_are_allocated_once_and_released_by_their_owner() {
        let (_dir, store) = store().await;
        let mut a = service("a", json!({"type": "ClusterIP", "selector": {"x": "y"}}));
        allocate(&store, None, &mut a, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        let ip = a["spec"]["clusterIP"].as_str().unwrap().to_owned();
        let offset = ip_offset(&ip).unwrap();
        assert!((256..(1 << 20) - 1).contains(&offset), "{ip}");
        assert_eq!(a["spec"]["clusterIPs"], json!([ip]));
        assert_eq!(a["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(a["spec"]["ipFamilyPolicy"], "SingleStack");

        let mut b = service("b", json!({"type": "ClusterIP", "clusterIP": ip}));
        let err = allocate(&store, None, &mut b, false).await.unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.message(),
            format!("Service \"s-b\" is invalid: spec.clusterIPs: Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated")
        );
        // Someone else's release leaves the IP taken.
        on_delete(&store, &def(), &service("b", a["spec"].clone())).await;
        assert!(allocate(&store, None, &mut b.clone(), false).await.is_err());
        on_delete(&store, &def(), &a).await;
        let allocation = allocate(&store, None, &mut b, false).await.unwrap();
        allocation.settle(&store, true).await;
        assert_eq!(b["spec"]["clusterIP"], ip);
    }

    fn def() -> ResourceDef {
        crate::defaults::test_support::def("", "v1", "services")
    }

    #[tokio::test]
    async fn out_of_range_headless_and_external_names() {
        let (_dir, store) = store().await;
        let mut s = service("a", json!({"type": "ClusterIP", "clusterIP": "10.200.0.5"}));
        let err = allocate(&store, None, &mut s, false).await.unwrap_err();
        assert!(err.message().ends_with("spec.clusterIPs: Invalid value: [\"10.200.0.5\"]: failed to allocate IP 10.200.0.5: the provided IP (10.200.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12"), "{}", err.message());
        let mut headless = service(
            "h",
            json!({"type": "ClusterIP", "clusterIP": "None", "selector": {"a": "b"}}),
        );
        let _ = allocate(&store, None, &mut headless, false).await.unwrap();
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
        let mut bare = service("h2", json!({"type": "ClusterIP", "clusterIP": "None"}));
        let _ = allocate(&store, None, &mut bare, false).await.unwrap();
        assert_eq!(bare["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(bare["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut ext = service(
            "e",
            json!({"type": "ExternalName", "externalName": "x.example"}),
        );
        let _ = allocate(&store, None, &mut ext, false).await.unwrap();
        assert!(ext["spec"].get("clusterIP").is_none());
        let taken = store.count(ALLOCATIONS.as_bytes()).await.unwrap().0;
        assert_eq!(taken, 0);
    }

    #[tokio::test]
    async fn node_ports_and_updates() {
        let (_dir, store) = store().await;
        let mut a = service(
            "a",
            json!({"type": "NodePort", "ports": [
            {"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]}),
        );
        allocate(&store, None, &mut a, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        let second = a["spec"]["ports"][1]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&second));
        let mut b = service(
            "b",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let err = allocate(&store, None, &mut b, false).await.unwrap_err();
        assert!(
            err.message().ends_with(
                "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
            ),
            "{}",
            err.message()
        );
        let mut c = service(
            "c",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
        );
        let err = allocate(&store, None, &mut c, false).await.unwrap_err();
        assert!(err.message().ends_with(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ));

        // An update without the allocated values keeps them; a new cluster IP is refused.
        let mut update = service(
            "a",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
        );
        allocate(&store, Some(&a), &mut update, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        assert_eq!(update["spec"], a["spec"]);
        let mut moved = a.clone();
        moved["spec"]["clusterIP"] = json!("10.96.0.9");
        let err = allocate(&store, Some(&a), &mut moved, false)
            .await
            .unwrap_err();
        assert!(
            err.message().ends_with(
                "spec.clusterIPs[0]: Invalid value: [\"10.96.0.9\"]: may not change once set"
            ),
            "{}",
            err.message()
        );

        // Back to ClusterIP: the node ports are given back, the cluster IP kept.
        let mut plain = a.clone();
        plain["spec"]["type"] = json!("ClusterIP");
        allocate(&store, Some(&a), &mut plain, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        assert!(plain["spec"]["ports"][0].get("nodePort").is_none());
        assert!(plain["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 1);
        // To ExternalName: everything is given back.
        plain["spec"]["internalTrafficPolicy"] = json!("Cluster");
        let mut ext = plain.clone();
        ext["spec"]["type"] = json!("ExternalName");
        allocate(&store, Some(&plain), &mut ext, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        assert!(ext["spec"].get("clusterIP").is_none());
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 0);
    }

    #[tokio::test]
    async fn load_balancers_with_local_traffic_get_a_health_check_port() {
        let (_dir, store) = store().await;
        let mut lb = service(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        allocate(&store, None, &mut lb, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        let health = lb["spec"]["healthCheckNodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&health));
        assert!(lb["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 2);
        let mut cluster = lb.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        allocate(&store, Some(&lb), &mut cluster, false)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        assert!(cluster["spec"].get("healthCheckNodePort").is_none());
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 1);
    }

    #[tokio::test]
    async fn dry_runs_take_nothing_and_failed_writes_give_back() {
        let (_dir, store) = store().await;
        let mut a = service("a", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        allocate(&store, None, &mut a, true)
            .await
            .unwrap()
            .settle(&store, true)
            .await;
        assert!(a["spec"]["clusterIP"].is_string());
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 0);
        allocate(&store, None, &mut a, false)
            .await
            .unwrap()
            .settle(&store, false)
            .await;
        assert_eq!(store.count(ALLOCATIONS.as_bytes()).await.unwrap().0, 0);
    }
}
