//! The turbine served over OPC UA (async-opcua server), with the fault
//! injection a test needs: stop the server (connections closed, port
//! released) and start it again on the same port, as after a controller
//! reboot (every session and subscription is gone).

use super::turbine::{TurbineModel, TurbineReading, VARIABLES};
use crate::SimError;
use crate::modbus::SimClock;
use opcua::server::ServerBuilder;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::types::{DataValue, DateTime, NodeId, ObjectId, StatusCode, Variant};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Namespace URI of the turbine's nodes.
pub const NAMESPACE_URI: &str = "urn:dcmms:sim:turbine";
/// The object (a folder) holding the variables: `ns=<n>;s=Turbine1`.
pub const TURBINE_OBJECT: &str = "Turbine1";

/// One simulated turbine server.
#[derive(Debug, Clone)]
pub struct TurbineServerConfig {
    pub bind: IpAddr,
    /// 0 = an ephemeral port (then [`RunningTurbine::addr`] says which).
    pub port: u16,
    pub model: TurbineModel,
    pub clock: SimClock,
    /// How often the variables are recomputed (and subscribers notified of
    /// what changed).
    pub update_interval: Duration,
    /// The port clients are told to use (GetEndpoints) when they reach the
    /// server through something else, such as the fault proxy; None = the
    /// port it listens on.
    pub advertised_port: Option<u16>,
}

impl Default for TurbineServerConfig {
    fn default() -> Self {
        TurbineServerConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 4840,
            model: TurbineModel::default(),
            clock: SimClock::realtime(),
            update_interval: Duration::from_millis(200),
            advertised_port: None,
        }
    }
}

/// A turbine server running in the background.
#[derive(Debug)]
pub struct RunningTurbine {
    cfg: TurbineServerConfig,
    addr: SocketAddr,
    namespace: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The node id of variable `name` ([`VARIABLES`]) in namespace `ns`.
pub fn variable_node_id(ns: u16, name: &str) -> String {
    format!("ns={ns};s={TURBINE_OBJECT}.{name}")
}

fn values_at(r: &TurbineReading, ns: u16) -> Vec<(&'static str, NodeId, DataValue)> {
    let source = chrono::DateTime::from_timestamp_millis(r.ts_ms)
        .map(DateTime::from)
        .unwrap_or_else(DateTime::now);
    VARIABLES
        .iter()
        .filter_map(|(name, _)| {
            let v = r.field(name)?;
            let value = if *name == "Status" {
                Variant::Int32(v as i32)
            } else {
                Variant::Double(v)
            };
            Some((
                *name,
                NodeId::new(ns, format!("{TURBINE_OBJECT}.{name}")),
                DataValue {
                    value: Some(value),
                    status: Some(StatusCode::Good),
                    source_timestamp: Some(source),
                    server_timestamp: Some(DateTime::now()),
                    ..DataValue::default()
                },
            ))
        })
        .collect()
}

fn build_error(e: impl std::fmt::Display) -> SimError {
    SimError::InvalidConfig(format!("OPC UA server: {e}"))
}

impl RunningTurbine {
    /// Binds, builds the address space and serves until [`Self::stop`] (or
    /// `shutdown`).
    pub async fn start(
        cfg: TurbineServerConfig,
        shutdown: &CancellationToken,
    ) -> Result<RunningTurbine, SimError> {
        if cfg.update_interval.is_zero() {
            return Err(SimError::InvalidConfig(
                "update interval must be positive".into(),
            ));
        }
        let want = SocketAddr::new(cfg.bind, cfg.port);
        let listener = bind_retrying(want).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: want, source })?;
        let stop = shutdown.child_token();
        let (server, handle) = ServerBuilder::new_anonymous("dCMMS wind turbine simulator")
            .application_uri("urn:dcmms:sim:turbine-server")
            .product_uri("urn:dcmms:sim")
            .host(addr.ip().to_string())
            .port(cfg.advertised_port.unwrap_or(addr.port()))
            .create_sample_keypair(false)
            .trust_client_certs(true)
            .pki_dir(std::env::temp_dir().join("dcmms-sim-opcua-pki"))
            .with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: NAMESPACE_URI.to_owned(),
                    ..Default::default()
                },
                "turbine",
            ))
            .token(stop.clone())
            .build()
            .map_err(build_error)?;
        let nm = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or_else(|| build_error("no simple node manager"))?;
        let namespace = handle
            .get_namespace_index(NAMESPACE_URI)
            .ok_or_else(|| build_error("namespace not registered"))?;
        let first = cfg.model.observe(cfg.clock.now_ms());
        {
            let mut space = nm.address_space().write();
            let folder = NodeId::new(namespace, TURBINE_OBJECT);
            space.add_folder(
                &folder,
                TURBINE_OBJECT,
                "Turbine 1",
                &ObjectId::ObjectsFolder.into(),
            );
            let vars = values_at(&first, namespace)
                .into_iter()
                .map(|(name, id, dv)| {
                    let mut v = opcua::nodes::Variable::new(
                        &id,
                        name,
                        name,
                        dv.value.clone().unwrap_or(Variant::Double(0.0)),
                    );
                    v.set_data_value(dv);
                    v
                })
                .collect();
            space.add_variables(vars, &folder);
        }
        let subscriptions = handle.subscriptions().clone();
        let (model, clock, every, stop_updates) = (
            cfg.model.clone(),
            cfg.clock.clone(),
            cfg.update_interval,
            stop.clone(),
        );
        let task = tokio::spawn(async move {
            let updates = async {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let values = values_at(&model.observe(clock.now_ms()), namespace);
                    if let Err(e) = nm.set_values(
                        &subscriptions,
                        values.iter().map(|(_, id, dv)| (id, None, dv.clone())),
                    ) {
                        tracing::warn!(error = %e, "cannot update the turbine's variables");
                    }
                }
            };
            tokio::select! {
                r = server.run_with(listener) => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "OPC UA server failed");
                    }
                }
                _ = async { updates.await; } => {}
                _ = stop_updates.cancelled() => {}
            }
        });
        tracing::info!(%addr, namespace, "OPC UA turbine server listening");
        Ok(RunningTurbine {
            cfg: TurbineServerConfig {
                port: addr.port(),
                ..cfg
            },
            addr,
            namespace,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `opc.tcp://ip:port/`.
    pub fn endpoint_url(&self) -> String {
        format!("opc.tcp://{}/", self.addr)
    }

    /// The namespace index of the turbine's nodes.
    pub fn namespace(&self) -> u16 {
        self.namespace
    }

    /// The node id of the object holding the variables.
    pub fn turbine_node_id(&self) -> String {
        format!("ns={};s={TURBINE_OBJECT}", self.namespace)
    }

    /// Fault: the server goes away: every connection is closed and the port
    /// released; all sessions and subscriptions are forgotten.
    pub async fn stop(self) -> TurbineServerConfig {
        self.stop.cancel();
        // The server closes its connections, then returns.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.cfg
    }

    /// Fault: stop, then start again on the same port (a controller
    /// reboot): clients must create new sessions and subscriptions.
    pub async fn restart(self, shutdown: &CancellationToken) -> Result<RunningTurbine, SimError> {
        let cfg = self.stop().await;
        RunningTurbine::start(cfg, shutdown).await
    }

    /// Waits until the server stopped (after `shutdown` or [`Self::stop`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds `addr`, retrying briefly while a just-stopped server's socket
/// still holds the port.
async fn bind_retrying(addr: SocketAddr) -> Result<tokio::net::TcpListener, SimError> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(SimError::Bind { addr, source }),
        }
    }
}
