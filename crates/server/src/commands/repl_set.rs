//! The one-member replica set: `replSetGetStatus`, `replSetGetConfig`, `replSetInitiate`.
//!
//! Eddy is initiated from its first start (so change streams work with nothing to set
//! up). `replSetInitiate` therefore accepts exactly the configuration the node already
//! has (the tutorial's `rs.initiate({_id: "<set>", members: [{_id: 0, host: "localhost:<port>"}]})`,
//! or no configuration at all) and refuses any other with mongod's errors.

use bson::{doc, Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::command::{Command, CommandResult, Ctx};

pub struct ReplSetGetStatus;

impl Command for ReplSetGetStatus {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ReplSetGetStatus)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let state = ctx.state();
        let ts = ctx.engine().last_op_time();
        let op_time = doc! {"ts": ts, "t": 1_i64};
        let wall = DateTime::from_millis(i64::from(ts.time) * 1000);
        let started = DateTime::from_millis(
            DateTime::now().timestamp_millis() - state.started.elapsed().as_millis() as i64,
        );
        let election_ts = bson::Timestamp {
            time: (started.timestamp_millis() / 1000) as u32,
            increment: 1,
        };
        Ok(doc! {
            "set": state.config.repl_set.clone(),
            "date": DateTime::now(),
            "myState": 1,
            "term": 1_i64,
            "syncSourceHost": "",
            "syncSourceId": -1,
            "heartbeatIntervalMillis": 2000_i64,
            "majorityVoteCount": 1,
            "writeMajorityCount": 1,
            "votingMembersCount": 1,
            "writableVotingMembersCount": 1,
            "optimes": {
                "lastCommittedOpTime": op_time.clone(),
                "lastCommittedWallTime": wall,
                "readConcernMajorityOpTime": op_time.clone(),
                "appliedOpTime": op_time.clone(),
                "durableOpTime": op_time.clone(),
                "lastAppliedWallTime": wall,
                "lastDurableWallTime": wall,
            },
            "members": [{
                "_id": 0,
                "name": state.config.advertised_host(),
                "health": 1.0,
                "state": 1,
                "stateStr": "PRIMARY",
                "uptime": state.started.elapsed().as_secs() as i32,
                "optime": op_time.clone(),
                "optimeDate": wall,
                "lastAppliedWallTime": wall,
                "lastDurableWallTime": wall,
                "syncSourceHost": "",
                "syncSourceId": -1,
                "infoMessage": "",
                "electionTime": election_ts,
                "electionDate": started,
                "configVersion": 1,
                "configTerm": 1_i64,
                "self": true,
                "lastHeartbeatMessage": "",
            }],
        }
        .into())
    }
}

/// The configuration this node runs with.
fn config(ctx: &Ctx) -> Document {
    let state = ctx.state();
    doc! {
        "_id": state.config.repl_set.clone(),
        "version": 1,
        "term": 1,
        "members": [{
            "_id": 0,
            "host": state.config.advertised_host(),
            "arbiterOnly": false,
            "buildIndexes": true,
            "hidden": false,
            "priority": 1.0,
            "tags": {},
            "secondaryDelaySecs": 0_i64,
            "votes": 1,
        }],
        "protocolVersion": 1_i64,
        "writeConcernMajorityJournalDefault": true,
        "settings": {
            "chainingAllowed": true,
            "heartbeatIntervalMillis": 2000,
            "heartbeatTimeoutSecs": 10,
            "electionTimeoutMillis": 10000,
            "catchUpTimeoutMillis": -1,
            "getLastErrorModes": {},
            "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
            "replicaSetId": ctx.state().election_id,
        },
    }
}

pub struct ReplSetGetConfig;

impl Command for ReplSetGetConfig {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ReplSetGetConfig)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        Ok(doc! {"config": config(&ctx)}.into())
    }
}

pub struct ReplSetInitiate {
    config: Option<Document>,
}

impl Command for ReplSetInitiate {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        // `{replSetInitiate: 1}` and `{replSetInitiate: null}` carry no configuration.
        let config = match cmd.get("replSetInitiate") {
            Some(Bson::Document(d)) => Some(d.clone()),
            _ => None,
        };
        Ok(ReplSetInitiate { config })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let Some(config) = self.config else {
            // No configuration: mongod builds the one-member default, which is this one.
            return Ok(Document::new().into());
        };
        check_config(&config, &ctx)?;
        Ok(Document::new().into())
    }
}

/// Names by which a member `host` may refer to this node.
fn is_this_node(host: &str, ctx: &Ctx) -> bool {
    let port = ctx.state().config.port;
    let host = host.to_lowercase();
    let (name, host_port) = match host.rsplit_once(':') {
        Some((n, p)) => (n.trim_matches(['[', ']']).to_owned(), p.parse::<u16>().ok()),
        None => (host.clone(), Some(27017)),
    };
    if host_port != Some(port) {
        return false;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
        || name == hostname
        || ctx
            .state()
            .config
            .bind
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&name))
}

fn check_config(config: &Document, ctx: &Ctx) -> Result<(), MongoError> {
    let set = &ctx.state().config.repl_set;
    let invalid = |msg: String| MongoError::new(ErrorCode::InvalidReplicaSetConfig, msg);
    let id = match config.get("_id") {
        Some(Bson::String(s)) => s,
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "BSON field 'ReplSetConfig._id' is the wrong type, expected type 'string'",
            ))
        }
        None => return Err(crate::args::missing("ReplSetConfig", "_id")),
    };
    if id != set {
        return Err(invalid(format!(
            "Attempting to initiate a replica set with name {id}, but command line reports {set}; rejecting"
        )));
    }
    let members = match config.get("members") {
        Some(Bson::Array(m)) => m,
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "BSON field 'ReplSetConfig.members' is the wrong type, expected type 'array'",
            ))
        }
        None => return Err(crate::args::missing("ReplSetConfig", "members")),
    };
    if members.is_empty() {
        return Err(invalid(
            "Replica set configuration must contain at least one member".into(),
        ));
    }
    let hosts: Vec<&str> = members
        .iter()
        .filter_map(|m| m.as_document().and_then(|d| d.get_str("host").ok()))
        .collect();
    if hosts.len() != members.len() {
        return Err(crate::args::missing("ReplSetConfig.members", "host"));
    }
    if !hosts.iter().any(|h| is_this_node(h, ctx)) {
        return Err(MongoError::new(
            ErrorCode::InvalidReplicaSetConfig,
            format!("No host described in new configuration with {{version: 1, term: 0}} for replica set {set} maps to this node"),
        ));
    }
    if members.len() > 1 {
        return Err(invalid(format!(
            "Eddy runs one-member replica sets only; this configuration has {} members",
            members.len()
        )));
    }
    Ok(())
}
