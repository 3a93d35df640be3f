//! The work-order lifecycle: states, actions, and the one function that
//! decides whether an action is allowed, for whom, and where it leads
//! (docs/specs/work-order-lifecycle.md). No I/O: the store calls
//! [`transition`] inside the transaction that writes the result, so the
//! check and the write see the same row.

use crate::auth::{Permission, Role, allows};
use serde::{Deserialize, Serialize};

/// Why work cannot go ahead (WAITING before work starts, ON_HOLD during it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Parts,
    Access,
    Weather,
    Permit,
    /// Stopped for a safety concern (ON_HOLD only makes sense here, but it
    /// is allowed for WAITING too, e.g. a pending isolation).
    Safety,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Parts,
        Reason::Access,
        Reason::Weather,
        Reason::Permit,
        Reason::Safety,
    ];
}

/// A work order's status. WAITING and ON_HOLD carry their reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(
    rename_all = "SCREAMING_SNAKE_CASE",
    tag = "status",
    content = "reason"
)]
pub enum Status {
    Requested,
    Approved,
    Scheduled,
    Waiting(Reason),
    InProgress,
    OnHold(Reason),
    Completed,
    /// Final: costs are locked.
    Closed,
    /// Final.
    Cancelled,
}

impl Status {
    /// The status name as stored and shown (`WAITING`, not `WAITING(parts)`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Requested => "REQUESTED",
            Status::Approved => "APPROVED",
            Status::Scheduled => "SCHEDULED",
            Status::Waiting(_) => "WAITING",
            Status::InProgress => "IN_PROGRESS",
            Status::OnHold(_) => "ON_HOLD",
            Status::Completed => "COMPLETED",
            Status::Closed => "CLOSED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn reason(self) -> Option<Reason> {
        match self {
            Status::Waiting(r) | Status::OnHold(r) => Some(r),
            _ => None,
        }
    }

    /// Whether work has started (cancelling is no longer possible).
    pub fn work_started(self) -> bool {
        matches!(
            self,
            Status::InProgress | Status::OnHold(_) | Status::Completed | Status::Closed
        )
    }

    /// Whether costs (labour, parts, external) may still change.
    pub fn costs_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Cancelled)
    }
}

/// What a user asks to do to a work order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "action", content = "reason")]
pub enum Action {
    Approve,
    Schedule,
    Wait(Reason),
    Start,
    Hold(Reason),
    Resume,
    Complete,
    /// Back to IN_PROGRESS from COMPLETED (e.g. the repair did not hold).
    Reopen,
    Close,
    Cancel,
}

impl Action {
    /// The permission an action needs (docs/specs/rbac.md).
    pub fn permission(self) -> Permission {
        match self {
            Action::Approve => Permission::ApproveWorkOrder,
            Action::Schedule | Action::Wait(_) => Permission::PlanWorkOrder,
            Action::Start | Action::Hold(_) | Action::Resume | Action::Complete => {
                Permission::ExecuteWorkOrder
            }
            Action::Reopen | Action::Close => Permission::CloseWorkOrder,
            Action::Cancel => Permission::CancelWorkOrder,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Schedule => "schedule",
            Action::Wait(_) => "wait",
            Action::Start => "start",
            Action::Hold(_) => "hold",
            Action::Resume => "resume",
            Action::Complete => "complete",
            Action::Reopen => "reopen",
            Action::Close => "close",
            Action::Cancel => "cancel",
        }
    }
}

/// Who asks: their role, and whether the work order is assigned to them
/// (a technician may only execute their own work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub role: Role,
    pub is_assignee: bool,
}

/// Why a transition was refused. Both are the client's fault: 403 and 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("role {role} may not {action} work orders (needs permission {permission:?})")]
    Forbidden {
        role: Role,
        action: &'static str,
        permission: Permission,
    },
    #[error("a technician may only {action} work orders assigned to them")]
    NotAssigned { action: &'static str },
    #[error("cannot {action} a work order that is {from}")]
    NotFrom {
        action: &'static str,
        from: &'static str,
    },
}

