//! Kafka's listener and quorum properties, read as KRaft reads them:
//! `listeners`, `advertised.listeners`, `controller.listener.names`,
//! `process.roles` and `controller.quorum.voters`.
//!
//! What this release does with them ([`NodeRoles::check_supported`]): a node
//! is a combined broker and controller voter, alone (Kafka's own single-node
//! KRaft `server.properties` works unchanged) or one of several named by
//! `controller.quorum.voters`, each with a controller listener; or a
//! broker-only node that follows those voters. A controller-only node is
//! refused with one line that says so rather than half-honoured.

use std::fmt;

use super::{BrokerConfig, ConfigError};

/// One entry of `listeners` or `advertised.listeners`: `NAME://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface (Kafka's `PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.name, self.host, self.port)
    }
}

/// One entry of `controller.quorum.voters`: `ID@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// What a node was configured to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoles {
    pub broker: bool,
    pub controller: bool,
    /// `listeners`, in the order given.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`, in the order given.
    pub advertised: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    pub voters: Vec<Voter>,
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(name, value, reason)
}

/// Parses a comma-separated list of `NAME://HOST:PORT`; names must be unique.
pub fn parse_listeners(name: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (listener_name, address) = entry
            .split_once("://")
            .ok_or_else(|| invalid(name, value, format!("{entry} is not NAME://HOST:PORT")))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| invalid(name, value, format!("{entry} has no port")))?;
        let port = port
            .parse()
            .map_err(|_| invalid(name, value, format!("{entry} has no valid port")))?;
        let listener_name = listener_name.to_ascii_uppercase();
        if listeners.iter().any(|l| l.name == listener_name) {
            return Err(invalid(
                name,
                value,
                format!("Each listener must have a different name, {listener_name} is repeated"),
            ));
        }
        listeners.push(Listener {
            name: listener_name,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        });
    }
    Ok(listeners)
}

/// Parses `controller.quorum.voters`: `ID@HOST:PORT,...`.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let name = "controller.quorum.voters";
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || invalid(name, value, format!("{entry} is not ID@HOST:PORT"));
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let voter = Voter {
            id: id.trim().parse().map_err(|_| bad())?,
            host: host.trim_matches(['[', ']']).to_string(),
            port: port.parse().map_err(|_| bad())?,
        };
        if voters.iter().any(|v| v.id == voter.id) {
            return Err(invalid(
                name,
                value,
                format!("voter {} is listed twice", voter.id),
            ));
        }
        voters.push(voter);
    }
    Ok(voters)
}

