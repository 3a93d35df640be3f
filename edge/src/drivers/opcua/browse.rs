//! Browse-based discovery: walk the hierarchy below a root node and make a
//! point of every Variable whose data type (or current value) is a number.

use super::config::OpcuaPointConfig;
use super::value::number;
use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResult, BrowseResultMask, NodeClass,
    NodeId, ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn, Variant,
};
use std::collections::{HashSet, VecDeque};

/// Objects below the root deeper than this are not visited.
const MAX_DEPTH: usize = 8;
/// Nodes per Read request.
const READ_CHUNK: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("browse of {node} failed: {status}")]
    Service { node: String, status: StatusCode },
    #[error("browse root {node} is not usable: {status}")]
    Root { node: String, status: StatusCode },
    #[error("no Variable with a numeric value below {0}")]
    NothingFound(String),
}

/// Built-in numeric data types (Boolean..Double) and the abstract Number,
/// Integer and UInteger, all in namespace 0.
fn numeric_data_type(v: &Variant) -> bool {
    match v {
        Variant::NodeId(id) => {
            id.namespace == 0 && matches!(id.as_u32(), Some(1..=11) | Some(26..=28))
        }
        _ => false,
    }
}

/// A browse name as a point-name part: 1 to 64 of `[A-Za-z0-9._-]`.
fn name_part(browse_name: &str) -> String {
    let s: String = browse_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

/// Unique names: a repeated one gets `_2`, `_3`, … and all stay within 64
/// bytes.
fn unique_names(paths: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    paths
        .into_iter()
        .map(|p| {
            let base: String = p.chars().take(64).collect();
            let mut name = base.clone();
            let mut k = 2;
            while !seen.insert(name.clone()) {
                let suffix = format!("_{k}");
                let keep = 64 - suffix.len();
                name = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
                k += 1;
            }
            name
        })
        .collect()
}

/// All references of one browse, following continuation points.
async fn browse_all(session: &Session, node: &NodeId) -> Result<BrowseResult, BrowseError> {
    let desc = BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: NodeClass::Object as u32 | NodeClass::Variable as u32,
        result_mask: BrowseResultMask::All as u32,
    };
    let service = |e: opcua::types::Error| BrowseError::Service {
        node: node.to_string(),
        status: e.status(),
    };
    let mut result = session
        .browse(&[desc], 0, None)
        .await
        .map_err(service)?
        .into_iter()
        .next()
        .ok_or(BrowseError::Service {
            node: node.to_string(),
            status: StatusCode::BadUnknownResponse,
        })?;
    let mut cp = std::mem::take(&mut result.continuation_point);
    // Bounded: a server that keeps handing out continuation points does not
    // keep us here forever.
    for _ in 0..1000 {
        if cp.is_null_or_empty() {
            break;
        }
        let next = session
            .browse_next(false, std::slice::from_ref(&cp))
            .await
            .map_err(service)?
            .into_iter()
            .next();
        let Some(mut next) = next else { break };
        if let Some(more) = next.references.take() {
            result.references.get_or_insert_with(Vec::new).extend(more);
        }
        cp = std::mem::take(&mut next.continuation_point);
    }
    Ok(result)
}

/// Browses below `root` and returns one point per numeric Variable, named
/// by its browse-name path below the root (`Gearbox.OilTemperature`).
pub async fn discover(
    session: &Session,
    root: &NodeId,
    max_points: usize,
) -> Result<Vec<OpcuaPointConfig>, BrowseError> {
    let mut queue = VecDeque::from([(root.clone(), String::new(), 0usize)]);
    let mut visited = HashSet::from([root.clone()]);
    let mut variables: Vec<(NodeId, String)> = Vec::new();
    let visit_limit = max_points.saturating_mul(10);
    while let Some((node, prefix, depth)) = queue.pop_front() {
        let result = browse_all(session, &node).await?;
        if !result.status_code.is_good() {
            if node == *root {
                return Err(BrowseError::Root {
                    node: node.to_string(),
                    status: result.status_code,
                });
            }
            tracing::warn!(%node, status = %result.status_code, "cannot browse; skipped");
            continue;
        }
        for r in result.references.unwrap_or_default() {
            // Only nodes of this server.
            if r.node_id.server_index != 0 || !r.node_id.namespace_uri.is_empty() {
                continue;
            }
            let id = r.node_id.node_id;
            if !visited.insert(id.clone()) || visited.len() > visit_limit {
                continue;
            }
            let part = name_part(r.browse_name.name.as_ref());
            let path = if prefix.is_empty() {
                part
            } else {
                format!("{prefix}.{part}")
            };
            match r.node_class {
                NodeClass::Object if depth < MAX_DEPTH => queue.push_back((id, path, depth + 1)),
                NodeClass::Variable => variables.push((id, path)),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    for chunk in variables.chunks(READ_CHUNK) {
        let reads: Vec<ReadValueId> = chunk
            .iter()
            .flat_map(|(id, _)| {
                [
                    ReadValueId::new(id.clone(), AttributeId::DataType),
                    ReadValueId::new_value(id.clone()),
                ]
            })
            .collect();
        let values = session
            .read(&reads, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| BrowseError::Service {
                node: root.to_string(),
                status: e.status(),
            })?;
        for (k, (id, path)) in chunk.iter().enumerate() {
            let dt = values.get(2 * k).and_then(|d| d.value.as_ref());
            let v = values.get(2 * k + 1).and_then(|d| d.value.as_ref());
            if dt.is_some_and(numeric_data_type) || v.and_then(number).is_some() {
                found.push((id.clone(), path.clone()));
            }
        }
        if found.len() >= max_points {
            break;
        }
    }
    found.truncate(max_points);
    if found.is_empty() {
        return Err(BrowseError::NothingFound(root.to_string()));
    }
    let (ids, paths): (Vec<_>, Vec<_>) = found.into_iter().unzip();
    Ok(ids
        .into_iter()
        .zip(unique_names(paths))
        .map(|(id, name)| OpcuaPointConfig {
            name,
            node_id: id.to_string(),
            unit: String::new(),
            deadband_abs: None,
            deadband_pct: None,
            scale: 1.0,
            offset: 0.0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::valid_name;

    #[test]
    fn browse_names_become_valid_unique_point_names() {
        assert_eq!(name_part("Wind Speed (m/s)"), "Wind_Speed__m_s_");
        assert_eq!(name_part(""), "_");
        let long = "x".repeat(100);
        let names = unique_names(vec![
            "Gearbox.Temp".into(),
            "Gearbox.Temp".into(),
            long.clone(),
            long,
        ]);
        assert_eq!(names[0], "Gearbox.Temp");
        assert_eq!(names[1], "Gearbox.Temp_2");
        assert_ne!(names[2], names[3]);
        assert!(names.iter().all(|n| valid_name(n)), "{names:?}");
    }

    #[test]
    fn only_numeric_data_types_count() {
        assert!(numeric_data_type(&Variant::from(NodeId::new(0, 11u32))));
        assert!(numeric_data_type(&Variant::from(NodeId::new(0, 26u32))));
        assert!(!numeric_data_type(&Variant::from(NodeId::new(0, 12u32))));
        assert!(!numeric_data_type(&Variant::from(NodeId::new(2, 11u32))));
    }
}