/// The status `action` leads to from `from`, if the machine has that edge
/// at all (roles aside).
pub fn target(from: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (from, action) {
        (S::Requested, A::Approve) => Some(S::Approved),
        (S::Approved | S::Waiting(_), A::Schedule) => Some(S::Scheduled),
        (S::Approved | S::Scheduled, A::Wait(r)) => Some(S::Waiting(r)),
        // A new reason replaces the old one.
        (S::Waiting(_), A::Wait(r)) => Some(S::Waiting(r)),
        (S::Scheduled, A::Start) => Some(S::InProgress),
        (S::InProgress, A::Hold(r)) => Some(S::OnHold(r)),
        (S::OnHold(_), A::Resume) => Some(S::InProgress),
        (S::InProgress, A::Complete) => Some(S::Completed),
        (S::Completed, A::Reopen) => Some(S::InProgress),
        (S::Completed, A::Close) => Some(S::Closed),
        (s, A::Cancel) if !s.work_started() && s != S::Cancelled => Some(S::Cancelled),
        _ => None,
    }
}

/// Decides an action: role first (so a forbidden user learns nothing about
/// the order's state), then assignment, then the machine.
pub fn transition(from: Status, action: Action, actor: Actor) -> Result<Status, TransitionError> {
    let permission = action.permission();
    if !allows(actor.role, permission) {
        return Err(TransitionError::Forbidden {
            role: actor.role,
            action: action.name(),
            permission,
        });
    }
    if actor.role == Role::Technician && !actor.is_assignee {
        return Err(TransitionError::NotAssigned {
            action: action.name(),
        });
    }
    target(from, action).ok_or(TransitionError::NotFrom {
        action: action.name(),
        from: from.name(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn all_statuses() -> Vec<Status> {
        let mut v = vec![
            Status::Requested,
            Status::Approved,
            Status::Scheduled,
            Status::InProgress,
            Status::Completed,
            Status::Closed,
            Status::Cancelled,
        ];
        for r in Reason::ALL {
            v.push(Status::Waiting(r));
            v.push(Status::OnHold(r));
        }
        v
    }

    fn all_actions() -> Vec<Action> {
        let mut v = vec![
            Action::Approve,
            Action::Schedule,
            Action::Start,
            Action::Resume,
            Action::Complete,
            Action::Reopen,
            Action::Close,
            Action::Cancel,
        ];
        for r in Reason::ALL {
            v.push(Action::Wait(r));
            v.push(Action::Hold(r));
        }
        v
    }

    /// The spec's transition table (docs/specs/work-order-lifecycle.md),
    /// written out by status name and action name, independently of
    /// [`target`]. Reasons are carried by WAITING/ON_HOLD targets.
    const ALLOWED: &[(&str, &str, &str)] = &[
        ("REQUESTED", "approve", "APPROVED"),
        ("REQUESTED", "cancel", "CANCELLED"),
        ("APPROVED", "schedule", "SCHEDULED"),
        ("APPROVED", "wait", "WAITING"),
        ("APPROVED", "cancel", "CANCELLED"),
        ("SCHEDULED", "wait", "WAITING"),
        ("SCHEDULED", "start", "IN_PROGRESS"),
        ("SCHEDULED", "cancel", "CANCELLED"),
        ("WAITING", "schedule", "SCHEDULED"),
        ("WAITING", "wait", "WAITING"),
        ("WAITING", "cancel", "CANCELLED"),
        ("IN_PROGRESS", "hold", "ON_HOLD"),
        ("IN_PROGRESS", "complete", "COMPLETED"),
        ("ON_HOLD", "resume", "IN_PROGRESS"),
        ("COMPLETED", "reopen", "IN_PROGRESS"),
        ("COMPLETED", "close", "CLOSED"),
    ];

    #[test]
    fn every_edge_of_the_machine_is_in_the_spec_table_and_nothing_else() {
        let mut allowed = 0;
        for from in all_statuses() {
            for action in all_actions() {
                let want = ALLOWED
                    .iter()
                    .find(|(f, a, _)| *f == from.name() && *a == action.name())
                    .map(|(_, _, to)| *to);
                let got = target(from, action);
                assert_eq!(got.map(Status::name), want, "{from:?} --{action:?}-->");
                if let Some(to) = got {
                    allowed += 1;
                    // A reason given with the action is the reason kept.
                    match action {
                        Action::Wait(r) | Action::Hold(r) => assert_eq!(to.reason(), Some(r)),
                        _ => assert_eq!(to.reason(), None),
                    }
                }
            }
        }
        // Every table row is reachable (reason variants multiply some).
        for (f, a, _) in ALLOWED {
            assert!(
                all_statuses().iter().any(|s| s.name() == *f
                    && all_actions()
                        .iter()
                        .any(|x| x.name() == *a && target(*s, *x).is_some())),
                "{f} {a} never allowed"
            );
        }
        assert!(allowed >= ALLOWED.len());
    }

    #[test]
    fn every_role_is_checked_on_every_action() {
        for role in Role::ALL {
            for action in all_actions() {
                for from in all_statuses() {
                    let actor = Actor {
                        role,
                        is_assignee: true,
                    };
                    let r = transition(from, action, actor);
                    if !allows(role, action.permission()) {
                        assert!(
                            matches!(r, Err(TransitionError::Forbidden { .. })),
                            "{role} {action:?} from {from:?}: {r:?}"
                        );
                    } else {
                        assert_eq!(r.ok(), target(from, action), "{role} {action:?} {from:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn technicians_execute_only_their_own_work_and_never_approve_or_close() {
        let tech = |is_assignee| Actor {
            role: Role::Technician,
            is_assignee,
        };
        assert_eq!(
            transition(Status::Scheduled, Action::Start, tech(true)),
            Ok(Status::InProgress)
        );
        assert_eq!(
            transition(Status::Scheduled, Action::Start, tech(false)),
            Err(TransitionError::NotAssigned { action: "start" })
        );
        for a in [
            Action::Approve,
            Action::Close,
            Action::Cancel,
            Action::Reopen,
        ] {
            assert!(matches!(
                transition(Status::Completed, a, tech(true)),
                Err(TransitionError::Forbidden { .. })
            ));
        }
        // A supervisor need not be assigned.
        let sup = Actor {
            role: Role::Supervisor,
            is_assignee: false,
        };
        assert_eq!(
            transition(Status::Scheduled, Action::Start, sup),
            Ok(Status::InProgress)
        );
    }

    #[test]
    fn cancel_only_before_work_starts_and_closed_locks_costs() {
        for s in all_statuses() {
            let can_cancel = target(s, Action::Cancel).is_some();
            assert_eq!(
                can_cancel,
                !s.work_started() && s != Status::Cancelled,
                "{s:?}"
            );
        }
        assert!(!Status::Closed.costs_open());
        assert!(Status::Completed.costs_open());
        let e = transition(
            Status::InProgress,
            Action::Cancel,
            Actor {
                role: Role::Admin,
                is_assignee: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot cancel a work order that is IN_PROGRESS"
        );
    }

    #[test]
    fn statuses_and_actions_have_a_stable_json_form() {
        assert_eq!(
            serde_json::to_value(Status::Waiting(Reason::Permit)).unwrap(),
            serde_json::json!({"status": "WAITING", "reason": "permit"})
        );
        assert_eq!(
            serde_json::to_value(Status::InProgress).unwrap(),
            serde_json::json!({"status": "IN_PROGRESS"})
        );
        let a: Action =
            serde_json::from_value(serde_json::json!({"action": "hold", "reason": "weather"}))
                .unwrap();
        assert_eq!(a, Action::Hold(Reason::Weather));
        assert!(serde_json::from_value::<Action>(serde_json::json!({"action": "hold"})).is_err());
    }
}