impl NodeRoles {
    /// Reads the properties from a loaded configuration. Unset properties
    /// take a single combined node's values: both roles, one PLAINTEXT
    /// listener, no controller listener, no voters.
    pub fn from_config(config: &BrokerConfig) -> Result<NodeRoles, ConfigError> {
        let (broker, controller) = match config.get("process.roles") {
            None => (true, true),
            Some(roles) => {
                let mut broker = false;
                let mut controller = false;
                for role in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match role {
                        "broker" => broker = true,
                        "controller" => controller = true,
                        other => {
                            return Err(invalid(
                                "process.roles",
                                roles,
                                format!("unknown role {other}: use broker, controller or both"),
                            ))
                        }
                    }
                }
                (broker, controller)
            }
        };
        let listeners = match config.get("listeners") {
            Some(value) => parse_listeners("listeners", value)?,
            None => Vec::new(),
        };
        let advertised = match config.get("advertised.listeners") {
            Some(value) => parse_listeners("advertised.listeners", value)?,
            None => Vec::new(),
        };
        let controller_listener_names = config
            .get("controller.listener.names")
            .map(|names| {
                names
                    .split(',')
                    .map(|n| n.trim().to_ascii_uppercase())
                    .filter(|n| !n.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let voters = match config.get("controller.quorum.voters") {
            Some(value) => parse_voters(value)?,
            None => Vec::new(),
        };
        Ok(NodeRoles {
            broker,
            controller,
            listeners,
            advertised,
            controller_listener_names,
            voters,
        })
    }

    /// The listeners clients use: every listener that is not a controller's.
    pub fn client_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
            .collect()
    }

    /// The address to advertise for the client listener `name`, if
    /// `advertised.listeners` names it.
    pub fn advertised_for(&self, name: &str) -> Option<&Listener> {
        self.advertised.iter().find(|l| l.name == name)
    }

    /// The controller listener to bind: the first of `listeners` that
    /// `controller.listener.names` names.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// Refuses what this release cannot be: a node that is not both broker
    /// and controller voter, a voter list without this node, several voters
    /// without a controller listener, more than one client listener. The
    /// error says what was asked and why it cannot be done yet.
    pub fn check_supported(&self, node_id: i32) -> Result<(), String> {
        const WHY: &str =
            "every node of this release is a broker: a combined broker and controller voter, or a broker-only node that follows the voters";
        let voter = self.voters.iter().any(|v| v.id == node_id);
        if !self.broker {
            return Err(format!("process.roles=controller: {WHY}"));
        }
        if !self.controller {
            if voter {
                return Err(format!(
                    "process.roles=broker but controller.quorum.voters names node.id {node_id}: a voter must have the controller role"
                ));
            }
            if self.voters.is_empty() {
                return Err("process.roles=broker needs controller.quorum.voters: the controllers it follows".into());
            }
            if self.controller_listener().is_none_or(|l| l.host.is_empty()) {
                return Err("process.roles=broker: a broker-only node needs a controller listener with a host in listeners (e.g. CONTROLLER://10.0.0.4:9093), where the controllers send it the metadata log".into());
            }
            return self.check_client_listeners();
        }
        if !self.voters.is_empty() && !self.voters.iter().any(|v| v.id == node_id) {
            let ids: Vec<String> = self.voters.iter().map(|v| v.id.to_string()).collect();
            return Err(format!(
                "controller.quorum.voters names voters {} but node.id is {node_id}: {WHY}",
                ids.join(", ")
            ));
        }
        if self.voters.len() > 1 && self.controller_listener().is_none() {
            return Err(format!(
                "controller.quorum.voters names {} voters: this node needs its controller listener in listeners, named by controller.listener.names (e.g. CONTROLLER://127.0.0.1:9093)",
                self.voters.len()
            ));
        }
        self.check_client_listeners()
    }

    /// The listener names add up, and there is one PLAINTEXT client listener.
    fn check_client_listeners(&self) -> Result<(), String> {
        if let Some(name) = self
            .controller_listener_names
            .iter()
            .find(|name| !self.listeners.iter().any(|l| &l.name == *name))
            .filter(|_| !self.listeners.is_empty())
        {
            return Err(format!(
                "controller.listener.names names {name}, which is not in listeners"
            ));
        }
        let clients = self.client_listeners();
        if clients.len() > 1 {
            let names: Vec<String> = clients.iter().map(|l| l.to_string()).collect();
            return Err(format!(
                "listeners has {} client listeners ({}): this release serves one",
                clients.len(),
                names.join(", ")
            ));
        }
        if let Some(listener) = clients.first() {
            if listener.name != "PLAINTEXT" {
                return Err(format!(
                    "listener {listener}: only PLAINTEXT is served by this release (TLS and SASL come with security)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(settings: &[&str]) -> NodeRoles {
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        let config = BrokerConfig::load(None, &settings).expect("valid config");
        NodeRoles::from_config(&config).expect("valid roles")
    }

    #[test]
    fn kafka_s_single_node_kraft_properties_are_one_node() {
        // The shape of Kafka's config/server.properties (KRaft, combined node).
        let node = roles(&[
            "process.roles=broker,controller",
            "node.id=1",
            "controller.quorum.voters=1@localhost:9093",
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
            "advertised.listeners=PLAINTEXT://localhost:9092",
            "controller.listener.names=CONTROLLER",
        ]);
        assert_eq!(node.check_supported(1), Ok(()));
        let clients = node.client_listeners();
        assert_eq!(clients.len(), 1);
        assert_eq!((clients[0].host.as_str(), clients[0].port), ("", 9092));
        let advertised = node.advertised_for("PLAINTEXT").unwrap();
        assert_eq!(
            (advertised.host.as_str(), advertised.port),
            ("localhost", 9092)
        );
    }

    #[test]
    fn nothing_set_is_a_single_node() {
        let node = roles(&[]);
        assert!(node.broker && node.controller);
        assert_eq!(node.check_supported(1), Ok(()));
    }

    #[test]
    fn a_cluster_configuration_is_refused_with_the_reason() {
        let three = roles(&["controller.quorum.voters=1@h:9093,2@h:9094,3@h:9095"]);
        let error = three.check_supported(1).unwrap_err();
        assert!(error.contains("needs its controller listener"), "{error}");
        let member = roles(&[
            "controller.quorum.voters=1@h:9093,2@h:9094,3@h:9095",
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
            "controller.listener.names=CONTROLLER",
        ]);
        assert_eq!(member.check_supported(1), Ok(()));
        assert_eq!(member.controller_listener().unwrap().port, 9093);
        let error = member.check_supported(4).unwrap_err();
        assert!(error.contains("voters 1, 2, 3 but node.id is 4"), "{error}");
        let broker_only = roles(&["process.roles=broker"]);
        assert!(broker_only
            .check_supported(1)
            .unwrap_err()
            .contains("needs controller.quorum.voters"));
        let follower = roles(&[
            "process.roles=broker",
            "controller.quorum.voters=1@h:9093,2@h:9094,3@h:9095",
            "listeners=PLAINTEXT://:9092,CONTROLLER://h4:9093",
            "controller.listener.names=CONTROLLER",
        ]);
        assert_eq!(follower.check_supported(4), Ok(()));
        assert!(follower
            .check_supported(2)
            .unwrap_err()
            .contains("a voter must have the controller role"));
        let controller_only = roles(&["process.roles=controller"]);
        assert!(controller_only
            .check_supported(1)
            .unwrap_err()
            .starts_with("process.roles=controller:"));
        let other_voter = roles(&["controller.quorum.voters=2@h:9093"]);
        assert!(other_voter.check_supported(1).is_err());
        let two_clients = roles(&["listeners=PLAINTEXT://:9092,INTERNAL://:9094"]);
        assert!(two_clients.check_supported(1).is_err());
        let tls = roles(&["listeners=SSL://:9093"]);
        assert!(tls
            .check_supported(1)
            .unwrap_err()
            .contains("only PLAINTEXT"));
        let missing = roles(&[
            "listeners=PLAINTEXT://:9092",
            "controller.listener.names=CONTROLLER",
        ]);
        assert!(missing.check_supported(1).is_err());
    }

    #[test]
    fn malformed_values_name_the_property() {
        for (setting, property) in [
            ("listeners=PLAINTEXT:9092", "listeners"),
            ("listeners=PLAINTEXT://:notaport", "listeners"),
            ("listeners=PLAINTEXT://:1,plaintext://:2", "listeners"),
            (
                "controller.quorum.voters=1-host:9093",
                "controller.quorum.voters",
            ),
            (
                "controller.quorum.voters=1@h:1,1@h:2",
                "controller.quorum.voters",
            ),
            ("process.roles=leader", "process.roles"),
        ] {
            let config = BrokerConfig::load(None, &[setting.to_string()]).expect("loads");
            let error = NodeRoles::from_config(&config).unwrap_err().to_string();
            assert!(error.contains(property), "{setting}: {error}");
        }
    }
}
