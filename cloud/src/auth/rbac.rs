//! The permission matrix: one table, in code, mirrored by
//! docs/specs/rbac.md. Gateways are not users and never appear here (they
//! authenticate with their own credential on the ingest path only).

use serde::{Deserialize, Serialize};

/// A user's role. A user has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    OperationsManager,
    Supervisor,
    Technician,
    /// Reads everything, changes nothing.
    Auditor,
    /// Commissions sites: gateways, assets, point links.
    Installer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::OperationsManager,
        Role::Supervisor,
        Role::Technician,
        Role::Auditor,
        Role::Installer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::OperationsManager => "operations_manager",
            Role::Supervisor => "supervisor",
            Role::Technician => "technician",
            Role::Auditor => "auditor",
            Role::Installer => "installer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a request may do. Work-order transitions each have their own,
/// so that the lifecycle's role checks live in this matrix too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read sites, assets, work orders, reports.
    Read,
    /// Read telemetry: devices, points, samples and aggregates, the
    /// gateway list and completeness reports.
    ReadTelemetry,
    /// Create and edit sites and assets, link points to assets.
    ManageAssets,
    /// Register gateways and issue their credentials.
    ManageGateways,
    /// Create and edit users and API tokens.
    ManageUsers,
    /// Raise a work order (status REQUESTED).
    RequestWorkOrder,
    /// Edit a work order's fields (title, priority, due date, assignment).
    EditWorkOrder,
    ApproveWorkOrder,
    /// Schedule, and set or clear WAITING.
    PlanWorkOrder,
    /// Start, hold, resume, complete, record checklist results and time
    /// (a technician only on work orders assigned to them).
    ExecuteWorkOrder,
    /// Reopen a completed work order, close it (locks costs).
    CloseWorkOrder,
    CancelWorkOrder,
    ManagePreventivePlans,
    ManageInventory,
    AcknowledgeAlarm,
    ManageAlarmRules,
    /// Read and verify the audit log.
    ReadAudit,
    /// Upload anomaly models, assign them to gateways, roll back.
    ManageModels,
}

impl Permission {
    pub const ALL: [Permission; 18] = [
        Permission::Read,
        Permission::ReadTelemetry,
        Permission::ManageAssets,
        Permission::ManageGateways,
        Permission::ManageUsers,
        Permission::RequestWorkOrder,
        Permission::EditWorkOrder,
        Permission::ApproveWorkOrder,
        Permission::PlanWorkOrder,
        Permission::ExecuteWorkOrder,
        Permission::CloseWorkOrder,
        Permission::CancelWorkOrder,
        Permission::ManagePreventivePlans,
        Permission::ManageInventory,
        Permission::AcknowledgeAlarm,
        Permission::ManageAlarmRules,
        Permission::ReadAudit,
        Permission::ManageModels,
    ];
}

/// The matrix. Keep docs/specs/rbac.md in step (a test compares them).
pub fn allows(role: Role, p: Permission) -> bool {
    use Permission as P;
    use Role as R;
    match role {
        R::Admin => true,
        R::OperationsManager => !matches!(p, P::ManageUsers | P::ManageGateways),
        R::Supervisor => !matches!(
            p,
            P::ManageUsers
                | P::ManageGateways
                | P::ManageAssets
                | P::ManageAlarmRules
                | P::ManageModels
        ),
        R::Technician => matches!(
            p,
            P::Read
                | P::ReadTelemetry
                | P::RequestWorkOrder
                | P::ExecuteWorkOrder
                | P::AcknowledgeAlarm
        ),
        R::Auditor => matches!(p, P::Read | P::ReadTelemetry | P::ReadAudit),
        R::Installer => matches!(
            p,
            P::Read | P::ReadTelemetry | P::ManageAssets | P::ManageGateways | P::RequestWorkOrder
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// docs/specs/rbac.md's table, parsed: the code and the document must
    /// say the same for every role × permission.
    #[test]
    fn the_spec_table_matches_the_code() {
        let spec = include_str!("../../../docs/specs/rbac.md");
        let rows: Vec<&str> = spec
            .lines()
            .skip_while(|l| !l.starts_with("| permission"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        let header: Vec<&str> = rows[0].split('|').map(str::trim).collect();
        let roles: Vec<Role> = header[2..header.len() - 1]
            .iter()
            .map(|h| Role::parse(h).unwrap_or_else(|| panic!("unknown role column {h}")))
            .collect();
        assert_eq!(roles.len(), Role::ALL.len(), "every role has a column");
        let mut seen = 0;
        for row in &rows[2..] {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let p = Permission::ALL
                .into_iter()
                .find(|p| serde_json::to_value(p).unwrap().as_str() == Some(name))
                .unwrap_or_else(|| panic!("unknown permission row {name}"));
            for (role, cell) in roles.iter().zip(&cells[2..]) {
                let want = match *cell {
                    "✓" => true,
                    "" | "–" => false,
                    other => panic!("cell {other:?} for {name}/{role}"),
                };
                assert_eq!(allows(*role, p), want, "{name} for {role}");
            }
            seen += 1;
        }
        assert_eq!(seen, Permission::ALL.len(), "every permission has a row");
    }

    #[test]
    fn every_role_reads_telemetry() {
        for r in Role::ALL {
            assert!(allows(r, Permission::ReadTelemetry), "{r}");
        }
    }

    #[test]
    fn auditors_only_read_and_only_admins_manage_users() {
        for p in Permission::ALL {
            assert_eq!(
                allows(Role::Auditor, p),
                matches!(
                    p,
                    Permission::Read | Permission::ReadTelemetry | Permission::ReadAudit
                ),
                "{p:?}"
            );
            if p == Permission::ManageUsers {
                for r in Role::ALL {
                    assert_eq!(allows(r, p), r == Role::Admin, "{r}");
                }
            }
        }
    }
}
